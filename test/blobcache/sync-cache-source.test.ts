// The worker side of lazy loading, without a kernel or a thread: cached chunks are served by pread
// from the blob cache without asking; a miss asks once and fails (EIO for the read) on a failed
// answer, on a stale answer and on no answer at all within the timeout — never a hang.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../../src/blobcache/cache.js';
import { ChunkIntegrityError } from '../../src/blobcache/chunk-decoder.js';
import { LocalDirBackend } from '../../src/blobcache/local-backend.js';
import { answerFetch, FETCH_SLOT_BYTES, slotWords, SyncLazyCacheSource, type FetchRequest, type WantRequest, type WorkerAsk } from '../../src/blobcache/sync-cache-source.js';
import { content, makeBlob, type TestBlob } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'lazy-source-'));
let t: TestBlob;
let cacheDir: string;

beforeAll(async () => {
  t = await makeBlob(work, { 'a.bin': content(1, 40 << 10), 'b.txt': Buffer.from('lazy\n'.repeat(3000)) });
  cacheDir = join(work, 'cache');
  const backend = new LocalDirBackend(t.blobDir);
  const cache = await BlobCache.open(cacheDir, { backend });
  // a.bin cached, b.txt not
  for (const ref of t.files.get('/a.bin')!.chunks) await cache.readChunk(t.blob, ref);
  await cache.close();
  await backend.close();
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

function source(answer: (slot: Int32Array, req: Omit<FetchRequest, 'slot'>) => void, timeoutMs = 200) {
  const sab = new SharedArrayBuffer(FETCH_SLOT_BYTES);
  const slot = slotWords(sab);
  const asked: Omit<FetchRequest, 'slot'>[] = [];
  const wanted: Omit<WantRequest, 'slot'>[] = [];
  const src = new SyncLazyCacheSource(cacheDir, t.rafs.blobs, sab, (req) => {
    if (req.type === 'want') return void wanted.push(req);
    asked.push(req);
    answer(slot, req);
  }, timeoutMs);
  return { src, asked, wanted };
}

describe('SyncLazyCacheSource', () => {
  it('serves cached chunks from the cache files without asking', () => {
    const { src, asked } = source(() => undefined);
    const a = t.files.get('/a.bin')!;
    const got = Buffer.concat(a.chunks.map((c) => src.read(c)));
    expect(got.equals(a.data)).toBe(true);
    expect(asked).toEqual([]);
    src.close();
  });

  it('tells the main thread at once which of a read\'s chunks are missing (two or more), without waiting', () => {
    const { src, asked, wanted } = source(() => undefined);
    const a = t.files.get('/a.bin')!.chunks;
    const b = t.files.get('/b.txt')!.chunks;
    expect(b.length).toBeGreaterThan(1);
    src.want([a[0]!, ...b], 9, [0, ...b.map((c) => c.fileOffset)]);
    expect(wanted).toEqual([{ type: 'want', nid: 9, chunks: b.map((c) => [c.blobIndex, c.ciIndex, c.fileOffset]) }]);
    // one missing chunk: the read asks for it itself
    src.want([a[0]!, b[0]!], 9, [0, 0]);
    expect(wanted).toHaveLength(1);
    expect(asked).toEqual([]);
    src.close();
  });

  it('asks for a missing chunk and fails the read when the fetch failed', () => {
    const { src, asked } = source((slot, req) => answerFetch(slot, req.id, false));
    const ref = t.files.get('/b.txt')!.chunks[0]!;
    expect(() => src.read(ref, 7, 0)).toThrow(ChunkIntegrityError);
    // the file whose read wants the chunk goes along, for the access trace
    expect(asked).toEqual([{ type: 'fetch', id: 1, blobIndex: ref.blobIndex, ciIndex: ref.ciIndex, nid: 7, fileOffset: 0 }]);
    expect(src.fetched).toBe(1);
    src.close();
  });

  it('regression: takes a chunk the cache could not keep (a full disk) from the reply slot, not EIO', () => {
    const ref = t.files.get('/b.txt')!.chunks[1]!;
    const want = t.files.get('/b.txt')!.data.subarray(ref.fileOffset, ref.fileOffset + ref.uncompressedSize);
    const { src, asked } = source((slot, req) => answerFetch(slot, req.id, Buffer.from(want)));
    expect(src.read(ref).equals(want)).toBe(true);
    src.close();
    // not in the cache: another reader asks for it again
    const again = source((slot, req) => answerFetch(slot, req.id, Buffer.from(want)));
    expect(again.src.read(ref).equals(want)).toBe(true);
    expect(asked.length).toBe(1);
    expect(again.asked.length).toBe(1);
    again.src.close();
  });

  it('gives up after the timeout when nobody answers (or only a stale answer comes)', () => {
    for (const answer of [() => undefined, (slot: Int32Array, req: Omit<FetchRequest, 'slot'>) => answerFetch(slot, req.id - 1, true)]) {
      const { src } = source(answer, 150);
      const started = Date.now();
      expect(() => src.read(t.files.get('/b.txt')!.chunks[0]!)).toThrow(/timed out/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(140);
      src.close();
    }
  });

  it('numbers requests per worker slot, so a second image never takes the first one\'s old answer (regression)', () => {
    const sab = new SharedArrayBuffer(FETCH_SLOT_BYTES);
    const slot = slotWords(sab);
    const asked: number[] = [];
    // the first image's source: its request is answered, and failed
    const fail = (req: WorkerAsk) => {
      if (req.type !== 'fetch') return;
      asked.push(req.id);
      answerFetch(slot, req.id, false);
    };
    const first = new SyncLazyCacheSource(cacheDir, t.rafs.blobs, sab, fail, 150);
    const ref = t.files.get('/b.txt')!.chunks[0]!;
    expect(() => first.read(ref)).toThrow(ChunkIntegrityError);
    // the second image's source on the same slot: nobody answers, so it must time out, not reuse id 1's answer
    const second = new SyncLazyCacheSource(cacheDir, t.rafs.blobs, sab, (req) => req.type === 'fetch' && asked.push(req.id), 150);
    expect(() => second.read(ref)).toThrow(/timed out/);
    expect(asked).toEqual([1, 2]);
    first.close();
    second.close();
  });
});
