// The EROFS superblock (abs 1024, 128 B) and the nydus-only RAFS v6 extended superblock
// (abs 1152, 256 B), their flag words and the compressor/digester enums (docs/rafs-v6.md §1.2, §1.3, §1.5).
import { checkEncodable, isPowerOfTwo, isZero, readU64, sliceChecked, writeU64 } from './bytes.js';
import { RafsEncodeError, RafsFormatError } from './errors.js';
import type { Compressor, Digester } from './tree.js';

export const EROFS_SUPER_OFFSET = 1024;
export const EROFS_SUPER_SIZE = 128;
export const EXT_SUPER_OFFSET = 1152;
export const EXT_SUPER_SIZE = 256;
export const EROFS_MAGIC = 0xe0f5e1e2;
/** Nydus-only compat bit marking an EROFS image as a RAFS v6 bootstrap (the kernel ignores it). */
export const FEATURE_COMPAT_RAFS_V6 = 0x40000000;
/** CHUNKED_FILE | DEVICE_TABLE: the exact incompat set nydusd accepts. */
export const RAFS_FEATURE_INCOMPAT = 0x0000000c;
/** The device table sits in 128-byte slot 11, i.e. right after the extended superblock. */
export const DEVICE_SLOT_OFFSET = 11;
export const DEVICE_TABLE_OFFSET = DEVICE_SLOT_OFFSET * 128;
export const MIN_CHUNK_SIZE = 0x1000;
export const MAX_CHUNK_SIZE = 0x1000000;

export interface ErofsSuperblock {
  blockSizeBits: number;
  rootNid: number;
  /** Number of inode numbers handed out (s_inos). */
  inodeCount: number;
  /** Σ blocks of the data blobs, not the bootstrap size. */
  blocks: number;
  metaBlkaddr: number;
  extraDevices: number;
}

export interface RafsExtSuperblock {
  flags: number;
  blobTableOffset: number;
  blobTableSize: number;
  chunkSize: number;
  chunkTableOffset: number;
  chunkTableSize: number;
  prefetchTableOffset: number;
  prefetchTableSize: number;
  /** Ours (reserved bytes upstream): the checkpoint table (checkpoints.ts), 0/0 when there is none. */
  checkpointTableOffset: number;
  checkpointTableSize: number;
}

export const RafsFlag = {
  COMPRESSION_NONE: 0x1,
  COMPRESSION_LZ4: 0x2,
  HASH_BLAKE3: 0x4,
  HASH_SHA256: 0x8,
  EXPLICIT_UID_GID: 0x10,
  HAS_XATTR: 0x20,
  COMPRESSION_GZIP: 0x40,
  COMPRESSION_ZSTD: 0x80,
  INLINED_CHUNK_DIGEST: 0x100,
  TARFS_MODE: 0x200,
  ENCRYPTION_NONE: 0x01000000,
  ENCRYPTION_AES_128_XTS: 0x02000000,
} as const;
/** Bits readers must tolerate without knowing their meaning. */
const RESERVED_COMPAT_FLAGS = 0xfc000000;
const KNOWN_FLAGS = (Object.values(RafsFlag).reduce((all, bit) => all | bit, 0) | RESERVED_COMPAT_FLAGS) >>> 0;

const COMPRESSION_FLAGS: Record<Compressor, number> = {
  none: RafsFlag.COMPRESSION_NONE,
  lz4_block: RafsFlag.COMPRESSION_LZ4,
  gzip: RafsFlag.COMPRESSION_GZIP,
  zstd: RafsFlag.COMPRESSION_ZSTD,
};
const HASH_FLAGS: Record<Digester, number> = { blake3: RafsFlag.HASH_BLAKE3, sha256: RafsFlag.HASH_SHA256 };

/** What the extended superblock flag word says, decoded. */
export interface RafsFlags {
  compressor: Compressor;
  digester: Digester;
  explicitUidGid: boolean;
  hasXattr: boolean;
  inlinedChunkDigest: boolean;
  tarfs: boolean;
  encrypted: boolean;
}

export function encodeRafsFlags(f: RafsFlags): number {
  let flags = COMPRESSION_FLAGS[f.compressor] | HASH_FLAGS[f.digester];
  if (f.explicitUidGid) flags |= RafsFlag.EXPLICIT_UID_GID;
  if (f.hasXattr) flags |= RafsFlag.HAS_XATTR;
  if (f.inlinedChunkDigest) flags |= RafsFlag.INLINED_CHUNK_DIGEST;
  if (f.tarfs) flags |= RafsFlag.TARFS_MODE;
  flags |= f.encrypted ? RafsFlag.ENCRYPTION_AES_128_XTS : RafsFlag.ENCRYPTION_NONE;
  return flags >>> 0;
}

/** `offset` locates the flag word for error messages. */
export function decodeRafsFlags(flags: number, offset: number): RafsFlags {
  const fail = (detail: string): never => {
    throw new RafsFormatError('RAFS extended superblock flags', offset, detail);
  };
  if ((flags & ~KNOWN_FLAGS) !== 0) fail(`unknown flag bits 0x${((flags & ~KNOWN_FLAGS) >>> 0).toString(16)}`);
  const compressors = (Object.keys(COMPRESSION_FLAGS) as Compressor[]).filter((c) => flags & COMPRESSION_FLAGS[c]);
  if (compressors.length !== 1) fail(`exactly one compression flag must be set, found ${compressors.length}`);
  const digesters = (Object.keys(HASH_FLAGS) as Digester[]).filter((d) => flags & HASH_FLAGS[d]);
  if (digesters.length !== 1) fail(`exactly one hash flag must be set, found ${digesters.length}`);
  return {
    compressor: compressors[0]!,
    digester: digesters[0]!,
    explicitUidGid: (flags & RafsFlag.EXPLICIT_UID_GID) !== 0,
    hasXattr: (flags & RafsFlag.HAS_XATTR) !== 0,
    inlinedChunkDigest: (flags & RafsFlag.INLINED_CHUNK_DIGEST) !== 0,
    tarfs: (flags & RafsFlag.TARFS_MODE) !== 0,
    encrypted: (flags & RafsFlag.ENCRYPTION_AES_128_XTS) !== 0,
  };
}

// Numeric algorithm ids used by the blob table, the CI header and (compressors) nothing else.
const COMPRESSOR_IDS: readonly Compressor[] = ['none', 'lz4_block', 'gzip', 'zstd'];
const DIGESTER_IDS: readonly Digester[] = ['blake3', 'sha256'];

export function compressorId(c: Compressor): number {
  return COMPRESSOR_IDS.indexOf(c);
}

export function compressorFromId(id: number, structure: string, offset: number): Compressor {
  const c = COMPRESSOR_IDS[id];
  if (c === undefined) throw new RafsFormatError(structure, offset, `unknown compression algorithm ${id}`);
  return c;
}

export function digesterId(d: Digester): number {
  return DIGESTER_IDS.indexOf(d);
}

export function digesterFromId(id: number, structure: string, offset: number): Digester {
  const d = DIGESTER_IDS[id];
  if (d === undefined) throw new RafsFormatError(structure, offset, `unknown digest algorithm ${id}`);
  return d;
}

const SB = 'EROFS superblock';

export function encodeErofsSuperblock(sb: ErofsSuperblock): Buffer {
  checkEncodable(sb.rootNid, 0, 0xffff, SB, 'root nid');
  checkEncodable(sb.blocks, 0, 0xffffffff, SB, 'blocks');
  checkEncodable(sb.metaBlkaddr, 0, 0xffffffff, SB, 'meta_blkaddr');
  checkEncodable(sb.extraDevices, 0, 0xffff, SB, 'extra_devices');
  if (sb.inodeCount < 1) throw new RafsEncodeError(SB, 'the inode count must not be zero');
  const buf = Buffer.alloc(EROFS_SUPER_SIZE);
  buf.writeUInt32LE(EROFS_MAGIC, 0);
  buf.writeUInt32LE(FEATURE_COMPAT_RAFS_V6, 8);
  buf.writeUInt8(sb.blockSizeBits, 12);
  buf.writeUInt16LE(sb.rootNid, 14);
  writeU64(buf, sb.inodeCount, 16);
  buf.writeUInt32LE(sb.blocks, 36);
  buf.writeUInt32LE(sb.metaBlkaddr, 40);
  buf.writeUInt32LE(RAFS_FEATURE_INCOMPAT, 80);
  buf.writeUInt16LE(sb.extraDevices, 86);
  buf.writeUInt16LE(DEVICE_SLOT_OFFSET, 88);
  return buf;
}

/**
 * Decodes the superblock at `offset` (1024 in an image) and applies nydusd's rules (docs/rafs-v6.md §1.17):
 * a plain EROFS image without the RAFS marker, checksums, shared xattrs, compression or extra
 * superblock slots are all rejected.
 */
export function decodeErofsSuperblock(buf: Buffer, offset = 0): ErofsSuperblock {
  const b = sliceChecked(buf, offset, EROFS_SUPER_SIZE, SB);
  const fail = (at: number, detail: string): never => {
    throw new RafsFormatError(SB, offset + at, detail);
  };
  if (b.readUInt32LE(0) !== EROFS_MAGIC) fail(0, `bad magic 0x${b.readUInt32LE(0).toString(16)}`);
  if ((b.readUInt32LE(8) & FEATURE_COMPAT_RAFS_V6) === 0) fail(8, 'plain EROFS image without the RAFS v6 compat bit 0x40000000');
  if (b.readUInt32LE(4) !== 0) fail(4, 'checksum must be 0');
  const blockSizeBits = b.readUInt8(12);
  if (blockSizeBits !== 9 && blockSizeBits !== 12) fail(12, `unsupported block size 2^${blockSizeBits}`);
  if (b.readUInt8(13) !== 0) fail(13, 'sb_extslots must be 0');
  const inodeCount = readU64(b, 16, SB);
  if (inodeCount === 0) fail(16, 'inode count is 0');
  if (b.readUInt32LE(44) !== 0) fail(44, 'shared xattrs (xattr_blkaddr) are not supported');
  if (b.readUInt32LE(80) !== RAFS_FEATURE_INCOMPAT) fail(80, `feature_incompat must be 0xc, found 0x${b.readUInt32LE(80).toString(16)}`);
  if (b.readUInt16LE(84) !== 0) fail(84, 'compression settings must be 0');
  if (b.readUInt16LE(88) !== DEVICE_SLOT_OFFSET) fail(88, `devt_slotoff must be ${DEVICE_SLOT_OFFSET}`);
  if (!isZero(b.subarray(90))) fail(90, 'reserved bytes must be 0');
  return {
    blockSizeBits,
    rootNid: b.readUInt16LE(14),
    inodeCount,
    blocks: b.readUInt32LE(36),
    metaBlkaddr: b.readUInt32LE(40),
    extraDevices: b.readUInt16LE(86),
  };
}

const EXT = 'RAFS extended superblock';

export function encodeExtSuperblock(ext: RafsExtSuperblock): Buffer {
  checkEncodable(ext.blobTableSize, 0, 0xffffffff, EXT, 'blob table size');
  checkEncodable(ext.prefetchTableSize, 0, 0xffffffff, EXT, 'prefetch table size');
  const buf = Buffer.alloc(EXT_SUPER_SIZE);
  writeU64(buf, ext.flags, 0);
  writeU64(buf, ext.blobTableOffset, 8);
  buf.writeUInt32LE(ext.blobTableSize, 16);
  buf.writeUInt32LE(ext.chunkSize, 20);
  writeU64(buf, ext.chunkTableOffset, 24);
  writeU64(buf, ext.chunkTableSize, 32);
  writeU64(buf, ext.prefetchTableOffset, 40);
  buf.writeUInt32LE(ext.prefetchTableSize, 48);
  writeU64(buf, ext.checkpointTableOffset, 56);
  writeU64(buf, ext.checkpointTableSize, 64);
  return buf;
}

/** Decodes the extended superblock at `offset` (1152 in an image) and checks its own fields. */
export function decodeExtSuperblock(buf: Buffer, offset = 0): RafsExtSuperblock {
  const b = sliceChecked(buf, offset, EXT_SUPER_SIZE, EXT);
  const fail = (at: number, detail: string): never => {
    throw new RafsFormatError(EXT, offset + at, detail);
  };
  if (b.readUInt32LE(4) !== 0) fail(4, `unknown flag bits 0x${b.readUInt32LE(4).toString(16)}00000000`);
  const ext: RafsExtSuperblock = {
    flags: b.readUInt32LE(0),
    blobTableOffset: readU64(b, 8, EXT),
    blobTableSize: b.readUInt32LE(16),
    chunkSize: b.readUInt32LE(20),
    chunkTableOffset: readU64(b, 24, EXT),
    chunkTableSize: readU64(b, 32, EXT),
    prefetchTableOffset: readU64(b, 40, EXT),
    prefetchTableSize: b.readUInt32LE(48),
    checkpointTableOffset: readU64(b, 56, EXT),
    checkpointTableSize: readU64(b, 64, EXT),
  };
  if (ext.blobTableSize > 0 && (ext.blobTableOffset % 4096 !== 0 || ext.blobTableOffset < 4096)) fail(8, `blob table offset ${ext.blobTableOffset} is not a 4 KiB-aligned offset >= 4096`);
  if (ext.blobTableSize % 256 !== 0) fail(16, `blob table size ${ext.blobTableSize} is not a multiple of 256`);
  if (!isPowerOfTwo(ext.chunkSize) || ext.chunkSize < MIN_CHUNK_SIZE || ext.chunkSize > MAX_CHUNK_SIZE) fail(20, `invalid chunk size 0x${ext.chunkSize.toString(16)}`);
  if (ext.chunkTableSize % 80 !== 0) fail(32, `chunk table size ${ext.chunkTableSize} is not a multiple of 80`);
  if (ext.prefetchTableSize % 4 !== 0) fail(48, `prefetch table size ${ext.prefetchTableSize} is not a multiple of 4`);
  return ext;
}
