import { describe, expect, it } from 'vitest';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { FlatImageMap, type FlatPiece, imageChunks } from '../../src/rafs/flat-image.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { flatImage, sampleImage } from './helpers.js';

const sample = sampleImage('b'.repeat(64), 50);
const bootstrap = writeBootstrap(sample.bootstrap);
const rafs = RafsImage.open(bootstrap);
const expected = flatImage(bootstrap, sample.blobData, rafs.devices[0]!.mappedBlkaddr);

/** The bytes the pieces stand for, taken from the bootstrap and the uncompressed blob. */
function assemble(pieces: FlatPiece[]): Buffer {
  return Buffer.concat(pieces.map((p) => {
    if (p.kind === 'meta') return bootstrap.subarray(p.offset, p.offset + p.length);
    if (p.kind === 'hole') return Buffer.alloc(p.length);
    const at = p.chunk.uncompressedOffset + p.start;
    return sample.blobData.subarray(at, at + p.length);
  }));
}

describe('FlatImageMap', () => {
  const map = FlatImageMap.build(rafs, bootstrap.length, imageChunks(rafs));

  it('covers the bootstrap and the blob at its mapped block, like export --block', () => {
    expect(map.size).toBe(expected.length);
    expect(assemble(map.pieces(0, map.size)).equals(expected)).toBe(true);
  });

  it('gives the same bytes for any range, holes merged and chunks whole or cut', () => {
    let seed = 7;
    const next = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let i = 0; i < 300; i++) {
      const offset = next(map.size);
      const length = next(Math.min(map.size - offset, 300_000) + 1);
      const pieces = map.pieces(offset, length);
      expect(pieces.reduce((s, p) => s + p.length, 0)).toBe(length);
      for (let j = 1; j < pieces.length; j++) expect(pieces[j]!.kind === 'hole' && pieces[j - 1]!.kind === 'hole').toBe(false);
      expect(assemble(pieces).equals(expected.subarray(offset, offset + length))).toBe(true);
    }
  });

  it('refuses ranges outside the image', () => {
    expect(() => map.pieces(map.size - 1, 2)).toThrow(RangeError);
    expect(() => map.pieces(-1, 1)).toThrow(RangeError);
    expect(map.pieces(map.size, 0)).toEqual([]);
  });

  it('refuses chunks that overlap: a byte of the image has one meaning', () => {
    const chunks = [...imageChunks(rafs)];
    const twin = { ...chunks[1]!, ciIndex: 9999, uncompressedOffset: chunks[1]!.uncompressedOffset + 4096 };
    expect(() => FlatImageMap.build(rafs, bootstrap.length, [...chunks, twin])).toThrow(/overlaps/);
  });

  it('refuses a chunk past its blob region and a blob mapped inside the bootstrap', () => {
    const chunks = [...imageChunks(rafs)];
    const last = chunks.reduce((a, b) => (a.uncompressedOffset > b.uncompressedOffset ? a : b));
    const past = { ...last, ciIndex: 9999, uncompressedOffset: rafs.devices[0]!.blocks * 4096 };
    expect(() => FlatImageMap.build(rafs, bootstrap.length, [...chunks, past])).toThrow(RafsFormatError);
    expect(() => FlatImageMap.build(rafs, rafs.devices[0]!.mappedBlkaddr * 4096 + 1, chunks)).toThrow(/inside the bootstrap/);
  });

  it('refuses a chunk of a blob with no device slot', () => {
    const c = { ...[...imageChunks(rafs)][0]!, blobIndex: 3 };
    expect(() => FlatImageMap.build(rafs, bootstrap.length, [c])).toThrow(/no device slot/);
  });
});
