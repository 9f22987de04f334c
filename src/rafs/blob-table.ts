// The nydus-only blob table (256-byte RafsV6Blob entries, docs/rafs-v6.md §1.5) and the EROFS device table
// (128-byte slots, docs/rafs-v6.md §1.4) that mirrors it for the kernel.
import { alignUp, checkEncodable, isPowerOfTwo, readPaddedName, readU64, sliceChecked, writeU64 } from './bytes.js';
import { RafsEncodeError, RafsFormatError } from './errors.js';
import { compressorFromId, compressorId, digesterFromId, digesterId, MIN_CHUNK_SIZE } from './superblock.js';
import type { BlobInfo, ChunkRef } from './tree.js';

export const BLOB_ENTRY_SIZE = 256;
export const DEVICE_SLOT_SIZE = 128;
export const BLOB_ID_LENGTH = 64;

export const BlobFeature = {
  ALIGNED: 0x1,
  INLINED_FS_META: 0x2,
  CHUNK_INFO_V2: 0x4,
  ZRAN: 0x8,
  SEPARATE: 0x10,
  INLINED_CHUNK_DIGEST: 0x20,
  TARFS: 0x40,
  BATCH: 0x80,
  ENCRYPTED: 0x100,
  /**
   * Ours (no upstream meaning): a stargz-family layer used as it is. Each chunk's stored bytes begin
   * with one gzip member (eStargz) or zstd frame (zstd:chunked) whose decoded output holds the chunk
   * after `innerOffset` bytes and may go on past it; the chunk info's file_offset field holds
   * innerOffset (docs/rafs-v6.md).
   */
  MEMBERS: 0x01000000,
  /**
   * Ours: an unmodified gzip layer (plain OCI). Each chunk's stored bytes start at one of the blob's
   * checkpoints (checkpoints.ts) and decode, after `innerOffset` bytes, to the chunk; the chunk
   * info's file_offset field holds checkpoint × 2^25 + innerOffset (docs/rafs-v6.md §1.20).
   */
  CHECKPOINTS: 0x02000000,
  /**
   * Ours, with CHECKPOINTS: a gzip layer indexed by someone else (a SOCI zTOC), whose only digests
   * are of its spans' stored bytes. Each checkpoint carries the sha256 of its span (its stored bytes
   * up to the next checkpoint's input, or the blob's end); a chunk's stored bytes are whole spans,
   * checked against those digests before it is decoded. The blob's tocDigest is the sha256 of the
   * layer its bytes are read from, and its blob id is spanBlobId over everything that decides what
   * its chunks decode to (rafs/span-blob.ts): cache files shared by blob id are shared only by
   * readers that would decode every chunk the same.
   */
  SPANS: 0x04000000,
  HAS_TAR_HEADER: 0x10000000,
  HAS_TOC: 0x20000000,
  CAP_TAR_TOC: 0x40000000,
} as const;

/** Blobs that are layers as published: a chunk's stored bytes hold more than it and overlap its neighbours'. */
export const LAYER_AS_IS = BlobFeature.MEMBERS | BlobFeature.CHECKPOINTS;

/** A layer used as its own blob places each chunk in its (synthetic) uncompressed space at a 4 KiB-aligned slot (ALIGNED). */
export const SLOT_ALIGNMENT = 4096;

/** The slot after `chunk`'s (where the next chunk of a layer used as its own blob goes). */
export const nextSlot = (chunk: Pick<ChunkRef, 'uncompressedOffset' | 'uncompressedSize'>): number => chunk.uncompressedOffset + alignUp(chunk.uncompressedSize, SLOT_ALIGNMENT);

/**
 * The blob-table entry of a layer used as its own blob (stargz-family or gzip): `feature` (MEMBERS
 * or CHECKPOINTS) over 4 KiB-aligned chunk places, no chunk info or TOC of its own, sha256 digests.
 */
export function layerAsIsBlob(b: Pick<BlobInfo, 'blobId' | 'chunkCount' | 'chunkSize' | 'compressor' | 'compressedSize' | 'uncompressedSize' | 'checkpoints'>, feature: number): BlobInfo {
  return {
    ...b, digester: 'sha256', features: BlobFeature.ALIGNED | feature,
    ciCompressor: 'none', ciOffset: 0, ciCompressedSize: 0, ciUncompressedSize: 0, tocSize: 0, tocDigest: Buffer.alloc(32),
  };
}

const MAX_CHUNK_COUNT = 1 << 24;
const MAX_COMPRESSED_SIZE = 2 ** 40;
const MAX_UNCOMPRESSED_SIZE = 2 ** 44;
const CI_V1_SIZE = 16;
const CI_V2_SIZE = 24;

/** Kernel-visible description of a blob: the device it is mounted as. */
export interface DeviceSlot {
  blobId: string;
  /** uncompressed_size / block size. */
  blocks: number;
  /** Where the blob's uncompressed image starts in a flat block image, in blocks. */
  mappedBlkaddr: number;
}

/** Blob ids are 64 printable ASCII chars: a sha256 hex digest, or the inline placeholder "x"*64. */
function isValidBlobId(id: string): boolean {
  return /^[\x21-\x7e]{64}$/.test(id);
}

function encodeBlobId(buf: Buffer, id: string, structure: string): void {
  if (!isValidBlobId(id)) throw new RafsEncodeError(structure, `blob id ${JSON.stringify(id)} is not 64 printable ASCII characters`);
  buf.write(id, 0, 'latin1');
}

function decodeBlobId(b: Buffer, structure: string, offset: number): string {
  const id = readPaddedName(b, 0, BLOB_ID_LENGTH);
  if (!isValidBlobId(id)) throw new RafsFormatError(structure, offset, `blob id ${JSON.stringify(id)} is not 64 printable ASCII characters`);
  return id;
}

export function encodeBlobEntry(blob: BlobInfo, index: number): Buffer {
  const what = 'blob table entry';
  checkEncodable(blob.chunkCount, 0, MAX_CHUNK_COUNT, what, 'chunk count');
  checkEncodable(blob.compressedSize, 0, MAX_COMPRESSED_SIZE, what, 'compressed size');
  checkEncodable(blob.uncompressedSize, 0, MAX_UNCOMPRESSED_SIZE, what, 'uncompressed size');
  checkEncodable(blob.tocSize, 0, 0xffffffff, what, 'TOC size');
  checkEncodable(blob.features, 0, 0xffffffff, what, 'features');
  for (const field of ['ciOffset', 'ciCompressedSize', 'ciUncompressedSize'] as const) {
    checkEncodable(blob[field], 0, Number.MAX_SAFE_INTEGER, what, field);
  }
  if (blob.tocDigest.length !== 32) throw new RafsEncodeError(what, 'the TOC digest must be 32 bytes');
  const buf = Buffer.alloc(BLOB_ENTRY_SIZE);
  encodeBlobId(buf, blob.blobId, what);
  buf.writeUInt32LE(index, 64);
  buf.writeUInt32LE(blob.chunkSize, 68);
  buf.writeUInt32LE(blob.chunkCount, 72);
  buf.writeUInt32LE(compressorId(blob.compressor), 76);
  buf.writeUInt32LE(digesterId(blob.digester), 80);
  buf.writeUInt32LE(blob.features, 84);
  writeU64(buf, blob.compressedSize, 88);
  writeU64(buf, blob.uncompressedSize, 96);
  buf.writeUInt32LE(blob.tocSize, 104);
  buf.writeUInt32LE(compressorId(blob.ciCompressor), 108);
  writeU64(buf, blob.ciOffset, 112);
  writeU64(buf, blob.ciCompressedSize, 120);
  writeU64(buf, blob.ciUncompressedSize, 128);
  blob.tocDigest.copy(buf, 136);
  return buf;
}

/** Decodes one entry without cross-checks; returns it with the index it claims. */
export function decodeBlobEntry(buf: Buffer, offset = 0): { index: number; blob: BlobInfo } {
  const what = 'blob table entry';
  const b = sliceChecked(buf, offset, BLOB_ENTRY_SIZE, what);
  const blob: BlobInfo = {
    blobId: decodeBlobId(b, what, offset),
    chunkSize: b.readUInt32LE(68),
    chunkCount: b.readUInt32LE(72),
    compressor: compressorFromId(b.readUInt32LE(76), what, offset + 76),
    digester: digesterFromId(b.readUInt32LE(80), what, offset + 80),
    features: b.readUInt32LE(84),
    compressedSize: readU64(b, 88, what),
    uncompressedSize: readU64(b, 96, what),
    tocSize: b.readUInt32LE(104),
    ciCompressor: compressorFromId(b.readUInt32LE(108), what, offset + 108),
    ciOffset: readU64(b, 112, what),
    ciCompressedSize: readU64(b, 120, what),
    ciUncompressedSize: readU64(b, 128, what),
    tocDigest: Buffer.from(b.subarray(136, 168)),
  };
  return { index: b.readUInt32LE(64), blob };
}

/** What every blob of one bootstrap must agree with. */
export interface BlobTableRules {
  /** The superblock's: the largest a blob may use. */
  chunkSize: number;
  tarfs: boolean;
}

/** Decodes and validates a whole blob table (nydusd's rules, docs/rafs-v6.md §1.5 and §1.17). */
export function decodeBlobTable(buf: Buffer, offset: number, size: number, rules: BlobTableRules): BlobInfo[] {
  sliceChecked(buf, offset, size, 'blob table');
  const blobs: BlobInfo[] = [];
  for (let at = offset; at < offset + size; at += BLOB_ENTRY_SIZE) {
    const { index, blob } = decodeBlobEntry(buf, at);
    const fail = (detail: string): never => {
      throw new RafsFormatError('blob table entry', at, detail);
    };
    if (index !== blobs.length) fail(`blob index ${index} does not match its position ${blobs.length}`);
    if (!isPowerOfTwo(blob.chunkSize) || blob.chunkSize < MIN_CHUNK_SIZE || blob.chunkSize > rules.chunkSize) {
      fail(`chunk size 0x${blob.chunkSize.toString(16)} is not a power of two from 4 KiB to the superblock's 0x${rules.chunkSize.toString(16)}`);
    }
    if (!rules.tarfs && !(blob.features & BlobFeature.ALIGNED)) fail('non-tarfs blob without the ALIGNED feature');
    if (!rules.tarfs && blob.uncompressedSize % 4096 !== 0) fail(`uncompressed size ${blob.uncompressedSize} is not 4 KiB-aligned`);
    if (blob.chunkCount > MAX_CHUNK_COUNT) fail(`chunk count ${blob.chunkCount} is too large`);
    if (blob.compressedSize > MAX_COMPRESSED_SIZE || blob.uncompressedSize > MAX_UNCOMPRESSED_SIZE) fail('blob size is too large');
    const ciProblem = chunkInfoSizeProblem(blob);
    if (ciProblem) fail(ciProblem);
    blobs.push(blob);
  }
  return blobs;
}

/** nydusd's CI size rules; a zero size means "no chunk info recorded" (old builders). */
function chunkInfoSizeProblem(blob: BlobInfo): string | undefined {
  if (blob.ciCompressedSize > blob.ciUncompressedSize) return 'compressed CI is larger than uncompressed CI';
  if (blob.ciUncompressedSize === 0) return undefined;
  const v2 = (blob.features & BlobFeature.CHUNK_INFO_V2) !== 0;
  const extended = (blob.features & (BlobFeature.BATCH | BlobFeature.ZRAN | BlobFeature.ENCRYPTED)) !== 0;
  const expected = blob.chunkCount * (v2 ? CI_V2_SIZE : CI_V1_SIZE);
  if (extended && !v2) return 'BATCH/ZRAN/ENCRYPTED blob without CHUNK_INFO_V2';
  if (extended ? blob.ciUncompressedSize < expected : blob.ciUncompressedSize !== expected) {
    return `CI size ${blob.ciUncompressedSize} does not match ${blob.chunkCount} chunks`;
  }
  return undefined;
}

export function encodeDeviceSlot(slot: DeviceSlot): Buffer {
  checkEncodable(slot.blocks, 1, 0xffffffff, 'device slot', 'blocks');
  checkEncodable(slot.mappedBlkaddr, 0, 0xffffffff, 'device slot', 'mapped_blkaddr');
  const buf = Buffer.alloc(DEVICE_SLOT_SIZE);
  encodeBlobId(buf, slot.blobId, 'device slot');
  buf.writeUInt32LE(slot.blocks, 64);
  buf.writeUInt32LE(slot.mappedBlkaddr, 68);
  return buf;
}

export function decodeDeviceSlot(buf: Buffer, offset = 0): DeviceSlot {
  const b = sliceChecked(buf, offset, DEVICE_SLOT_SIZE, 'device slot');
  const slot = { blobId: decodeBlobId(b, 'device slot', offset), blocks: b.readUInt32LE(64), mappedBlkaddr: b.readUInt32LE(68) };
  if (slot.blocks === 0) throw new RafsFormatError('device slot', offset + 64, 'a device must have blocks');
  return slot;
}
