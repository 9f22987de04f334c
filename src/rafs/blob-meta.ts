// A blob's chunk-info ("CI") array and the 4096-byte header that follows it (docs/rafs-v6.md §3.5).
// v1 entries (16 B) are written; v2 entries (24 B, batch/zran/encrypted/crc blobs) are only read.
import { checkEncodable, readU64, sliceChecked, writeU64 } from './bytes.js';
import { RafsEncodeError, RafsFormatError } from './errors.js';
import { compressorFromId, compressorId } from './superblock.js';
import type { Compressor } from './tree.js';

export const CI_HEADER_SIZE = 4096;
export const CI_MAGIC = 0xb10bb10b;
export const CI_V1_ENTRY_SIZE = 16;
export const CI_V2_ENTRY_SIZE = 24;
const MAX_CHUNK_DATA = 1 << 24;

export interface CiHeader {
  /** BlobFeatures bits the CI was written with. */
  features: number;
  ciCompressor: Compressor;
  entries: number;
  ciOffset: number;
  ciCompressedSize: number;
  ciUncompressedSize: number;
  zranOffset: number;
  zranSize: number;
  zranCount: number;
}

/** Where one chunk lives in its blob. */
export interface CiEntry {
  compressedOffset: number;
  compressedSize: number;
  /** 4 KiB-aligned. */
  uncompressedOffset: number;
  uncompressedSize: number;
  compressed: boolean;
}

/** v2 adds a flag byte and a data word (zran/batch context reference or CRC-32C). */
export interface CiEntryV2 extends CiEntry {
  flags: number;
  dataHi: number;
  dataLo: number;
}

export const CiV2Flag = { COMPRESSED: 0x01, ZRAN: 0x02, BATCH: 0x04, ENCRYPTED: 0x08, HAS_CRC32: 0x10 } as const;

export function encodeCiHeader(h: CiHeader): Buffer {
  const buf = Buffer.alloc(CI_HEADER_SIZE);
  buf.writeUInt32LE(CI_MAGIC, 0);
  buf.writeUInt32LE(h.features, 4);
  buf.writeUInt32LE(compressorId(h.ciCompressor), 8);
  buf.writeUInt32LE(h.entries, 12);
  writeU64(buf, h.ciOffset, 16);
  writeU64(buf, h.ciCompressedSize, 24);
  writeU64(buf, h.ciUncompressedSize, 32);
  writeU64(buf, h.zranOffset, 40);
  writeU64(buf, h.zranSize, 48);
  buf.writeUInt32LE(h.zranCount, 56);
  buf.writeUInt32LE(CI_MAGIC, CI_HEADER_SIZE - 4);
  return buf;
}

export function decodeCiHeader(buf: Buffer, offset = 0): CiHeader {
  const what = 'CI header';
  const b = sliceChecked(buf, offset, CI_HEADER_SIZE, what);
  if (b.readUInt32LE(0) !== CI_MAGIC) throw new RafsFormatError(what, offset, `bad magic 0x${b.readUInt32LE(0).toString(16)}`);
  if (b.readUInt32LE(CI_HEADER_SIZE - 4) !== CI_MAGIC) throw new RafsFormatError(what, offset + CI_HEADER_SIZE - 4, 'bad trailing magic');
  return {
    features: b.readUInt32LE(4),
    ciCompressor: compressorFromId(b.readUInt32LE(8), what, offset + 8),
    entries: b.readUInt32LE(12),
    ciOffset: readU64(b, 16, what),
    ciCompressedSize: readU64(b, 24, what),
    ciUncompressedSize: readU64(b, 32, what),
    zranOffset: readU64(b, 40, what),
    zranSize: readU64(b, 48, what),
    zranCount: b.readUInt32LE(56),
  };
}

export function encodeCiV1(entries: readonly CiEntry[]): Buffer {
  const buf = Buffer.alloc(entries.length * CI_V1_ENTRY_SIZE);
  entries.forEach((e, i) => {
    checkEncodable(e.compressedOffset, 0, 2 ** 40 - 1, 'CI entry', 'compressed offset');
    checkEncodable(e.compressedSize, 1, MAX_CHUNK_DATA, 'CI entry', 'compressed size');
    checkEncodable(e.uncompressedSize, 1, MAX_CHUNK_DATA, 'CI entry', 'uncompressed size');
    checkEncodable(e.uncompressedOffset, 0, 2 ** 44 - 4096, 'CI entry', 'uncompressed offset');
    if (e.uncompressedOffset % 4096 !== 0) throw new RafsEncodeError('CI entry', `uncompressed offset ${e.uncompressedOffset} is not 4 KiB-aligned`);
    // "compressed" is implied by the two sizes differing, so a raw chunk must not claim otherwise
    if (e.compressed === (e.compressedSize === e.uncompressedSize)) throw new RafsEncodeError('CI entry', 'v1 marks a chunk compressed exactly when its sizes differ');
    const csize = BigInt(e.compressedSize - 1);
    const usize = BigInt(e.uncompressedSize - 1);
    const uncompInfo = (((usize >> 20n) & 0xfn) << 8n) | BigInt(e.uncompressedOffset) | ((usize & 0xfffffn) << 44n);
    const compInfo = BigInt(e.compressedOffset) | (((csize >> 20n) & 0xfn) << 40n) | ((csize & 0xfffffn) << 44n);
    buf.writeBigUInt64LE(uncompInfo, i * CI_V1_ENTRY_SIZE);
    buf.writeBigUInt64LE(compInfo, i * CI_V1_ENTRY_SIZE + 8);
  });
  return buf;
}

export function decodeCiV1(buf: Buffer, count: number, offset = 0): CiEntry[] {
  const b = sliceChecked(buf, offset, count * CI_V1_ENTRY_SIZE, 'CI v1 array');
  const entries: CiEntry[] = [];
  for (let at = 0; at < b.length; at += CI_V1_ENTRY_SIZE) {
    const uncompInfo = b.readBigUInt64LE(at);
    const compInfo = b.readBigUInt64LE(at + 8);
    const compressedSize = Number((((compInfo >> 40n) & 0xfn) << 20n) | (compInfo >> 44n)) + 1;
    const uncompressedSize = Number((((uncompInfo >> 8n) & 0xfn) << 20n) | (uncompInfo >> 44n)) + 1;
    entries.push({
      compressedOffset: Number(compInfo & 0xff_ffff_ffffn),
      compressedSize,
      uncompressedOffset: Number(uncompInfo & 0xfff_ffff_f000n),
      uncompressedSize,
      compressed: compressedSize !== uncompressedSize,
    });
  }
  return entries;
}

export function decodeCiV2(buf: Buffer, count: number, offset = 0): CiEntryV2[] {
  const b = sliceChecked(buf, offset, count * CI_V2_ENTRY_SIZE, 'CI v2 array');
  const entries: CiEntryV2[] = [];
  for (let at = 0; at < b.length; at += CI_V2_ENTRY_SIZE) {
    const flags = b.readUInt8(at + 7);
    entries.push({
      uncompressedOffset: b.readUInt32LE(at) * 4096,
      uncompressedSize: (b.readUInt32LE(at + 4) & 0xffffff) + 1,
      compressedOffset: Number(b.readBigUInt64LE(at + 8) & 0xff_ffff_ffffn),
      compressedSize: Number(b.readBigUInt64LE(at + 8) >> 40n),
      compressed: (flags & CiV2Flag.COMPRESSED) !== 0,
      flags,
      dataLo: b.readUInt32LE(at + 16),
      dataHi: b.readUInt32LE(at + 20),
    });
  }
  return entries;
}
