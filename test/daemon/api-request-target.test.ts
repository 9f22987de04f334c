// The API's request target is a path: "//x" or "//?q" is a path with an empty first segment, not a
// URL whose host is x (found by test/fuzz/api-requests.test.ts: `GET //?mountpoint=/` was an
// "Invalid URL" TypeError answered 500, and `GET //evil/api/v1/daemon` was served as
// /api/v1/daemon). In process: a real Daemon (not serving yet) behind serveApi on a temp socket.
import { mkdtempSync, rmSync } from 'node:fs';
import { request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi } from '../../src/daemon/api.js';
import { DEFAULT_CONFIG } from '../../src/daemon/config.js';
import { Daemon } from '../../src/daemon/daemon.js';

const work = mkdtempSync(join(tmpdir(), 'api-target-'));
const sock = join(work, 'api.sock');
let server: Server;

beforeAll(async () => {
  const daemon = new Daemon({ id: 't', mode: 'dedicated', mountpoint: join(work, 'mnt'), config: { ...DEFAULT_CONFIG, cacheDir: join(work, 'cache') }, signals: [] });
  server = await serveApi(daemon, sock, () => undefined);
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  rmSync(work, { recursive: true, force: true });
});

function get(path: string): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = request({ socketPath: sock, method: 'GET', path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => done({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

describe('API request targets', () => {
  it('regression: a target starting with // is a path, never a host (no 500, no rerouting)', async () => {
    expect(await get('//?mountpoint=/')).toMatchObject({ status: 404 });
    expect(await get('//evil/api/v1/daemon')).toMatchObject({ status: 404 });
    expect(await get('//')).toMatchObject({ status: 404 });
    expect((await get('/api/v1/daemon')).status).toBe(200);
  });
});
