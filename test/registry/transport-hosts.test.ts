// What the transport does per host. A loopback registry that speaks plain HTTP is reached without
// --plain-http, as containerd's resolver reaches localhost: the HTTPS handshake gets a plain-HTTP
// answer, the host is asked in plain HTTP from then on (only loopback falls back: see the e2e
// regression in registry/repository.test.ts). A host's own headers (a mirror's) go with each request to it.
import { afterAll, describe, expect, it } from 'vitest';
import { HttpTransport } from '../../src/registry/transport.js';
import { startServer, type TestServer } from './http-fixtures.js';

const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

describe('hosts', () => {
  it('a loopback registry is asked in plain HTTP once their TLS handshake gets a plain-HTTP answer', async () => {
    let requests = 0;
    const server = await startServer((req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello ${req.url}`);
    });
    servers.push(server);
    const transport = new HttpTransport();
    expect(transport.hostOptions(server.host).plainHttp).toBe(false);
    const res = await transport.send({ method: 'GET', url: `https://${server.host}/v2/` });
    expect(res.status).toBe(200);
    expect(res.url).toBe(`http://${server.host}/v2/`);
    expect(await res.body.text()).toBe('hello /v2/');
    expect(transport.hostOptions(server.host).plainHttp).toBe(true);
    expect(transport.baseUrl(server.host)).toBe(`http://${server.host}`);
    // the handshake that failed reached the server as a bad request only
    expect(requests).toBe(1);
    await transport.close();
  });

  it('a refused connection stays an error (nothing to fall back to)', async () => {
    const server = await startServer(() => undefined);
    await server.close();
    const transport = new HttpTransport();
    await expect(transport.send({ method: 'GET', url: `https://${server.host}/v2/` })).rejects.toThrow();
    expect(transport.hostOptions(server.host).plainHttp).toBe(false);
    await transport.close();
  });

  it('send a host its own headers (a mirror\'s), under the request\'s, and not along a redirect to another origin', async () => {
    const seen: Record<string, unknown>[] = [];
    const other = await startServer((req, res) => {
      seen.push({ at: 'other', mirror: req.headers['x-mirror'] });
      res.writeHead(200).end('moved');
    });
    const server = await startServer((req, res) => {
      seen.push({ at: 'mirror', mirror: req.headers['x-mirror'], own: req.headers['x-own'] });
      if (req.url === '/redirect') res.writeHead(307, { location: `http://${other.host}/there` }).end();
      else res.writeHead(200).end('ok');
    });
    servers.push(server, other);
    const transport = new HttpTransport({ hosts: { [server.host]: { plainHttp: true, headers: { 'X-Mirror': 'origin.example', 'X-Own': 'host' } } } });
    await (await transport.send({ method: 'GET', url: `http://${server.host}/v2/`, headers: { 'X-Own': 'request' } })).body.dump();
    await (await transport.send({ method: 'GET', url: `http://${server.host}/redirect` })).body.dump();
    expect(seen).toEqual([
      { at: 'mirror', mirror: 'origin.example', own: 'request' },
      { at: 'mirror', mirror: 'origin.example', own: 'host' },
      { at: 'other', mirror: undefined },
    ]);
    await transport.close();
  });
});

