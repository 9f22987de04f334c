import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Agent, EnvHttpProxyAgent, ProxyAgent } from '../../src/registry/undici-parts.js';

describe('undici-parts', () => {
  it('loads the dispatchers from undici\'s own files, each with the request API', () => {
    for (const D of [Agent, ProxyAgent, EnvHttpProxyAgent]) expect(typeof D.prototype.request).toBe('function');
  });

  it('an Agent answers a request with the server\'s status, headers and body', async () => {
    const server = createServer((req, res) => res.writeHead(203, { 'x-path': req.url ?? '' }).end('hello'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const agent = new Agent();
    try {
      const { port } = server.address() as AddressInfo;
      const res = await agent.request({ origin: `http://127.0.0.1:${port}`, path: '/v2/x?n=1', method: 'GET' });
      expect(res.statusCode).toBe(203);
      expect(res.headers['x-path']).toBe('/v2/x?n=1');
      expect(await res.body.text()).toBe('hello');
    } finally {
      await agent.close();
      server.close();
    }
  });
});
