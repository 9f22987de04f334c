// Regression tests for cross-image cache poisoning (issue #11, item 1): a blob id says nothing of
// the chunk table an image claims for it, so an image that names a public blob id with its own
// table must never make another image read its bytes, nor zeros from a truncated cache file.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BlobCache, ChunkConflictError } from '../../src/blobcache/cache.js';
import { tableConflict } from '../../src/blobcache/chunk-claim.js';
import { ChunkIntegrityError } from '../../src/blobcache/chunk-decoder.js';
import { CHUNK_DATA_SUFFIX, ChunkMapConflictError } from '../../src/blobcache/chunk-map.js';
import { LocalDirBackend } from '../../src/blobcache/local-backend.js';
import { FETCH_SLOT_BYTES, SyncLazyCacheSource } from '../../src/blobcache/sync-cache-source.js';
import type { BlobInfo, ChunkRef } from '../../src/rafs/tree.js';
import { content, makeBlob, type TestBlob } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'cache-poisoning-'));
let t: TestBlob;
let backend: LocalDirBackend;
let cacheDir: string;
let run = 0;
const open: BlobCache[] = [];

beforeAll(async () => {
  t = await makeBlob(work, { 'a.bin': content(7, 64 << 10) });
  backend = new LocalDirBackend(t.blobDir);
});
afterAll(async () => {
  await backend.close();
  rmSync(work, { recursive: true, force: true });
});
beforeEach(() => {
  cacheDir = join(work, `cache-${run++}`);
});
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

/** A cache over the dir, as another process (or a restarted daemon) would open it. */
async function cacheOf(): Promise<BlobCache> {
  const c = await BlobCache.open(cacheDir, { backend });
  open.push(c);
  return c;
}

/** The hostile claim: chunk 0 of the blob is chunk `from`'s stored bytes (a valid chunk, its own digest). */
function claimAsChunk0(from: ChunkRef): ChunkRef {
  const honest = t.chunks[0]!;
  return { ...from, ciIndex: 0, uncompressedOffset: honest.uncompressedOffset };
}

/** What a FUSE worker of the honest image reads for `ref` (no fetching: the chunk must be cached). */
function workerRead(ref: ChunkRef): Buffer {
  const src = new SyncLazyCacheSource(cacheDir, [t.blob], new SharedArrayBuffer(FETCH_SLOT_BYTES), () => undefined, 50);
  try {
    return Buffer.from(src.read(ref));
  } finally {
    src.close();
  }
}

describe('regression: cross-image cache poisoning', () => {
  it('an image naming a shared blob id with its own chunk table cannot make another image read its bytes', async () => {
    const [honest, other] = [t.chunks[0]!, t.chunks[3]!];
    expect(honest.digest.equals(other.digest)).toBe(false);
    const hostile = await cacheOf();
    // the hostile image reads "its" chunk 0: verified against its own digest, stored at chunk 0's place
    const planted = await hostile.readChunk(t.blob, claimAsChunk0(other));
    expect(planted.equals(await (await cacheOf()).readChunk(t.blob, other))).toBe(true);

    // the honest image, in the same process, after a restart, and in a FUSE worker: an error, never those bytes
    await expect(hostile.readChunk(t.blob, honest)).rejects.toBeInstanceOf(ChunkConflictError);
    await expect((await cacheOf()).readChunk(t.blob, honest)).rejects.toBeInstanceOf(ChunkConflictError);
    expect(() => workerRead(honest)).toThrow(ChunkIntegrityError);
  });

  it('a chunk stored first by the honest image is never written over by a conflicting claim', async () => {
    const honest = t.chunks[0]!;
    // another process opened the blob before the honest image stored the chunk: its map is stale
    const hostile = await cacheOf();
    expect(await hostile.isCached(t.blob, honest)).toBe(false);
    const good = await (await cacheOf()).readChunk(t.blob, honest);
    expect(workerRead(honest).equals(good)).toBe(true); // verified by the worker once, served from the file after
    // the hostile fetch is verified for its own reader, but the file keeps the honest bytes
    await hostile.readChunk(t.blob, claimAsChunk0(t.chunks[5]!)).catch(() => undefined);
    const file = readFileSync(join(cacheDir, t.blob.blobId + CHUNK_DATA_SUFFIX));
    expect(file.subarray(honest.uncompressedOffset, honest.uncompressedOffset + honest.uncompressedSize).equals(good)).toBe(true);
    await expect((await cacheOf()).readChunk(t.blob, honest)).resolves.toEqual(good);
  });

  it('two images describing one chunk differently never share a fetch', async () => {
    const cache = await cacheOf();
    const honest = t.chunks[0]!;
    const [planted, mine] = await Promise.allSettled([cache.readChunk(t.blob, claimAsChunk0(t.chunks[2]!)), cache.readChunk(t.blob, honest)]);
    expect(planted.status).toBe('fulfilled');
    // one of the two claims is stored; the honest reader gets its own verified bytes or an error, never the other's
    if (mine.status === 'fulfilled') expect(mine.value.equals(t.files.get('/a.bin')!.data.subarray(0, honest.uncompressedSize))).toBe(true);
    else expect(mine.reason).toBeInstanceOf(ChunkIntegrityError);
  });
});

describe('regression: cache file truncated by an image claiming another size', () => {
  it('a smaller size claimed for a shared blob id never truncates the cache file under its readers', async () => {
    const honest = await cacheOf();
    const file = t.files.get('/a.bin')!;
    for (const ref of file.chunks) await honest.readChunk(t.blob, ref);
    const shrunk: BlobInfo = { ...t.blob, uncompressedSize: 4096 };
    const hostile = await cacheOf();
    await hostile.isCached(shrunk, t.chunks[0]!);
    // the honest image's readers (this cache, a restarted one, a worker) still get every byte right
    const again = await cacheOf();
    for (const c of [honest, again]) {
      const got = Buffer.concat(await Promise.all(file.chunks.map((ref) => c.readChunk(t.blob, ref))));
      expect(got.equals(file.data)).toBe(true);
    }
    expect(Buffer.concat(file.chunks.map(workerRead)).equals(file.data)).toBe(true);
  });

  it('another chunk count for a shared blob id is refused, and the map that is there is kept', async () => {
    const honest = await cacheOf();
    const ref = t.chunks[1]!;
    await honest.readChunk(t.blob, ref);
    const hostile = await cacheOf();
    await expect(hostile.isCached({ ...t.blob, chunkCount: t.blob.chunkCount + 100 }, ref)).rejects.toBeInstanceOf(ChunkMapConflictError);
    expect(await (await cacheOf()).isCached(t.blob, ref)).toBe(true);
  });

  it('one process refuses a second description of a blob it already serves', async () => {
    const cache = await cacheOf();
    await cache.readChunk(t.blob, t.chunks[0]!);
    await expect(cache.readChunk({ ...t.blob, uncompressedSize: t.blob.uncompressedSize + 4096 }, t.chunks[0]!)).rejects.toBeInstanceOf(ChunkConflictError);
    expect((await cache.readChunk(t.blob, t.chunks[0]!)).length).toBe(t.chunks[0]!.uncompressedSize);
  });
});

describe('regression: one daemon serving two descriptions of one blob', () => {
  it('tableConflict finds the first chunk two tables describe differently, and nothing in equal ones', () => {
    const copy = t.chunks.map((r) => ({ ...r, digest: Buffer.from(r.digest) }));
    expect(tableConflict(t.chunks, copy)).toBeUndefined();
    expect(tableConflict(t.chunks, [claimAsChunk0(t.chunks[4]!)])).toMatch(/chunk 0 is described differently/);
    // a table that lists fewer chunks (or others) is no conflict by itself
    expect(tableConflict(t.chunks, copy.slice(2))).toBeUndefined();
  });
});
