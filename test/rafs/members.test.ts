// Blobs with BlobFeature.MEMBERS (stargz-family layers used as they are): innerOffset is stored in
// the chunk info's file_offset field and read back as innerOffset, chunks may share and overlap
// stored ranges, and every bound the reader keeps still holds.
import { describe, expect, it } from 'vitest';
import { BlobFeature } from '../../src/rafs/blob-table.js';
import { CHUNK_INFO_SIZE, encodeChunkInfo, MAX_INNER_OFFSET, maxStoredChunkSize, maxStoredMemberSize } from '../../src/rafs/chunk.js';
import { RafsEncodeError, RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { type BlobInfo, type Bootstrap, type ChunkRef, newDir, newInode, S_IFREG } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';

const CHUNK_SIZE = 0x10000;

function blob(id: string, compressor: BlobInfo['compressor'], features: number, chunkCount: number): BlobInfo {
  return {
    blobId: id.repeat(64), chunkSize: CHUNK_SIZE, chunkCount, compressor, digester: 'sha256', features: features | BlobFeature.ALIGNED,
    compressedSize: 1 << 20, uncompressedSize: 1 << 20, ciCompressor: 'none', ciOffset: 0, ciCompressedSize: 0, ciUncompressedSize: 0,
    tocSize: 0, tocDigest: Buffer.alloc(32),
  };
}

const chunk = (blobIndex: number, ciIndex: number, init: Partial<ChunkRef>): ChunkRef => ({
  blobIndex, ciIndex, digest: Buffer.alloc(32, ciIndex + 1), compressedOffset: 0, compressedSize: 100, uncompressedOffset: ciIndex * 4096,
  uncompressedSize: 1000, compressed: true, fileOffset: 0, ...init,
});

/**
 * Blob 0 is a gzip MEMBERS blob: chunks 1 and 2 share one member (innerOffset 0 and 1536) whose
 * stored range overlaps chunk 0's, and chunk 3's range is larger than its size alone allows. Blob 1
 * is an ordinary zstd blob.
 */
function membersBootstrap(): { b: Bootstrap; chunks: ChunkRef[] } {
  const chunks = [
    chunk(0, 0, { compressedOffset: 0, compressedSize: 5000, innerOffset: 512 }),
    chunk(0, 1, { compressedOffset: 4000, compressedSize: 3000, innerOffset: 0 }),
    chunk(0, 2, { compressedOffset: 4000, compressedSize: 3000, innerOffset: 1536 }),
    chunk(0, 3, { compressedOffset: 7000, compressedSize: 50_000, innerOffset: 30_000 }),
    chunk(1, 0, { compressedOffset: 0, compressedSize: 900, fileOffset: 0x12345 }),
  ];
  const root = newDir('');
  chunks.forEach((c, i) => root.children!.set(`f${i}`, { name: `f${i}`, inode: newInode(S_IFREG | 0o644, { size: c.uncompressedSize, chunks: [c] }) }));
  const b: Bootstrap = {
    root, chunkSize: CHUNK_SIZE, compressor: 'zstd', digester: 'sha256', prefetch: [],
    blobs: [blob('a', 'gzip', BlobFeature.MEMBERS, 4), blob('b', 'zstd', 0, 1)],
  };
  return { b, chunks };
}

/** The image with the chunk info entry of blob 0 chunk `ci` changed by `patch`. */
function patched(image: Buffer, ci: number, patch: (entry: Buffer) => void): Buffer {
  const copy = Buffer.from(image);
  const { chunkTableOffset } = RafsImage.open(image).extSuperblock;
  // the table is sorted by (blob, CI index): blob 0's chunk `ci` is entry `ci`
  patch(copy.subarray(chunkTableOffset + ci * CHUNK_INFO_SIZE, chunkTableOffset + (ci + 1) * CHUNK_INFO_SIZE));
  return copy;
}

describe('MEMBERS blobs in a bootstrap', () => {
  it('innerOffset goes to file_offset and comes back; other blobs keep their file offset byte for byte', () => {
    const { b, chunks } = membersBootstrap();
    const image = writeBootstrap(b);
    const rafs = RafsImage.open(image);
    const read = [...rafs.chunkInfoTable()];
    expect(read.map((c) => c.innerOffset)).toEqual([512, 0, 1536, 30_000, undefined]);
    expect(read.map((c) => c.fileOffset)).toEqual([0, 0, 0, 0, 0x12345]);
    const { chunkTableOffset } = rafs.extSuperblock;
    expect(image.readBigUInt64LE(chunkTableOffset + 2 * CHUNK_INFO_SIZE + 64)).toBe(1536n);
    expect(image.subarray(chunkTableOffset + 4 * CHUNK_INFO_SIZE, chunkTableOffset + 5 * CHUNK_INFO_SIZE)).toEqual(encodeChunkInfo(chunks[4]!));
    expect(rafs.chunks(rafs.lookup(rafs.root, 'f2')!)[0]).toMatchObject({ compressedOffset: 4000, innerOffset: 1536 });
    // and again through the model
    expect(writeBootstrap(rafs.toBootstrap())).toEqual(image);
  });

  it('the stored range of a member chunk may span what decoding innerOffset + size needs, no more', () => {
    const { b } = membersBootstrap();
    const image = writeBootstrap(b);
    const limit = maxStoredMemberSize(30_000, 1000, 'gzip');
    expect(limit).toBeGreaterThan(maxStoredChunkSize(1000, 'gzip', true));
    expect([...RafsImage.open(patched(image, 3, (e) => e.writeUInt32LE(limit, 40))).chunkInfoTable()][3]!.compressedSize).toBe(limit);
    const tooLong = patched(image, 3, (e) => e.writeUInt32LE(limit + 1, 40));
    expect(() => [...RafsImage.open(tooLong).chunkInfoTable()]).toThrow(/compressed size/);
  });

  it('refuses an innerOffset past MAX_INNER_OFFSET, and MEMBERS blobs of codecs without members', () => {
    const { b } = membersBootstrap();
    const image = writeBootstrap(b);
    expect([...RafsImage.open(patched(image, 1, (e) => e.writeBigUInt64LE(BigInt(MAX_INNER_OFFSET), 64))).chunkInfoTable()][1]!.innerOffset).toBe(MAX_INNER_OFFSET);
    const far = patched(image, 1, (e) => e.writeBigUInt64LE(BigInt(MAX_INNER_OFFSET + 1), 64));
    expect(() => [...RafsImage.open(far).chunkInfoTable()]).toThrow(RafsFormatError);
    expect(() => encodeChunkInfo({ ...chunk(0, 0, {}), innerOffset: MAX_INNER_OFFSET + 1 })).toThrow(RafsEncodeError);
    const lz4 = membersBootstrap().b;
    lz4.blobs[0]!.compressor = 'lz4_block';
    expect(() => [...RafsImage.open(writeBootstrap(lz4)).chunkInfoTable()]).toThrow(/MEMBERS blob compressed with lz4_block/);
  });

  it('refuses two files that give one chunk different inner offsets', () => {
    const { b, chunks } = membersBootstrap();
    b.root.children!.set('g', { name: 'g', inode: newInode(S_IFREG | 0o644, { size: 1000, chunks: [{ ...chunks[2]!, innerOffset: 7 }] }) });
    expect(() => writeBootstrap(b)).toThrow(/conflicting chunks/);
  });
});
