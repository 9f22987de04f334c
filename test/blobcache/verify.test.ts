// verifyCache and `cache check`: every chunk the map marks ready is checked against its digest;
// a flipped byte in a ready chunk is found, one in a chunk not marked ready is not a problem.
import { closeSync, mkdtempSync, openSync, readSync, rmSync, truncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../../src/blobcache/cache.js';
import { LocalDirBackend } from '../../src/blobcache/local-backend.js';
import { verifyCache } from '../../src/blobcache/verify.js';
import { runCli } from '../helpers/cli.js';
import { content, makeBlob, type TestBlob } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'blobcache-verify-'));
let t: TestBlob;
let n = 0;

beforeAll(async () => {
  t = await makeBlob(work, { 'a.bin': content(1, 64 << 10), 'b.bin': content(2, 48 << 10) });
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A cache directory holding the first `count` chunks of the blob. */
async function cacheWith(count: number): Promise<string> {
  const dir = join(work, `cache-${n++}`);
  const backend = new LocalDirBackend(t.blobDir);
  const cache = await BlobCache.open(dir, { backend, fetch: { amplify: 0 } });
  for (const ref of t.chunks.slice(0, count)) await cache.readChunk(t.blob, ref);
  await cache.close();
  await backend.close();
  return dir;
}

function flipByte(dir: string, offset: number): void {
  const fd = openSync(join(dir, `${t.blob.blobId}.blob.data`), 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, offset);
  writeSync(fd, Buffer.from([b[0]! ^ 0xff]), 0, 1, offset);
  closeSync(fd);
}

describe('verifyCache', () => {
  it('verifies every ready chunk and only those', async () => {
    const dir = await cacheWith(5);
    const got = await verifyCache(dir, t.rafs);
    expect(got).toMatchObject({ ready: 5, verified: 5, corrupt: 0 });
    expect(got.blobs).toEqual([{ blobId: t.blob.blobId, state: 'checked', chunks: t.chunks.length, ready: 5, verified: 5, corrupt: [] }]);
  });

  it('finds a ready chunk whose bytes were changed, and ignores a change to a chunk not marked ready', async () => {
    const dir = await cacheWith(5);
    flipByte(dir, t.chunks[3]!.uncompressedOffset + 7);
    flipByte(dir, t.chunks[8]!.uncompressedOffset + 7);
    const got = await verifyCache(dir, t.rafs);
    expect(got).toMatchObject({ ready: 5, verified: 4, corrupt: 1 });
    expect(got.blobs[0]!.corrupt).toEqual([t.chunks[3]!.ciIndex]);
  });

  it('says a blob is absent or discarded (wrong data file size) instead of verifying it', async () => {
    const empty = join(work, `cache-${n++}`);
    expect((await verifyCache(empty, t.rafs)).blobs[0]).toMatchObject({ state: 'absent', ready: 0 });
    const dir = await cacheWith(3);
    truncateSync(join(dir, `${t.blob.blobId}.blob.data`), t.blob.uncompressedSize - 1);
    expect((await verifyCache(dir, t.rafs)).blobs[0]).toMatchObject({ state: 'discarded', ready: 0, verified: 0 });
  });
});

describe('nydusify-ts cache check', () => {
  it('exits 0 with the counts when every ready chunk verifies, non-zero when one does not', async () => {
    const dir = await cacheWith(4);
    const boot = join(work, 'layer.boot');
    const ok = runCli(['cache', 'check', '--cache-dir', dir, '--bootstrap', boot, '--json']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ready: 4, verified: 4, corrupt: 0 });
    flipByte(dir, t.chunks[0]!.uncompressedOffset);
    const bad = runCli(['cache', 'check', '--cache-dir', dir, '--bootstrap', boot]);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toContain(`${t.blob.blobId}  checked  4/${t.chunks.length}  3  1`);
    expect(bad.stderr).toMatch(/1 ready chunk\(s\) do not match their digest/);
  });
});
