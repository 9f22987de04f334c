// RegistryClient.preconnect: connections opened ahead are the ones the next requests use (a pull's
// footer reads then skip a handshake round trip each), and a registry that cannot be reached is no error.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/registry/client.js';
import { unusedPort } from './http-fixtures.js';

describe('preconnect', () => {
  it('opens the connections that requests sent at once then use', async () => {
    let connections = 0;
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(req.url ?? '');
      // held a moment: requests sent together cannot take turns on one connection
      setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'), 20);
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = new RegistryClient({ plainHttp: true });
    try {
      await client.preconnect(host, 3);
      expect(connections).toBe(3);
      expect(paths).toEqual(['/v2/', '/v2/', '/v2/']);
      await Promise.all([1, 2, 3].map(async (i) => (await client.send({ method: 'GET', host, path: `/v2/r/blobs/${i}`, scopes: [] })).body.dump()));
      expect(paths).toHaveLength(6);
      expect(connections).toBe(3);
    } finally {
      await client.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('is no error when the registry cannot be reached', async () => {
    const client = new RegistryClient({ plainHttp: true });
    await expect(client.preconnect(`127.0.0.1:${await unusedPort()}`, 2)).resolves.toBeUndefined();
    await client.close();
  });
});
