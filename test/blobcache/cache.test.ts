import { mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync, closeSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../../src/blobcache/cache.js';
import { ChunkIntegrityError } from '../../src/blobcache/chunk-decoder.js';
import { decodeChunkMap } from '../../src/blobcache/chunk-map.js';
import { blobChunkTables, ChunkFetcher } from '../../src/blobcache/fetcher.js';
import { LocalDirBackend } from '../../src/blobcache/local-backend.js';
import type { ChunkRef } from '../../src/rafs/tree.js';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';
import { content, CountingBackend, makeBlob, type TestBlob } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'blobcache-'));
let n = 0;
const freshDir = () => join(work, `cache-${n++}`);
let one: TestBlob;
let two: TestBlob;
let three: TestBlob;

beforeAll(async () => {
  one = await makeBlob(work, {
    'a.bin': content(1, 40 << 10),
    'b.txt': Buffer.from('hello blob cache\n'.repeat(1200)),
    'dir/c.bin': content(3, 100 << 10),
    'dir/same-as-a.bin': content(1, 40 << 10),
    'tail.bin': content(4, 5000),
  }, 'one');
  two = await makeBlob(work, { 'x.bin': content(7, 64 << 10) }, 'two');
  three = await makeBlob(work, { 'y.bin': content(8, 32 << 10) }, 'three');
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

const opened: LocalDirBackend[] = [];
const local = (t: TestBlob): LocalDirBackend => {
  const b = new LocalDirBackend(t.blobDir);
  opened.push(b);
  return b;
};
const backendFor = (t: TestBlob) => new CountingBackend(local(t));
afterEach(async () => {
  await Promise.all(opened.splice(0).map((b) => b.close()));
});

/** Reads every file of `t` through the cache, chunk by chunk, and checks the bytes. */
async function readAllFiles(cache: BlobCache, t: TestBlob, concurrent = true): Promise<void> {
  for (const [path, file] of t.files) {
    const parts = concurrent
      ? await Promise.all(file.chunks.map((c) => cache.readChunk(t.blob, c)))
      : await file.chunks.reduce<Promise<Buffer[]>>(async (acc, c) => [...(await acc), await cache.readChunk(t.blob, c)], Promise.resolve([]));
    expect(Buffer.concat(parts).equals(file.data), path).toBe(true);
  }
}

describe('BlobCache', () => {
  it('builds test blobs with many chunks', () => {
    expect(one.chunks.length).toBeGreaterThan(30);
    expect(one.blob.chunkCount).toBe(one.chunks.length);
  });

  it('serves misses from the backend, then hits from disk, also after reopening', async () => {
    const dir = freshDir();
    const backend = backendFor(one);
    const cache = await BlobCache.open(dir, { backend, fetch: { amplify: 0 } });
    await readAllFiles(cache, one);
    const afterFirst = backend.calls.length;
    expect(afterFirst).toBeGreaterThan(0);
    await readAllFiles(cache, one);
    expect(backend.calls.length).toBe(afterFirst);
    await cache.close();

    const data = join(dir, `${one.blob.blobId}.blob.data`);
    expect(statSync(data).size).toBe(one.blob.uncompressedSize);
    const map = decodeChunkMap(readFileSync(`${data}.chunk_map`), one.blob.chunkCount)!;
    expect(map.allReady).toBe(true);
    // the data file is the blob's uncompressed form: every chunk at its uncompressed offset
    const bytes = readFileSync(data);
    for (const [, file] of one.files) {
      file.chunks.forEach((c, i) => expect(bytes.subarray(c.uncompressedOffset, c.uncompressedOffset + c.uncompressedSize).equals(file.data.subarray(i * 4096, i * 4096 + c.uncompressedSize))).toBe(true));
    }

    const reopened = await BlobCache.open(dir, { backend });
    await readAllFiles(reopened, one);
    expect(backend.calls.length).toBe(afterFirst);
    const [usage] = await reopened.list();
    expect(usage).toMatchObject({ blobId: one.blob.blobId, readyChunks: one.blob.chunkCount, totalChunks: one.blob.chunkCount, exact: true, dataSize: one.blob.uncompressedSize });
    await reopened.close();
  });

  it('merges the misses of one turn into few range requests', async () => {
    const backend = backendFor(one);
    const cache = await BlobCache.open(freshDir(), { backend, fetch: { amplify: 0 } });
    await Promise.all(one.chunks.map((c) => cache.readChunk(one.blob, c)));
    // the whole blob is far below the 4 MiB request cap and its chunks are contiguous
    expect(backend.calls.length).toBe(1);
    expect(cache.fetcher!.stats.chunks).toBe(one.chunks.length);
    await cache.close();

    // a small gap limit and request cap split the same reads, but still far fewer requests than chunks
    const capped = backendFor(one);
    const small = await BlobCache.open(freshDir(), { backend: capped, fetch: { amplify: 0, maxRequest: 32 << 10, mergeGap: 0 } });
    await Promise.all(one.chunks.map((c) => small.readChunk(one.blob, c)));
    expect(capped.calls.length).toBeGreaterThan(1);
    expect(capped.calls.length).toBeLessThan(one.chunks.length / 3);
    for (const call of capped.calls) expect(call.length).toBeLessThanOrEqual(32 << 10);
    await small.close();
  });

  it('does not merge across a gap wider than mergeGap', async () => {
    const backend = backendFor(one);
    const cache = await BlobCache.open(freshDir(), { backend, fetch: { amplify: 0, mergeGap: 0 } });
    const sorted = [...one.chunks].sort((a, b) => a.compressedOffset - b.compressedOffset);
    const picks = [sorted[0]!, sorted[10]!, sorted[20]!];
    await Promise.all(picks.map((c) => cache.readChunk(one.blob, c)));
    expect(backend.calls.map((c) => c.offset)).toEqual(picks.map((c) => c.compressedOffset));
    await cache.close();
  });

  it('amplifies a sequential read toward 1 MiB with the blob chunk table', async () => {
    const backend = backendFor(one);
    const tables = await blobChunkTables(one.rafs);
    const cache = await BlobCache.open(freshDir(), { backend, fetch: { chunkTable: (b) => tables.get(b.blobId) } });
    await readAllFiles(cache, one, false);
    expect(backend.calls.length).toBeLessThanOrEqual(2);
    expect(cache.fetcher!.stats.amplifiedChunks).toBeGreaterThan(one.chunks.length / 2);
    await cache.close();
  });

  it('shares an in-flight chunk between readers: one request', async () => {
    const backend = backendFor(one);
    let release!: () => void;
    backend.gate = new Promise((r) => (release = r));
    const cache = await BlobCache.open(freshDir(), { backend, fetch: { amplify: 0 } });
    const ref = one.chunks[5]!;
    const early = [cache.readChunk(one.blob, ref), cache.readChunk(one.blob, ref)];
    await waitFor(() => backend.calls.length > 0, 'the first request to be on the wire');
    const late = [cache.readChunk(one.blob, ref), cache.readChunk(one.blob, ref)];
    release();
    const all = await Promise.all([...early, ...late]);
    expect(backend.calls.length).toBe(1);
    for (const d of all) expect(d.equals(all[0]!)).toBe(true);
    await cache.close();
  });

  it('fails only the corrupt chunk, with ChunkIntegrityError, and does not mark it', async () => {
    const backend = backendFor(one);
    const victim = one.chunks[7]!;
    backend.tamper = (_id, offset, data) => {
      const at = victim.compressedOffset - offset;
      if (at >= 0 && at < data.length) data[at + Math.floor(victim.compressedSize / 2)] ^= 0xff;
    };
    const cache = await BlobCache.open(freshDir(), { backend, fetch: { amplify: 0 } });
    const results = await Promise.allSettled(one.chunks.map((c) => cache.readChunk(one.blob, c)));
    // one request for all, and one more for the corrupt chunk alone (broken on the way, perhaps)
    expect(backend.calls.length).toBe(2);
    results.forEach((r, i) => {
      if (one.chunks[i] === victim) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ChunkIntegrityError);
      } else {
        expect(r.status).toBe('fulfilled');
      }
    });
    expect(await cache.isCached(one.blob, victim)).toBe(false);
    expect(await cache.isCached(one.blob, one.chunks[6]!)).toBe(true);
    expect(cache.fetcher!.stats.corruptChunks).toBe(2);
    // once the backend behaves, the chunk is fetched again and kept
    backend.tamper = undefined;
    await readAllFiles(cache, one);
    expect(await cache.isCached(one.blob, victim)).toBe(true);
    await cache.close();
  });

  it('rejects a chunk outside its blob', async () => {
    const cache = await BlobCache.open(freshDir(), { backend: backendFor(one) });
    const bad: ChunkRef = { ...one.chunks[0]!, ciIndex: one.blob.chunkCount };
    await expect(cache.readChunk(one.blob, bad)).rejects.toBeInstanceOf(ChunkIntegrityError);
    await cache.close();
  });

  it('fails every chunk of a request the backend fails, and caches none', async () => {
    const failing = new CountingBackend({ readRange: () => Promise.reject(new Error('boom')), size: () => Promise.resolve(0), close: () => Promise.resolve() });
    const cache = await BlobCache.open(freshDir(), { backend: failing });
    const results = await Promise.allSettled(one.chunks.slice(0, 4).map((c) => cache.readChunk(one.blob, c)));
    expect(results.every((r) => r.status === 'rejected' && (r.reason as Error).message === 'boom')).toBe(true);
    expect((await cache.list())[0]!.readyChunks).toBe(0);
    await cache.close();
  });

  it('prune removes least recently used blobs first, keeps the newest, respects max size', async () => {
    const dir = freshDir();
    const fetcher = new ChunkFetcher(local(one));
    const cache = await BlobCache.open(dir, { fetcher });
    for (const t of [one, two, three]) {
      await readAllFiles(cache, t);
      await new Promise((r) => setTimeout(r, 20));
    }
    // touch `one` again: now `two` is the oldest
    await cache.readChunk(one.blob, one.chunks[0]!);
    const before = await cache.list();
    expect(before.map((b) => b.blobId).sort()).toEqual([one, two, three].map((t) => t.blob.blobId).sort());
    const size = (t: TestBlob) => before.find((b) => b.blobId === t.blob.blobId)!.diskBytes;
    const total = before.reduce((s, b) => s + b.diskBytes, 0);

    const nothing = await cache.prune(total);
    expect(nothing.removed).toEqual([]);

    const r1 = await cache.prune(total - 1);
    expect(r1.removed).toEqual([two.blob.blobId]);
    expect(r1.totalBytes).toBeLessThanOrEqual(total - 1);

    const r2 = await cache.prune(size(one));
    expect(r2.removed).toEqual([three.blob.blobId]);
    expect(r2.totalBytes).toBeLessThanOrEqual(size(one));
    expect((await cache.list()).map((b) => b.blobId)).toEqual([one.blob.blobId]);
    expect(existsSync(join(dir, `${two.blob.blobId}.blob.data`))).toBe(false);
    expect(existsSync(join(dir, `${two.blob.blobId}.blob.data.chunk_map`))).toBe(false);

    // a removed blob comes back on the next read
    await readAllFiles(cache, two);
    expect((await cache.list()).length).toBe(2);
    await cache.close();
  });

  it('never removes a blob with reads in flight', async () => {
    const backend = backendFor(one);
    const cache = await BlobCache.open(freshDir(), { backend, fetch: { amplify: 0 } });
    await cache.readChunk(one.blob, one.chunks[0]!);
    let release!: () => void;
    backend.gate = new Promise((r) => (release = r));
    const reading = cache.readChunk(one.blob, one.chunks[1]!);
    await waitFor(() => backend.calls.length === 2, 'the second read to be on the wire');
    expect(await cache.remove(one.blob.blobId)).toBe(false);
    expect((await cache.prune(0)).removed).toEqual([]);
    release();
    expect((await reading).length).toBe(one.chunks[1]!.uncompressedSize);
    expect(await cache.remove(one.blob.blobId)).toBe(true);
    expect(await cache.list()).toEqual([]);
    await cache.close();
  });

  it('copies valid chunks from a read-only fallback dir, and fetches the invalid ones', async () => {
    const shared = freshDir();
    const seed = await BlobCache.open(shared, { backend: backendFor(one) });
    await readAllFiles(seed, one);
    await seed.close();
    // spoil one chunk in the fallback's data file
    const victim = one.chunks[3]!;
    const fd = openSync(join(shared, `${one.blob.blobId}.blob.data`), 'r+');
    writeSync(fd, Buffer.from('garbage'), 0, 7, victim.uncompressedOffset);
    closeSync(fd);
    const sharedMap = readFileSync(join(shared, `${one.blob.blobId}.blob.data.chunk_map`));

    const backend = backendFor(one);
    const dir = freshDir();
    const cache = await BlobCache.open(dir, { backend, fallbackDir: shared, fetch: { amplify: 0 } });
    await readAllFiles(cache, one);
    expect(backend.calls).toEqual([{ blobId: one.blob.blobId, offset: victim.compressedOffset, length: victim.compressedSize }]);
    await cache.close();
    // our cache is complete and the fallback untouched
    const ours = await BlobCache.open(dir);
    await readAllFiles(ours, one);
    await ours.close();
    expect(readFileSync(join(shared, `${one.blob.blobId}.blob.data.chunk_map`)).equals(sharedMap)).toBe(true);
  });

  it('a cache without a backend reports a miss as an error', async () => {
    const cache = await BlobCache.open(freshDir());
    await expect(cache.readChunk(one.blob, one.chunks[0]!)).rejects.toThrow(/not cached/);
    await cache.close();
  });
});

describe('nydusify-ts cache', () => {
  it('ls, usage, prune and rm a cache directory', async () => {
    const dir = freshDir();
    const cache = await BlobCache.open(dir, { backend: local(one) });
    await readAllFiles(cache, one);
    await new Promise((r) => setTimeout(r, 20));
    await readAllFiles(cache, three);
    await cache.close();

    const ls = runCli(['cache', 'ls', '--cache-dir', dir]);
    expect(ls.status).toBe(0);
    const lines = ls.stdout.trim().split('\n');
    expect(lines[0]).toBe('BLOB  SIZE  DISK-BYTES  READY/CHUNKS');
    const row = lines.find((l) => l.startsWith(one.blob.blobId))!.split(/\s+/);
    expect(Number(row[1])).toBe(one.blob.uncompressedSize);
    const slots = Math.ceil(one.blob.chunkCount / 8) * 8;
    expect(row[3]).toBe(`${slots}/${slots}*`); // all_ready: every slot counts

    const json = JSON.parse(runCli(['cache', 'ls', '--cache-dir', dir, '--json']).stdout) as { blobId: string; diskBytes: number }[];
    expect(json.map((b) => b.blobId).sort()).toEqual([one.blob.blobId, three.blob.blobId].sort());
    const total = json.reduce((s, b) => s + b.diskBytes, 0);
    const usage = runCli(['cache', 'usage', '--cache-dir', dir]);
    expect(usage.stdout).toBe(`${total} bytes in 2 blobs\n`);

    const threeBytes = json.find((b) => b.blobId === three.blob.blobId)!.diskBytes;
    const pruned = runCli(['cache', 'prune', '--cache-dir', dir, '--max-size', String(threeBytes)]);
    expect(pruned.status).toBe(0);
    expect(pruned.stdout).toContain(`removed ${one.blob.blobId}`);

    const rm = runCli(['cache', 'rm', three.blob.blobId, '--cache-dir', dir]);
    expect(rm.status).toBe(0);
    expect(JSON.parse(runCli(['cache', 'usage', '--cache-dir', dir, '--json']).stdout)).toEqual({ blobs: 0, totalBytes: 0 });
    const again = runCli(['cache', 'rm', three.blob.blobId, '--cache-dir', dir]);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain(`blob ${three.blob.blobId} is not in ${dir}\n`);

    expect(runCli(['cache', 'prune', '--cache-dir', dir]).status).not.toBe(0); // --max-size is required
    expect(runCli(['cache', 'ls']).status).not.toBe(0); // --cache-dir is required
    expect(runCli(['cache', 'ls', '--cache-dir', join(dir, 'nope')]).stderr).toContain('does not exist');
  });
});
