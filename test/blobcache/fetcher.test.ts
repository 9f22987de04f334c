// The fetcher alone, with a recording sink: ordering of write → sync → mark, and what happens when
// the cache cannot keep a chunk.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkIntegrityError } from '../../src/blobcache/chunk-decoder.js';
import { blobChunkTables, ChunkFetcher, FetchTimeoutError, type ChunkSink } from '../../src/blobcache/fetcher.js';
import { LocalDirBackend } from '../../src/blobcache/local-backend.js';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { gzipLayerModel } from '../../src/convert/targz-ref.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import type { ChunkRef } from '../../src/rafs/tree.js';
import { turnsDuring } from '../helpers/event-loop.js';
import { waitFor } from '../helpers/wait-for.js';
import { manyChunksBootstrap, sharedDirentBlocksBootstrap } from '../rafs/helpers.js';
import { content, CountingBackend, makeBlob, type TestBlob } from './helpers.js';
import { streamOf, tarBytes } from '../helpers/tar-bytes.js';

const work = mkdtempSync(join(tmpdir(), 'fetcher-'));
let t: TestBlob;
let local: LocalDirBackend;

beforeAll(async () => {
  t = await makeBlob(work, { 'f.bin': content(11, 64 << 10) });
  local = new LocalDirBackend(t.blobDir);
});

afterAll(async () => {
  await local.close();
  rmSync(work, { recursive: true, force: true });
});

function recordingSink(failWrite?: (ref: ChunkRef) => boolean) {
  const events: string[] = [];
  const ready = new Set<number>();
  const sink: ChunkSink = {
    isReady: (i) => ready.has(i),
    write: async (ref) => {
      events.push(`write ${ref.ciIndex}`);
      if (failWrite?.(ref)) throw new Error('ENOSPC');
    },
    sync: async () => void events.push('sync'),
    markReady: async (i) => {
      events.push(`mark ${i}`);
      ready.add(i);
    },
  };
  return { sink, events, ready };
}

describe('ChunkFetcher', () => {
  it('writes each chunk, syncs, and only then marks it', async () => {
    const fetcher = new ChunkFetcher(local, { amplify: 0 });
    const { sink, events } = recordingSink();
    const chunks = t.chunks.slice(0, 5);
    await Promise.all(chunks.map((c) => fetcher.fetch(t.blob, c, sink)));
    for (const c of chunks) {
      const written = events.indexOf(`write ${c.ciIndex}`);
      const marked = events.indexOf(`mark ${c.ciIndex}`);
      expect(written).toBeGreaterThanOrEqual(0);
      expect(marked).toBeGreaterThan(written);
      expect(events.slice(written, marked)).toContain('sync');
    }
    expect(events.filter((e) => e.startsWith('mark')).sort()).toEqual(chunks.map((c) => `mark ${c.ciIndex}`).sort());
    expect(fetcher.stats.requests).toBe(1);
    expect(fetcher.inflightCount).toBe(0);
  });

  it('still returns verified data the cache could not store, without marking it', async () => {
    const fetcher = new ChunkFetcher(local, { amplify: 0 });
    const victim = t.chunks[2]!;
    const { sink, ready } = recordingSink((ref) => ref.ciIndex === victim.ciIndex);
    const data = await Promise.all(t.chunks.map((c) => fetcher.fetch(t.blob, c, sink)));
    expect(Buffer.concat(data).equals(t.files.get('/f.bin')!.data)).toBe(true);
    expect(ready.has(victim.ciIndex)).toBe(false);
    expect(ready.size).toBe(t.chunks.length - 1);
  });

  it('hands an early reader the verified bytes before they are stored; a reader meanwhile shares the fetch', async () => {
    const backend = new CountingBackend(local);
    const fetcher = new ChunkFetcher(backend, { amplify: 0 });
    const { sink, events, ready } = recordingSink();
    let releaseSync!: () => void;
    const syncing = new Promise<void>((resolve) => (releaseSync = resolve));
    const slowSink: ChunkSink = { ...sink, sync: async () => { events.push('sync'); await syncing; } };
    const chunk = t.chunks[1]!;
    const early = await fetcher.fetch(t.blob, chunk, slowSink, true);
    expect(early.equals(t.files.get('/f.bin')!.data.subarray(chunk.fileOffset, chunk.fileOffset + chunk.uncompressedSize))).toBe(true);
    expect(ready.has(chunk.ciIndex)).toBe(false); // not stored yet: the disk is still syncing
    const late = fetcher.fetch(t.blob, chunk, slowSink);
    releaseSync();
    expect((await late).equals(early)).toBe(true);
    expect(ready.has(chunk.ciIndex)).toBe(true);
    expect(backend.calls).toHaveLength(1);
    expect(fetcher.inflightCount).toBe(0);
  });

  it('amplifies only with missing chunks and never past the next request', async () => {
    const backend = new CountingBackend(local);
    const fetcher = new ChunkFetcher(backend, { chunkTable: () => t.chunks, mergeGap: 0 });
    const { sink, ready } = recordingSink();
    const sorted = [...t.chunks].sort((a, b) => a.compressedOffset - b.compressedOffset);
    ready.add(sorted[1]!.ciIndex); // already cached: skipped, and the gap it leaves ends the request
    await fetcher.fetch(t.blob, sorted[0]!, sink);
    expect(backend.calls).toEqual([{ blobId: t.blob.blobId, offset: sorted[0]!.compressedOffset, length: sorted[0]!.compressedSize }]);
    await fetcher.fetch(t.blob, sorted[2]!, sink);
    // from chunk 2 on everything is missing and contiguous: one request to the end of the blob
    const last = sorted.at(-1)!;
    expect(backend.calls[1]).toEqual({ blobId: t.blob.blobId, offset: sorted[2]!.compressedOffset, length: last.compressedOffset + last.compressedSize - sorted[2]!.compressedOffset });
    // the grown request's other chunks are settled (decoded off the main thread) after the asked one
    await waitFor(() => fetcher.inflightCount === 0, 'the grown request to settle');
    expect(ready.size).toBe(t.chunks.length);
  });

  it('a miss in a gzip layer brings every chunk decoded from its checkpoint, and no other', async () => {
    const data = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `line ${i} of a layer served as it is\n`).join(''));
    const tar = await tarBytes(async (w) => w.file({ path: 'f.txt', size: data.length }, data));
    const layer = gzipSync(tar);
    const { model, blobId } = await gzipLayerModel({ source: streamOf(layer), blobSize: layer.length, chunkSize: 16 << 10, span: 64 << 10 });
    mkdirSync(join(work, 'gz'), { recursive: true });
    writeFileSync(join(work, 'gz', blobId), layer);
    const gzBackend = new CountingBackend(new LocalDirBackend(join(work, 'gz')));
    const rafs = RafsImage.open(writeBootstrap(model));
    const blob = rafs.blobs[0]!;
    const chunks = [...rafs.chunkInfoTable()];
    const fetcher = new ChunkFetcher(gzBackend, { chunkTable: () => chunks });
    const { sink, ready } = recordingSink();
    // a chunk that shares its checkpoint with others after it
    const asked = chunks.find((c) => chunks.filter((o) => o.checkpoint === c.checkpoint).length > 2)!;
    const mates = chunks.filter((c) => c.checkpoint === asked.checkpoint);
    const got = await fetcher.fetch(blob, asked, sink);
    expect(got.equals(data.subarray(asked.ciIndex * (16 << 10), asked.ciIndex * (16 << 10) + asked.uncompressedSize))).toBe(true);
    await waitFor(() => fetcher.inflightCount === 0, 'the span to settle');
    const end = Math.max(...mates.map((c) => c.compressedOffset + c.compressedSize));
    expect(gzBackend.calls).toEqual([{ blobId: blob.blobId, offset: asked.compressedOffset, length: end - asked.compressedOffset }]);
    expect([...ready].sort((a, b) => a - b)).toEqual(mates.map((c) => c.ciIndex).sort((a, b) => a - b));
  });

  it('hands over each chunk as its bytes arrive, before the rest of a grown request', async () => {
    const sorted = [...t.chunks].sort((a, b) => a.compressedOffset - b.compressedOffset);
    let finish!: () => void;
    const held = new Promise<void>((r) => (finish = r));
    // streams the first chunk's bytes, then holds the rest back until the test lets go
    const slow = {
      readRange: async (blobId: string, offset: number, length: number, progress?: (buf: Buffer, filled: number) => void) => {
        const all = await local.readRange(blobId, offset, length);
        progress?.(all, sorted[0]!.compressedSize);
        await held;
        return all;
      },
      size: (blobId: string) => local.size(blobId),
      close: async () => undefined,
    };
    const fetcher = new ChunkFetcher(slow, { chunkTable: () => t.chunks, mergeGap: 1 << 20 });
    const { sink, ready } = recordingSink();
    const first = await fetcher.fetch(t.blob, sorted[0]!, sink);
    expect(first.equals(t.files.get('/f.bin')!.data.subarray(0, first.length))).toBe(true);
    expect(ready.has(sorted[0]!.ciIndex)).toBe(true);
    expect(ready.has(sorted[1]!.ciIndex)).toBe(false);
    expect(fetcher.inflightCount).toBeGreaterThan(0);
    finish();
    await fetcher.fetch(t.blob, sorted[1]!, sink);
    expect(fetcher.stats.requests).toBe(1);
  });

  it('regression: a request stalled past its deadline is aborted, fails its chunks, and the next read asks anew', async () => {
    const signals: AbortSignal[] = [];
    let stalled = true;
    // the first request stalls (a slow-loris registry); it ends only when its signal says so
    const stalling = {
      readRange: (blobId: string, offset: number, length: number, _progress?: unknown, signal?: AbortSignal) => {
        signals.push(signal!);
        if (!stalled) return local.readRange(blobId, offset, length);
        return new Promise<Buffer>((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
      },
      size: (blobId: string) => local.size(blobId),
      close: async () => undefined,
    };
    const fetcher = new ChunkFetcher(stalling, { amplify: 0, requestTimeoutMs: 200 });
    const { sink } = recordingSink();
    const chunk = t.chunks[0]!;
    const started = performance.now();
    const first = fetcher.fetch(t.blob, chunk, sink);
    const bounded = new Promise((r) => setTimeout(r, 2_000, 'still waiting'));
    expect(await Promise.race([first.catch((e: unknown) => e), bounded])).toBeInstanceOf(FetchTimeoutError);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(signals[0]!.aborted).toBe(true);
    expect(fetcher.stats).toMatchObject({ timeouts: 1, errors: 1 });
    stalled = false;
    const again = await fetcher.fetch(t.blob, chunk, sink);
    expect(again.equals(t.files.get('/f.bin')!.data.subarray(0, again.length))).toBe(true);
    expect(signals).toHaveLength(2);
  });

  it('regression: a chunk whose bytes were broken on the way is fetched again, not failed', async () => {
    const backend = new CountingBackend(local);
    let flips = 1;
    backend.tamper = (_, __, data) => {
      if (flips-- > 0) data[data.length >> 1]! ^= 0x20;
    };
    const fetcher = new ChunkFetcher(backend, { amplify: 0 });
    const { sink, ready } = recordingSink();
    const chunk = t.chunks[1]!;
    const data = await fetcher.fetch(t.blob, chunk, sink);
    expect(data.equals(t.files.get('/f.bin')!.data.subarray(chunk.fileOffset, chunk.fileOffset + data.length))).toBe(true);
    expect(ready.has(chunk.ciIndex)).toBe(true);
    expect(backend.calls).toHaveLength(2);
    expect(fetcher.stats).toMatchObject({ corruptChunks: 1, refetches: 1, chunks: 1 });
  });

  it('fails a chunk corrupt at every fetch after one refetch, never marking it', async () => {
    const backend = new CountingBackend(local);
    backend.tamper = (_, __, data) => void (data[0]! ^= 0xff);
    const fetcher = new ChunkFetcher(backend, { amplify: 0 });
    const { sink, ready } = recordingSink();
    await expect(fetcher.fetch(t.blob, t.chunks[2]!, sink)).rejects.toBeInstanceOf(ChunkIntegrityError);
    expect(backend.calls).toHaveLength(2);
    expect(ready.size).toBe(0);
    expect(fetcher.stats).toMatchObject({ corruptChunks: 2, refetches: 1, chunks: 0 });
  });
});

describe('blobChunkTables', () => {
  it('regression: refuses directories sharing dirent blocks (an image without a chunk table is walked)', async () => {
    const image = RafsImage.open(sharedDirentBlocksBootstrap(1000, 20_000));
    await expect(blobChunkTables(image)).rejects.toThrow(RafsFormatError);
  });

  it('regression: lets the event loop run while it reads a big chunk table', async () => {
    const image = RafsImage.open(manyChunksBootstrap(100, 1000));
    const { result, turns } = await turnsDuring(() => blobChunkTables(image));
    expect(result.get('c'.repeat(64))).toHaveLength(100_000);
    expect(turns).toBeGreaterThan(1);
  });
});
