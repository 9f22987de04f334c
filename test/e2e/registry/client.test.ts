// The registry client's credentials stay with the registry's own origin: an upload session the registry
// hands to another origin (its Location) is followed without the Authorization header, Basic or Bearer,
// for the whole upload (POST, PATCH chunks, closing PUT). Local servers play the registry and the storage.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../registry/http-fixtures.js';
import { sha256, useRegistries } from '../../registry/registry-fixtures.js';

const ctx = useRegistries();
const USER = { username: 'u', password: 'p' };

/** An upload service on its own origin, recording the Authorization header of every request it gets. */
async function storageService(seen: string[]): Promise<TestServer> {
  return ctx.track(
    await startServer((req, res) => {
      seen.push(`${req.method} ${req.headers.authorization ?? 'none'}`);
      req.resume();
      req.on('end', () => {
        if (req.method === 'PATCH') return void res.writeHead(202, { location: '/upload/1' }).end();
        const digest = new URL(req.url!, 'http://x').searchParams.get('digest')!;
        res.writeHead(201, { 'docker-content-digest': digest }).end();
      });
    }),
  );
}

/** A registry asking for `scheme` auth (its token realm on its own origin) that hands uploads to `storage`. */
async function handingOffRegistry(scheme: 'basic' | 'bearer', storage: () => string): Promise<{ server: TestServer; expected: string }> {
  const expected = scheme === 'basic' ? `Basic ${Buffer.from('u:p').toString('base64')}` : 'Bearer t0ken';
  let host = '';
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    if (req.url!.startsWith('/token')) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 't0ken' }));
    if (req.headers.authorization !== expected) {
      const challenge = scheme === 'basic' ? 'Basic realm="r"' : `Bearer realm="http://${host}/token",service="s"`;
      return void res.writeHead(401, { 'www-authenticate': challenge }).end();
    }
    if (req.method === 'HEAD') return void res.writeHead(404).end();
    if (req.method === 'POST') return void res.writeHead(202, { location: `http://${storage()}/upload/1` }).end();
    res.writeHead(400).end();
  };
  const server = ctx.track(await startServer(handler));
  host = server.host;
  return { server, expected };
}

describe('registry client credentials', () => {
  it.each([
    ['basic', 'monolithic'],
    ['bearer', 'monolithic'],
    ['basic', 'chunked'],
    ['bearer', 'chunked'],
  ] as const)('regression: a %s upload handed to another origin (%s) goes there without credentials', async (scheme, mode) => {
    const seen: string[] = [];
    const storage = await storageService(seen);
    const { server: registry } = await handingOffRegistry(scheme, () => storage.host);
    const client = ctx.client({ credentials: { [registry.host]: USER }, ...(mode === 'chunked' && { chunkedUploadThreshold: 1000, uploadChunkSize: 1000 }) });
    const blob = randomBytes(2500);
    const store = client.repository(`${registry.host}/handed-off`);
    expect(await store.putBlob({ digest: sha256(blob), size: blob.length }, blob)).toBe('uploaded');
    expect(seen).toEqual(mode === 'chunked' ? ['PATCH none', 'PATCH none', 'PATCH none', 'PUT none'] : ['PUT none']);
  });
});
