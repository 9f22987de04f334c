import { describe, expect, it } from 'vitest';
import { RafsFormatError } from '../../src/rafs/errors.js';
import {
  compressorFromId, compressorId, decodeErofsSuperblock, decodeExtSuperblock, decodeRafsFlags, digesterFromId, digesterId,
  encodeErofsSuperblock, encodeExtSuperblock, encodeRafsFlags, EROFS_SUPER_OFFSET, EXT_SUPER_OFFSET,
} from '../../src/rafs/superblock.js';
import { describeFixtures, itFixtures, lazyFixture } from '../helpers/fixtures.js';

const boot = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');

describeFixtures('EROFS superblock', () => {
  it('decodes the nydus 2.2 fixture', () => {
    expect(decodeErofsSuperblock(boot(), EROFS_SUPER_OFFSET)).toEqual({
      blockSizeBits: 12, rootNid: 128, inodeCount: 3, blocks: 9, metaBlkaddr: 2, extraDevices: 1,
    });
  });

  it('round-trips and re-encodes the fixture bytes exactly', () => {
    const sb = decodeErofsSuperblock(boot(), EROFS_SUPER_OFFSET);
    const encoded = encodeErofsSuperblock(sb);
    expect(encoded).toEqual(boot().subarray(EROFS_SUPER_OFFSET, EROFS_SUPER_OFFSET + 128));
    const other = { blockSizeBits: 12, rootNid: 0xffff, inodeCount: 2 ** 40, blocks: 0xffffffff, metaBlkaddr: 7, extraDevices: 254 };
    expect(decodeErofsSuperblock(encodeErofsSuperblock(other))).toEqual(other);
  });

  const corrupt = (at: number, value: number): Buffer => {
    const sb = Buffer.from(boot().subarray(EROFS_SUPER_OFFSET, EROFS_SUPER_OFFSET + 128));
    sb.writeUInt8(value, at);
    return sb;
  };

  it.each([
    [0, 0, /bad magic/],
    [4, 1, /checksum/],
    [11, 0, /RAFS v6 compat bit/],
    [12, 10, /block size/],
    [13, 1, /sb_extslots/],
    [44, 1, /shared xattrs/],
    [80, 0x1c, /feature_incompat/],
    [88, 12, /devt_slotoff/],
    [100, 1, /reserved/],
  ])('rejects byte %i = %i', (at, value, message) => {
    expect(() => decodeErofsSuperblock(corrupt(at, value))).toThrow(message);
    expect(() => decodeErofsSuperblock(corrupt(at, value))).toThrow(RafsFormatError);
  });

  it('names the structure and offset in errors', () => {
    expect(() => decodeErofsSuperblock(Buffer.alloc(2000), EROFS_SUPER_OFFSET)).toThrow('EROFS superblock at offset 1024: bad magic 0x0');
    expect(() => decodeErofsSuperblock(Buffer.alloc(1100), EROFS_SUPER_OFFSET)).toThrow(/EROFS superblock at offset 1024: 128 bytes do not fit/);
  });
});

describe('RAFS extended superblock', () => {
  itFixtures('decodes the nydus 2.2 fixture', () => {
    expect(decodeExtSuperblock(boot(), EXT_SUPER_OFFSET)).toEqual({
      flags: 0x194, blobTableOffset: 0x1000, blobTableSize: 256, chunkSize: 0x100000,
      chunkTableOffset: 0x4000, chunkTableSize: 160, prefetchTableOffset: 0, prefetchTableSize: 0, checkpointTableOffset: 0, checkpointTableSize: 0,
    });
  });

  itFixtures('round-trips', () => {
    const ext = decodeExtSuperblock(boot(), EXT_SUPER_OFFSET);
    expect(encodeExtSuperblock(ext)).toEqual(boot().subarray(EXT_SUPER_OFFSET, EXT_SUPER_OFFSET + 256));
    const other = { ...ext, flags: 0x010001b4, prefetchTableOffset: 0x1100, prefetchTableSize: 8, chunkSize: 0x1000 };
    expect(decodeExtSuperblock(encodeExtSuperblock(other))).toEqual(other);
  });

  itFixtures('rejects bad table geometry', () => {
    const base = decodeExtSuperblock(boot(), EXT_SUPER_OFFSET);
    expect(() => decodeExtSuperblock(encodeExtSuperblock({ ...base, chunkSize: 0x3000 }))).toThrow(/chunk size/);
    expect(() => decodeExtSuperblock(encodeExtSuperblock({ ...base, chunkSize: 0x2000000 }))).toThrow(/chunk size/);
    expect(() => decodeExtSuperblock(encodeExtSuperblock({ ...base, blobTableSize: 100 }))).toThrow(/multiple of 256/);
    expect(() => decodeExtSuperblock(encodeExtSuperblock({ ...base, blobTableOffset: 0x1001 }))).toThrow(/4 KiB-aligned/);
    expect(() => decodeExtSuperblock(encodeExtSuperblock({ ...base, chunkTableSize: 81 }))).toThrow(/multiple of 80/);
    expect(() => decodeExtSuperblock(encodeExtSuperblock({ ...base, prefetchTableSize: 3 }))).toThrow(/multiple of 4/);
    const high = encodeExtSuperblock(base);
    high.writeUInt32LE(1, 4);
    expect(() => decodeExtSuperblock(high)).toThrow(/unknown flag bits/);
  });
});

describe('RAFS flags', () => {
  it('decodes 0x194 (nydus 2.2) and the 2022 value 0x06', () => {
    expect(decodeRafsFlags(0x194, 0)).toEqual({
      compressor: 'zstd', digester: 'blake3', explicitUidGid: true, hasXattr: false, inlinedChunkDigest: true, tarfs: false, encrypted: false,
    });
    expect(decodeRafsFlags(0x06, 0)).toMatchObject({ compressor: 'lz4_block', digester: 'blake3', explicitUidGid: false });
  });

  it('encodes what current nydus writes (ENCRYPTION_NONE set) and round-trips', () => {
    const flags = decodeRafsFlags(0x194, 0);
    expect(encodeRafsFlags(flags)).toBe(0x01000194);
    expect(encodeRafsFlags({ ...flags, hasXattr: true, compressor: 'gzip', digester: 'sha256' })).toBe(0x01000178);
    for (const compressor of ['none', 'lz4_block', 'gzip', 'zstd'] as const) {
      for (const digester of ['blake3', 'sha256'] as const) {
        const f = { ...flags, compressor, digester, tarfs: true, encrypted: true };
        expect(decodeRafsFlags(encodeRafsFlags(f), 0)).toEqual(f);
      }
    }
  });

  it('accepts reserved compat bits and rejects unknown or conflicting ones', () => {
    expect(decodeRafsFlags(0x80000194, 0).compressor).toBe('zstd');
    expect(() => decodeRafsFlags(0x594, 0)).toThrow(/unknown flag bits 0x400/);
    expect(() => decodeRafsFlags(0x196, 0)).toThrow(/exactly one compression flag/);
    expect(() => decodeRafsFlags(0x190, 0)).toThrow(/exactly one hash flag/);
    expect(() => decodeRafsFlags(0x19c, 0)).toThrow(/exactly one hash flag/);
  });
});

describe('algorithm ids', () => {
  it('maps blob-table ids both ways and rejects unknown ones', () => {
    expect(['none', 'lz4_block', 'gzip', 'zstd'].map((c) => compressorId(c as never))).toEqual([0, 1, 2, 3]);
    expect(compressorFromId(3, 'x', 0)).toBe('zstd');
    expect(digesterId('sha256')).toBe(1);
    expect(digesterFromId(0, 'x', 0)).toBe('blake3');
    expect(() => compressorFromId(4, 'blob table entry', 76)).toThrow('blob table entry at offset 76: unknown compression algorithm 4');
    expect(() => digesterFromId(2, 'x', 0)).toThrow(RafsFormatError);
  });
});
