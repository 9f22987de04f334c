import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkIntegrityError } from '../../src/blobcache/chunk-decoder.js';
import { createSpillFiles, DecodedSpill } from '../../src/blobcache/decoded-spill.js';
import { SyncBlobDirSource } from '../../src/blobcache/sync-blob-dir-source.js';
import { content, makeBlob, type TestBlob } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'decoded-spill-'));
let t: TestBlob;
let file: { data: Buffer; chunks: TestBlob['chunks'] };
const blobPath = (): string => join(t.blobDir, t.blob.blobId);

beforeAll(async () => {
  t = await makeBlob(work, { 'big.bin': content(3, 10 * 4096) });
  file = t.files.get('/big.bin')!;
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A worker's source over the test blob sharing `spill`, its LRU one chunk. */
const worker = (spill: ReturnType<typeof createSpillFiles>): SyncBlobDirSource =>
  new SyncBlobDirSource(t.blobDir, [t.blob], spill && new DecodedSpill(spill.spill, [t.blob]), 1);

/** The blob file with chunk `ref`'s stored bytes flipped (a decode of it then fails its digest), restored by the returned function. */
function corrupt(ref: TestBlob['chunks'][number]): () => void {
  const original = readFileSync(blobPath());
  const bad = Buffer.from(original);
  for (let i = 0; i < ref.compressedSize; i++) bad[ref.compressedOffset + i]! ^= 0xff;
  writeFileSync(blobPath(), bad);
  return () => writeFileSync(blobPath(), original);
}

describe('decoded spill files (local blob directories)', () => {
  it('keeps a chunk decoded once a reader comes back to it, and any worker then reads parts of it from there', () => {
    const spill = createSpillFiles(join(work, 'cache-a'), [t.blob])!;
    const [a, b] = [worker(spill), worker(spill)];
    const [first, second] = file.chunks;
    try {
      a.read(first!);
      a.read(second!); // the one-chunk LRU lets the first go
      expect(a.read(first!).equals(file.data.subarray(0, 4096))).toBe(true); // decoded again: spilled
      const restore = corrupt(first!);
      try {
        // the blob file now decodes wrong: what b reads can only come from the spill file
        expect(b.readPart(first!, 100, 300).equals(file.data.subarray(100, 400))).toBe(true);
        expect(b.read(first!).equals(file.data.subarray(0, 4096))).toBe(true);
        expect(() => b.read(file.chunks[2]!)).not.toThrow(); // others decode from the blob as before
      } finally {
        restore();
      }
    } finally {
      a.close();
      b.close();
      spill.close();
    }
  });

  it('writes nothing for a reader that decodes each chunk once', () => {
    const spill = createSpillFiles(join(work, 'cache-b'), [t.blob])!;
    const a = worker(spill);
    try {
      for (const ref of file.chunks) a.read(ref);
      const restore = corrupt(file.chunks[0]!);
      try {
        expect(() => worker(spill).readPart(file.chunks[0]!, 0, 10)).toThrow(ChunkIntegrityError);
      } finally {
        restore();
      }
    } finally {
      a.close();
      spill.close();
    }
  });

  it('never writes through a descriptor that is not the spill file (a number reused once the mount closed)', () => {
    const spill = createSpillFiles(join(work, 'cache-c'), [t.blob])!;
    const other = join(work, 'someone-elses-file');
    writeFileSync(other, '');
    const fd = openSync(other, 'r+');
    try {
      const st = fstatSync(spill.spill.files[0]!.fd);
      const reused = new DecodedSpill({ files: [{ fd, dev: st.dev, ino: st.ino }], state: spill.spill.state }, [t.blob]);
      const a = new SyncBlobDirSource(t.blobDir, [t.blob], reused, 1);
      for (let i = 0; i < 3; i++) for (const ref of file.chunks.slice(0, 2)) a.read(ref);
      a.close();
      expect(readFileSync(other).length).toBe(0);
    } finally {
      closeSync(fd);
      spill.close();
    }
  });

  it('gives a chunk larger than its blob\'s chunk size no slot (it would reach into the next one\'s)', () => {
    const spill = createSpillFiles(join(work, 'cache-d'), [t.blob])!;
    const s = new DecodedSpill(spill.spill, [t.blob]);
    const oversized = { ...file.chunks[0]!, uncompressedSize: t.blob.chunkSize + 1 };
    s.decoded(oversized, Buffer.alloc(oversized.uncompressedSize));
    s.decoded(oversized, Buffer.alloc(oversized.uncompressedSize));
    expect(s.has(oversized)).toBe(false);
    s.close();
    spill.close();
  });
});
