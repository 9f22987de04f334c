// The access trace recorder without a kernel: reads as the FUSE workers hand them over (through
// their trace rings, drained out of time order), fetches as the mount records them, and the trace
// taken from them: in time order, files numbered by first mention and named by their (first) path,
// chunks fetched for no read placed in the first file holding them, bounded, and a valid trace file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SyncBlobDirSource } from '../../src/blobcache/sync-blob-dir-source.js';
import type { SyncChunkSource } from '../../src/blobcache/sync-chunks.js';
import { RafsFuseFs } from '../../src/daemon/fs.js';
import { newTraceRing, NUDGE_AT, RING_RECORDS, type TraceReadSink, TraceRingReader, TraceRingWriter } from '../../src/daemon/fuse/trace-ring.js';
import { TraceRecorder } from '../../src/daemon/trace-recorder.js';
import type { ChunkRef } from '../../src/rafs/tree.js';
import { parseAccessTrace, serializeAccessTrace } from '../../src/trace/access-trace.js';
import { content, makeBlob, type TestBlob } from '../blobcache/helpers.js';

const work = mkdtempSync(join(tmpdir(), 'trace-recorder-'));
let t: TestBlob;
const ORIGIN = 1_000_000;

beforeAll(async () => {
  t = await makeBlob(work, {
    'a.bin': content(1, 40 << 10),
    'dir/b.txt': Buffer.from('trace\n'.repeat(3000)),
    // the same bytes as a.bin: its chunks are a.bin's (deduplicated)
    'dir/copy.bin': content(1, 40 << 10),
  }, 'layer', { 'dir/hard': 'dir/b.txt' });
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

const nidOf = (path: string): number => {
  for (const e of t.rafs.walk()) if (e.path === path) return e.nid;
  throw new Error(`no ${path}`);
};
const chunkOf = (path: string, i: number): ChunkRef => t.files.get(path)!.chunks[i]!;

function recorder(maxEvents?: number): TraceRecorder {
  const r = new TraceRecorder({ image: 'registry.example/app:1', rafs: t.rafs, bootstrap: () => Buffer.from('bootstrap bytes') }, ORIGIN, maxEvents);
  r.served(ORIGIN);
  return r;
}

/** A sink that hands the reads of slot 1 to `r`, as the daemon does. */
const sinkOf = (r: TraceRecorder): TraceReadSink => ({
  read: (slot, at, nid, offset, length, miss) => slot === 1 && r.read(at, nid, offset, length, miss),
  dropped: () => r.lost(),
});

/** A ring writer whose clock reads `ms` after the origin (the writer adds its thread's timeOrigin). */
function writeAt(w: TraceRingWriter, ms: number, nid: number, offset: number, length: number, miss: boolean): void {
  w.arrived = ORIGIN + ms - performance.timeOrigin;
  w.read(1, nid, offset, length, miss);
}

describe('TraceRecorder', () => {
  it('merges the reads of several workers, drained out of order, into time order; files by first mention', async () => {
    const r = recorder();
    const rings = [newTraceRing(), newTraceRing()];
    const [one, two] = rings.map((ring) => new TraceRingWriter(ring, () => undefined));
    const a = nidOf('/a.bin');
    const b = nidOf('/dir/b.txt');
    writeAt(one!, 5, a, 0, 4096, true);
    writeAt(one!, 9, a, 4096, 8192, false);
    writeAt(two!, 2, b, 100, 10, false);
    writeAt(two!, 7, b, 0, 4096, true);
    // worker one's ring first, then two's: the recorder sorts
    for (const ring of rings) new TraceRingReader(ring).drain(sinkOf(r));
    const trace = await r.take();
    expect(trace.files).toEqual([{ path: '/dir/b.txt', size: 18000 }, { path: '/a.bin', size: 40 << 10 }]);
    expect(trace.reads.map((x) => ({ ...x, t: Math.round(x.t) }))).toEqual([
      { t: 2, file: 0, offset: 100, length: 10, miss: false },
      { t: 5, file: 1, offset: 0, length: 4096, miss: true },
      { t: 7, file: 0, offset: 0, length: 4096, miss: true },
      { t: 9, file: 1, offset: 4096, length: 8192, miss: false },
    ]);
    expect(trace.truncated).toBe(false);
    // a ring drained is empty: taking again changes nothing
    for (const ring of rings) new TraceRingReader(ring).drain(sinkOf(r));
    expect((await r.take()).reads).toHaveLength(4);
  });

  it('a ring nudges the main thread once enough reads wait, and drops (and counts) reads once it is full', async () => {
    const r = recorder();
    const ring = newTraceRing();
    let nudges = 0;
    const w = new TraceRingWriter(ring, () => nudges++);
    for (let i = 0; i < RING_RECORDS + 10; i++) writeAt(w, i, nidOf('/a.bin'), 0, 1, false);
    expect(nudges).toBe(1);
    new TraceRingReader(ring).drain(sinkOf(r));
    const trace = await r.take();
    expect(trace.reads).toHaveLength(RING_RECORDS);
    expect(trace.truncated).toBe(true);
    // room again: the next fill nudges again
    for (let i = 0; i < NUDGE_AT; i++) writeAt(w, i, nidOf('/a.bin'), 0, 1, false);
    expect(nudges).toBe(2);
  });

  it('stops at its bound and says truncated', async () => {
    const r = recorder(3);
    const a = nidOf('/a.bin');
    r.read(ORIGIN + 1, a, 0, 1, false);
    r.fetch('demand', chunkOf('/a.bin', 0), ORIGIN + 2, ORIGIN + 3, { nid: a, offset: 0 });
    r.read(ORIGIN + 4, a, 1, 1, false);
    r.read(ORIGIN + 5, a, 2, 1, false);
    r.fetch('prefetch', chunkOf('/a.bin', 1), ORIGIN + 6, ORIGIN + 7);
    const trace = await r.take();
    expect(trace.reads.length + trace.fetches.length).toBe(3);
    expect(trace.reads.map((x) => x.offset)).toEqual([0, 1]);
    expect(trace.truncated).toBe(true);
  });

  it('names a hardlinked file by its first path in the image', async () => {
    const r = recorder();
    const hard = nidOf('/dir/hard');
    expect(hard).toBe(nidOf('/dir/b.txt'));
    const first = [...t.rafs.walk()].find((e) => e.nid === hard)!.path;
    r.read(ORIGIN + 1, hard, 0, 6, false);
    expect((await r.take()).files).toEqual([{ path: first, size: 18000 }]);
  });

  it('places each fetched chunk in a file: the read\'s for a demand fetch, else the first file holding it', async () => {
    const r = recorder();
    const copy = nidOf('/dir/copy.bin');
    // a demand fetch for a read of copy.bin: that file, where the read wanted it
    r.fetch('demand', chunkOf('/dir/copy.bin', 3), ORIGIN + 1, ORIGIN + 11, { nid: copy, offset: 3 * 4096 });
    // the same bytes fetched for no read: a.bin holds them first
    r.fetch('prefetch', chunkOf('/a.bin', 4), ORIGIN + 20, ORIGIN + 25);
    r.fetch('readahead', chunkOf('/dir/b.txt', 2), ORIGIN + 30, ORIGIN + 31);
    // a chunk no file holds
    r.fetch('hot', { ...chunkOf('/a.bin', 0), ciIndex: 9999 }, ORIGIN + 40, ORIGIN + 41);
    // asked for before the mount was served: at 0
    r.fetch('hot', chunkOf('/a.bin', 5), ORIGIN - 50, ORIGIN + 5);
    const trace = await r.take();
    expect(trace.files.map((f) => f.path)).toEqual(['/a.bin', '/dir/copy.bin', '/dir/b.txt']);
    const a = chunkOf('/a.bin', 5);
    expect(trace.fetches).toEqual([
      { t: 0, ms: 55, blob: 0, chunk: a.ciIndex, bytes: a.compressedSize, size: 4096, file: 0, offset: 5 * 4096, kind: 'hot' },
      expect.objectContaining({ t: 1, ms: 10, chunk: chunkOf('/dir/copy.bin', 3).ciIndex, file: 1, offset: 3 * 4096, kind: 'demand' }),
      expect.objectContaining({ t: 20, ms: 5, chunk: chunkOf('/a.bin', 4).ciIndex, file: 0, offset: 4 * 4096, kind: 'prefetch' }),
      expect.objectContaining({ t: 30, ms: 1, chunk: chunkOf('/dir/b.txt', 2).ciIndex, file: 2, offset: 2 * 4096, kind: 'readahead' }),
      { t: 40, ms: 1, blob: 0, chunk: 9999, bytes: chunkOf('/a.bin', 0).compressedSize, size: 4096, kind: 'hot' },
    ]);
  });

  it('gives a trace file that parses back to the same trace', async () => {
    const r = recorder();
    const b = nidOf('/dir/b.txt');
    r.read(ORIGIN + 3.25, b, 4096, 4096, true);
    r.fetch('demand', chunkOf('/dir/b.txt', 1), ORIGIN + 3.5, ORIGIN + 9.75, { nid: b, offset: 4096 });
    const trace = await r.take();
    expect(trace).toMatchObject({ image: 'registry.example/app:1', blobs: [{ id: t.blob.blobId, compressedSize: t.blob.compressedSize, chunkSize: 4096 }] });
    expect(trace.bootstrap).toMatch(/^[0-9a-f]{64}$/);
    expect(parseAccessTrace(serializeAccessTrace(trace))).toEqual(trace);
  });
});

describe('RafsFuseFs reports the reads it serves', () => {
  it('with the file, the bytes served, and whether a chunk had to be fetched', () => {
    const local = new SyncBlobDirSource(t.blobDir, t.rafs.blobs);
    // a lazy source as the fs sees one: every chunk not read before counts as fetched
    const seen = new Set<number>();
    const lazy: SyncChunkSource & { fetched: number; asked: [number, number, number][] } = {
      fetched: 0,
      asked: [],
      read(ref, nid = -1, fileOffset = 0) {
        if (!seen.has(ref.ciIndex)) {
          seen.add(ref.ciIndex);
          this.fetched++;
          this.asked.push([ref.ciIndex, nid, fileOffset]);
        }
        return local.read(ref);
      },
      recycle: () => local.recycle(),
      close: () => local.close(),
    };
    const reads: [number, number, number, boolean][] = [];
    const fs = new RafsFuseFs(t.rafs, lazy, { onRead: (...r) => reads.push(r) });
    const b = nidOf('/dir/b.txt');
    const read = (offset: number, size: number) => fs.dispatch(fs.nodeidOf(b), { op: 'READ', fh: 0n, offset, size, flags: 0 });
    expect(Buffer.concat(read(4000, 200) as Buffer[]).toString()).toBe('trace\n'.repeat(3000).slice(4000, 4200));
    read(4000, 200);
    // past the end: nothing served, nothing recorded
    expect(read(18000, 10)).toEqual([]);
    expect(reads).toEqual([[b, 4000, 200, true], [b, 4000, 200, false]]);
    // the chunks it asked for, with where each starts in the file
    expect(lazy.asked).toEqual([[chunkOf('/dir/b.txt', 0).ciIndex, b, 0], [chunkOf('/dir/b.txt', 1).ciIndex, b, 4096]]);
    lazy.close();
  });
});
