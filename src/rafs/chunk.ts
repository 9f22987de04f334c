// Chunk-based regular files (docs/rafs-v6.md §1.13, §1.14): the 8-byte chunk index entries that follow an
// inode, the i_u chunk format word, and the 80-byte entries of the nydus-only chunk info table.
import { checkEncodable, checkRange, getU32, putU16, putU32, readU64, sliceChecked, writeU64 } from './bytes.js';
import { CHECKPOINT_SHIFT } from './checkpoints.js';
import { RafsFormatError } from './errors.js';
import type { ChunkRef, Compressor } from './tree.js';

export const CHUNK_INDEX_SIZE = 8;
export const CHUNK_INFO_SIZE = 80;
/** EROFS_CHUNK_FORMAT_INDEXES: 8-byte index entries instead of bare block addresses. */
const CHUNK_FORMAT_INDEXES = 0x20;
const CHUNK_FORMAT_BITS_MASK = 0x1f;
/** A blob index is stored +1 in 8 bits, so 254 blobs at most. */
export const MAX_BLOBS = 254;
export const MAX_CI_INDEX = 0xffffff;

/** One number per chunk of an image: its blob index and CI index (which fits 24 bits). */
export const chunkKey = (blobIndex: number, ciIndex: number): number => blobIndex * 2 ** 24 + ciIndex;

export const ChunkFlag = { COMPRESSED: 0x1, HOLE: 0x2, ENCRYPTED: 0x4, BATCH: 0x8, HAS_CRC32: 0x10 } as const;

/** One entry of an inode's chunk index array, as EROFS and nydus read it. */
export interface ChunkIndex {
  blobIndex: number;
  ciIndex: number;
  /** Uncompressed offset of the chunk in its blob, in blocks. */
  blockAddr: number;
}

/** i_u of a chunk-based inode: one kernel "chunk" covers 2^chunkBits blocks. */
export function encodeChunkFormat(chunkBits: number): number {
  checkEncodable(chunkBits, 0, CHUNK_FORMAT_BITS_MASK, 'chunk format', 'chunk bits');
  return CHUNK_FORMAT_INDEXES | chunkBits;
}

/** The chunk bits of an i_u; rejects formats without 8-byte indexes. */
export function decodeChunkFormat(u: number, offset: number): number {
  if ((u & ~CHUNK_FORMAT_BITS_MASK) !== CHUNK_FORMAT_INDEXES) {
    throw new RafsFormatError('chunk format', offset, `unsupported chunk format 0x${u.toString(16)}`);
  }
  return u & CHUNK_FORMAT_BITS_MASK;
}

export function encodeChunkIndex(index: ChunkIndex): Buffer {
  const buf = Buffer.alloc(CHUNK_INDEX_SIZE);
  writeChunkIndex(buf, 0, index);
  return buf;
}

/** Encodes one chunk index entry in place (files can have thousands; no Buffer each). */
export function writeChunkIndex(buf: Buffer, offset: number, index: ChunkIndex): void {
  checkEncodable(index.blobIndex, 0, MAX_BLOBS - 1, 'chunk index', 'blob index');
  checkEncodable(index.ciIndex, 0, MAX_CI_INDEX, 'chunk index', 'CI index');
  checkEncodable(index.blockAddr, 0, 0xffffffff, 'chunk index', 'block address');
  putU16(buf, offset, index.ciIndex & 0xffff);
  // low byte: device id = blob index + 1; high byte: CI index bits 16..23 (masked off by the kernel)
  putU16(buf, offset + 2, ((index.ciIndex >>> 16) << 8) | (index.blobIndex + 1));
  putU32(buf, offset + 4, index.blockAddr);
}

export function decodeChunkIndex(buf: Buffer, offset = 0): ChunkIndex {
  const b = sliceChecked(buf, offset, CHUNK_INDEX_SIZE, 'chunk index');
  const hi = b.readUInt16LE(2);
  if ((hi & 0xff) === 0) throw new RafsFormatError('chunk index', offset, 'device id 0 (the bootstrap itself) holds no chunk data');
  return { blobIndex: (hi & 0xff) - 1, ciIndex: ((hi >>> 8) << 16) | b.readUInt16LE(0), blockAddr: b.readUInt32LE(4) };
}

export function encodeChunkInfo(chunk: ChunkRef): Buffer {
  const buf = Buffer.alloc(CHUNK_INFO_SIZE);
  writeChunkInfo(buf, 0, chunk);
  return buf;
}

/** Encodes one chunk info table entry at `offset` of `buf` (a table has thousands: no Buffer each). */
export function writeChunkInfo(buf: Buffer, offset: number, chunk: ChunkRef): void {
  const what = 'chunk info';
  checkEncodable(chunk.digest.length, 32, 32, what, 'digest length');
  checkEncodable(chunk.blobIndex, 0, MAX_BLOBS - 1, what, 'blob index');
  checkEncodable(chunk.ciIndex, 0, MAX_CI_INDEX, what, 'CI index');
  checkEncodable(chunk.compressedSize, 0, 0xffffffff, what, 'compressed size');
  checkEncodable(chunk.uncompressedSize, 0, 0xffffffff, what, 'uncompressed size');
  checkEncodable(chunk.compressedOffset, 0, Number.MAX_SAFE_INTEGER, what, 'compressed offset');
  checkEncodable(chunk.uncompressedOffset, 0, Number.MAX_SAFE_INTEGER, what, 'uncompressed offset');
  checkEncodable(chunk.fileOffset, 0, Number.MAX_SAFE_INTEGER, what, 'file offset');
  if (chunk.innerOffset !== undefined) checkEncodable(chunk.innerOffset, 0, MAX_INNER_OFFSET, what, 'inner offset');
  buf.set(chunk.digest, offset);
  putU32(buf, offset + 32, chunk.blobIndex);
  const crcFlag = chunk.crc32 === undefined ? 0 : ChunkFlag.HAS_CRC32;
  putU32(buf, offset + 36, (chunk.compressed ? ChunkFlag.COMPRESSED : 0) | crcFlag);
  putU32(buf, offset + 40, chunk.compressedSize);
  putU32(buf, offset + 44, chunk.uncompressedSize);
  writeU64(buf, chunk.compressedOffset, offset + 48);
  writeU64(buf, chunk.uncompressedOffset, offset + 56);
  writeU64(buf, fileOffsetField(chunk), offset + 64);
  putU32(buf, offset + 72, chunk.ciIndex);
  putU32(buf, offset + 76, chunk.crc32 ?? 0);
}

/**
 * Decodes a chunk info table entry; flags other than COMPRESSED and HAS_CRC32 are dropped. The
 * file_offset field comes back as fileOffset: see asMemberChunk for chunks of MEMBERS blobs.
 */
export function decodeChunkInfo(buf: Buffer, offset = 0): ChunkRef {
  // read in place (no subarray): a bootstrap's table has thousands of entries
  checkRange(buf.length, offset, CHUNK_INFO_SIZE, 'chunk info');
  const flags = getU32(buf, offset + 36);
  const digest = Buffer.allocUnsafe(32);
  buf.copy(digest, 0, offset, offset + 32);
  const chunk: ChunkRef = {
    blobIndex: getU32(buf, offset + 32),
    ciIndex: getU32(buf, offset + 72),
    digest,
    compressedOffset: readU64(buf, offset + 48, 'chunk info'),
    compressedSize: getU32(buf, offset + 40),
    uncompressedOffset: readU64(buf, offset + 56, 'chunk info'),
    uncompressedSize: getU32(buf, offset + 44),
    compressed: (flags & ChunkFlag.COMPRESSED) !== 0,
    fileOffset: readU64(buf, offset + 64, 'chunk info'),
  };
  if (flags & ChunkFlag.HAS_CRC32) chunk.crc32 = getU32(buf, offset + 76);
  return chunk;
}

/**
 * The most bytes a chunk of `size` uncompressed bytes may take in its blob: `size` when stored raw
 * (builders store a chunk raw when compressing does not shrink it), else the codec's worst case:
 * ZSTD_COMPRESSBOUND, LZ4_COMPRESSBOUND, and for gzip a deflate stream of fixed-Huffman literals
 * (9 bits for a byte) plus block headers and the gzip header and trailer.
 */
export function maxStoredChunkSize(size: number, compressor: Compressor, compressed: boolean): number {
  if (!compressed || compressor === 'none') return size;
  if (compressor === 'zstd') return size + Math.floor(size / 256) + (size < 0x20000 ? Math.floor((0x20000 - size) / 2048) : 0);
  if (compressor === 'lz4_block') return size + Math.floor(size / 255) + 16;
  return size + Math.ceil(size / 8) + 64;
}

/**
 * Uncompressed bytes a chunk of a MEMBERS blob may skip in its member: as much as the largest
 * chunk. Reading a chunk decodes innerOffset + its size, so this bounds the work per chunk.
 */
export const MAX_INNER_OFFSET = 16 << 20;

/**
 * Room past the codec's bound for a member's first bytes: a gzip header's optional fields (FEXTRA
 * up to 64 KiB) and the rest of the zstd block holding the last byte wanted (blocks decode whole,
 * up to 128 KiB).
 */
const MEMBER_SLACK = 256 << 10;

/**
 * The most stored bytes a chunk of a MEMBERS blob may span: what the codec needs at worst for the
 * innerOffset + size bytes decoded, plus MEMBER_SLACK. A layer's member may run on (tar padding and
 * headers, further members) far past that, but decoding stops there: writers clamp the chunk's
 * stored range to this.
 */
export function maxStoredMemberSize(innerOffset: number, size: number, compressor: Compressor): number {
  return maxStoredChunkSize(innerOffset + size, compressor, true) + MEMBER_SLACK;
}

/**
 * What the file_offset field holds: a MEMBERS blob's chunk keeps its inner offset there, a
 * CHECKPOINTS blob's its checkpoint above its inner offset, others their file offset.
 */
function fileOffsetField(chunk: ChunkRef): number {
  if (chunk.checkpoint !== undefined) {
    checkEncodable(chunk.checkpoint, 0, Math.floor(Number.MAX_SAFE_INTEGER / CHECKPOINT_SHIFT), 'chunk info', 'checkpoint');
    return chunk.checkpoint * CHECKPOINT_SHIFT + (chunk.innerOffset ?? 0);
  }
  return chunk.innerOffset ?? chunk.fileOffset;
}

/** A decoded chunk of a CHECKPOINTS blob as it is, made in place (see asMemberChunk). */
export function asCheckpointChunk(chunk: ChunkRef): ChunkRef {
  chunk.checkpoint = Math.floor(chunk.fileOffset / CHECKPOINT_SHIFT);
  chunk.innerOffset = chunk.fileOffset % CHECKPOINT_SHIFT;
  chunk.fileOffset = 0;
  return chunk;
}

/**
 * A decoded chunk of a MEMBERS blob as it is, made in place (a table has thousands): its
 * file_offset field holds its innerOffset, and the file offset, not stored, reads back as 0.
 */
export function asMemberChunk(chunk: ChunkRef): ChunkRef {
  chunk.innerOffset = chunk.fileOffset;
  chunk.fileOffset = 0;
  return chunk;
}
