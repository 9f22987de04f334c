// Issue #11, item 4: only a chunk's uncompressed range was checked, so a 5000-byte chunk could claim
// 0xffffffff compressed bytes and the fetcher asked for (and allocated) 4 GiB. A chunk's compressed
// size is now bounded by what its codec can make of its uncompressed size, and its compressed range
// must lie inside its blob.
import { describe, expect, it } from 'vitest';
import { compress } from '../../src/native/index.js';
import { maxStoredChunkSize } from '../../src/rafs/chunk.js';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { inodeAt, pseudoRandom, sampleImage } from './helpers.js';

const CHUNK_INFO_SIZE = 80;

describe('compressed chunk sizes', () => {
  const sample = sampleImage();
  const buf = writeBootstrap(sample.bootstrap);
  const image = RafsImage.open(buf);
  const oneChunk = sample.bootstrap.root.children!.get('one-chunk')!.inode.chunks[0]!;
  /** A copy of the bootstrap with one field of one-chunk's chunk info entry rewritten. */
  const withChunkField = (field: number, write: (b: Buffer, at: number) => void): RafsImage => {
    const out = Buffer.from(buf);
    write(out, image.extSuperblock.chunkTableOffset + oneChunk.ciIndex * CHUNK_INFO_SIZE + field);
    return RafsImage.open(out);
  };
  const nid = inodeAt(image, '/one-chunk').nid;

  it('regression: a chunk claiming 0xffffffff compressed bytes is refused', () => {
    const hostile = withChunkField(40, (b, at) => b.writeUInt32LE(0xffffffff, at));
    expect(() => [...hostile.chunkInfoTable()]).toThrow(RafsFormatError);
    expect(() => hostile.chunks(nid)).toThrow(/compressed size 4294967295 exceeds the 5000 bytes/);
  });

  it('regression: a chunk whose compressed range runs past the end of its blob is refused', () => {
    const hostile = withChunkField(48, (b, at) => b.writeBigUInt64LE(BigInt(sample.bootstrap.blobs[0]!.compressedSize - 100), at));
    expect(() => hostile.chunks(nid)).toThrow(/compressed data lies beyond its blob/);
  });

  it('refuses a chunk larger than the chunk size', () => {
    const hostile = withChunkField(44, (b, at) => b.writeUInt32LE(image.chunkSize + 4096, at));
    expect(() => [...hostile.chunkInfoTable()]).toThrow(/exceeds the chunk size/);
  });

  it("bounds a compressed chunk by its codec's worst case, which real output of incompressible data stays within", () => {
    const noise = pseudoRandom(0x100000, 7);
    for (const size of [1, 4096, 0x10000, 0x100000]) {
      const data = noise.subarray(0, size);
      expect(maxStoredChunkSize(size, 'none', true)).toBe(size);
      expect(maxStoredChunkSize(size, 'zstd', false)).toBe(size);
      for (const codec of ['zstd', 'lz4_block', 'gzip'] as const) {
        const bound = maxStoredChunkSize(size, codec, true);
        expect(compress(codec, data).length).toBeLessThanOrEqual(bound);
        // never more than a few percent over the data (plus headers): never gigabytes
        expect(bound).toBeLessThanOrEqual(size * 1.13 + 128);
      }
    }
  });
});
