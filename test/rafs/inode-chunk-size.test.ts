// Per-inode chunk sizes: a bootstrap whose blobs use different chunk sizes (eStargz layers kept as
// they are, 4 MiB pieces, beside 1 MiB Nydus layers) gives each file its blob's chunk size in its
// chunk format; the superblock holds the largest.
import { describe, expect, it } from 'vitest';
import { blake3Raw } from '../../src/native/index.js';
import { BlobFeature } from '../../src/rafs/blob-table.js';
import { RafsEncodeError, RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { type BlobInfo, type Bootstrap, type ChunkRef, newDir, newInode, S_IFREG } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { pseudoRandom } from './helpers.js';

const LARGE = 0x10000;
const SMALL = 0x4000;

/** An uncompressed blob of `chunkSize` chunks, each stored 4 KiB-aligned in file order. */
class Blob {
  private size = 0;
  private count = 0;
  constructor(readonly index: number, readonly chunkSize: number) {}

  file(data: Buffer): ChunkRef[] {
    return Array.from({ length: Math.ceil(data.length / this.chunkSize) }, (_, i) => {
      const piece = data.subarray(i * this.chunkSize, (i + 1) * this.chunkSize);
      const ref: ChunkRef = {
        blobIndex: this.index, ciIndex: this.count++, digest: blake3Raw(piece), compressedOffset: this.size, compressedSize: piece.length,
        uncompressedOffset: this.size, uncompressedSize: piece.length, compressed: false, fileOffset: i * this.chunkSize,
      };
      this.size += Math.ceil(piece.length / 4096) * 4096;
      return ref;
    });
  }

  info(): BlobInfo {
    return {
      blobId: String(this.index).repeat(64), chunkCount: this.count, chunkSize: this.chunkSize, compressor: 'none', digester: 'blake3',
      features: BlobFeature.ALIGNED, compressedSize: this.size, uncompressedSize: this.size, ciCompressor: 'none', ciOffset: 0,
      ciCompressedSize: 0, ciUncompressedSize: 0, tocSize: 0, tocDigest: Buffer.alloc(32),
    };
  }
}

/** Files in a 64 KiB-chunk blob and in a 16 KiB-chunk blob, contiguous multi-chunk ones in both. */
function mixedImage(): { bootstrap: Bootstrap; contents: Map<string, Buffer> } {
  const [large, small] = [new Blob(0, LARGE), new Blob(1, SMALL)];
  const root = newDir('');
  const contents = new Map<string, Buffer>();
  const file = (name: string, blob: Blob, data: Buffer): void => {
    contents.set(name, data);
    root.children!.set(name, { name, inode: newInode(S_IFREG | 0o644, { size: data.length, chunks: blob.file(data) }) });
  };
  file('large-contiguous', large, pseudoRandom(LARGE * 3 + 100, 1));
  file('small-contiguous', small, pseudoRandom(SMALL * 5 + 7, 2));
  file('small-one-chunk', small, pseudoRandom(5000, 3));
  file('small-exact', small, pseudoRandom(SMALL * 2, 4));
  file('empty', small, Buffer.alloc(0));
  return { bootstrap: { root, blobs: [large.info(), small.info()], chunkSize: LARGE, compressor: 'none', digester: 'blake3', prefetch: [] }, contents };
}

/** Where the i_u (chunk format) of the file `name` in the root sits. */
function chunkFormatAt(buf: Buffer, name: string): number {
  const image = RafsImage.open(buf);
  return image.superblock.metaBlkaddr * image.blockSize + image.lookup(image.root, name)! * 32 + 16;
}

describe('per-inode chunk sizes', () => {
  const { bootstrap, contents } = mixedImage();
  const buf = writeBootstrap(bootstrap);
  const image = RafsImage.open(buf);
  const nid = (name: string): number => image.lookup(image.root, name)!;

  it('round-trips files of two chunk sizes: each reads back with its blob chunk size', () => {
    expect(image.chunkSize).toBe(LARGE);
    expect(image.blobs.map((b) => b.chunkSize)).toEqual([LARGE, SMALL]);
    for (const name of contents.keys()) {
      expect(image.chunks(nid(name)), name).toEqual(bootstrap.root.children!.get(name)!.inode.chunks);
    }
    expect(image.fileChunkSize(nid('large-contiguous'))).toBe(LARGE);
    expect(image.fileChunkSize(nid('small-contiguous'))).toBe(SMALL);
    expect(writeBootstrap(image.toBootstrap()).equals(buf)).toBe(true);
  });

  it('declares a smaller chunk size in the chunk format, never the one-big-chunk form', () => {
    expect(buf.readUInt32LE(chunkFormatAt(buf, 'small-contiguous'))).toBe(0x20 | 2); // 16 KiB = 2^2 blocks though contiguous
    expect(buf.readUInt32LE(chunkFormatAt(buf, 'small-one-chunk'))).toBe(0x20 | 2);
    expect(buf.readUInt32LE(chunkFormatAt(buf, 'large-contiguous'))).toBe(0x20 | 6); // 256 KiB: contiguous in one piece
    expect(buf.readUInt32LE(chunkFormatAt(buf, 'empty'))).toBe(0x20 | 4);
  });

  it('maps byte ranges of a small-chunk file onto its own chunks', () => {
    const slices = image.chunksForRange(nid('small-contiguous'), SMALL - 10, SMALL + 20);
    expect(slices.map((s) => [s.index, s.start, s.length])).toEqual([[0, SMALL - 10, 10], [1, 0, SMALL], [2, 0, 10]]);
    const tail = image.chunksForRange(nid('small-contiguous'), SMALL * 5, 100);
    expect(tail.map((s) => [s.index, s.start, s.length])).toEqual([[5, 0, 7]]);
  });

  it('refuses a file whose chunks lie in blobs of two chunk sizes', () => {
    const { bootstrap: b } = mixedImage();
    const chunks = b.root.children!.get('small-contiguous')!.inode.chunks;
    chunks[0] = b.root.children!.get('large-contiguous')!.inode.chunks[0]!;
    expect(() => writeBootstrap(b)).toThrow(RafsEncodeError);
    expect(() => writeBootstrap(b)).toThrow(/blobs of chunk sizes/);
  });

  it('refuses a blob whose chunk size exceeds the superblock chunk size', () => {
    const { bootstrap: b } = mixedImage();
    expect(() => writeBootstrap({ ...b, chunkSize: SMALL })).toThrow(/is not a power of two from 4 KiB to the bootstrap's/);
    const bigger = Buffer.from(buf);
    bigger.writeUInt32LE(LARGE * 2, image.extSuperblock.blobTableOffset + 256 + 68);
    expect(() => RafsImage.open(bigger)).toThrow(/chunk size 0x20000 is not a power of two from 4 KiB to the superblock's/);
  });

  it('reader refuses an inode whose chunk size disagrees with its blobs', () => {
    const claimsLarge = Buffer.from(buf);
    claimsLarge.writeUInt32LE(0x20 | 4, chunkFormatAt(buf, 'small-one-chunk'));
    expect(() => RafsImage.open(claimsLarge).chunks(nid('small-one-chunk'))).toThrow(/lies in a blob of chunk size 16384, the file's chunk size is 65536/);
    const claimsSmall = Buffer.from(buf);
    claimsSmall.writeUInt32LE(0x20 | 2, chunkFormatAt(buf, 'large-contiguous'));
    const hostile = RafsImage.open(claimsSmall);
    expect(() => hostile.chunks(nid('large-contiguous'))).toThrow(RafsFormatError);
    expect(() => hostile.chunksForRange(nid('large-contiguous'), 0, 10)).toThrow(/chunk size/);
  });
});
