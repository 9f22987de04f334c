import { describe, expect, it } from 'vitest';
import { decodeDev, decodeInode, type DiskInode, encodeDev, encodeInode, Layout } from '../../src/rafs/inode.js';
import { RafsEncodeError, RafsFormatError } from '../../src/rafs/errors.js';
import { itFixtures, lazyFixture } from '../helpers/fixtures.js';

const boot = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');

const sample: DiskInode = {
  extended: true, layout: Layout.CHUNK_BASED, xattrCount: 5, mode: 0o104755, size: 2 ** 40 + 3, u: 0x28, ino: 0xfffffffe,
  uid: 4_000_000_000, gid: 70000, mtime: 1_700_000_000, mtimeNsec: 999_999_999, nlink: 3,
};

describe('inode', () => {
  itFixtures('decodes the fixture root directory and a chunk-based file', () => {
    // root: extended, FLAT_INLINE (i_format 0x05), 67 bytes of dirents, raw_blkaddr 3
    expect(decodeInode(boot(), 0x3000)).toEqual({
      extended: true, layout: Layout.FLAT_INLINE, xattrCount: 0, mode: 0o40755, size: 67, u: 3, ino: 0,
      uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, nlink: 2,
    });
    // lib.rs: i_format 0x09, chunk format 0x28 (1 MiB chunks, 4 KiB blocks)
    expect(decodeInode(boot(), 0x30a0)).toMatchObject({ layout: Layout.CHUNK_BASED, mode: 0o100644, size: 0x4223, u: 0x28, ino: 2, mtime: 0x63f23c61, nlink: 1 });
  });

  it('writes the extended form and round-trips every field', () => {
    const encoded = encodeInode(sample);
    expect(encoded.length).toBe(64);
    expect(encoded.readUInt16LE(0)).toBe(0x09);
    expect(decodeInode(encoded)).toEqual(sample);
    for (const layout of [Layout.FLAT_PLAIN, Layout.FLAT_INLINE]) expect(decodeInode(encodeInode({ ...sample, layout })).layout).toBe(layout);
    expect(encodeInode({ ...sample, layout: Layout.FLAT_INLINE }).readUInt16LE(0)).toBe(0x05);
  });

  it('keeps pre-1970 times', () => {
    expect(decodeInode(encodeInode({ ...sample, mtime: -86400 })).mtime).toBe(-86400);
  });

  it('regression: any stored u64 mtime decodes to a time a Date can show, any nanosecond count to less than a second', () => {
    const stored = (seconds: bigint, nsec = 0): Buffer => {
      const b = encodeInode(sample);
      b.writeBigUInt64LE(seconds, 32);
      b.writeUInt32LE(nsec, 40);
      return b;
    };
    const latest = 8.64e12;
    for (const [seconds, expected] of [
      [2n ** 53n + 1n, latest], [2n ** 63n - 1n, latest], [2n ** 63n, -latest], [2n ** 64n - 1n, -1], [BigInt(latest) + 1n, latest], [1_700_000_000n, 1_700_000_000],
    ] as const) {
      const { mtime } = decodeInode(stored(seconds));
      expect(mtime, String(seconds)).toBe(expected);
      expect(new Date(mtime * 1000).toISOString()).toMatch(/Z$/);
    }
    expect(decodeInode(stored(0n, 0xffffffff)).mtimeNsec).toBe(999_999_999);
  });

  it('decodes the 32-byte compact form', () => {
    const compact = Buffer.alloc(32);
    compact.writeUInt16LE(0x04, 0); // compact, FLAT_INLINE
    compact.writeUInt16LE(0o120777, 4);
    compact.writeUInt16LE(1, 6);
    compact.writeUInt32LE(11, 8);
    compact.writeUInt32LE(7, 20);
    compact.writeUInt16LE(1000, 24);
    compact.writeUInt16LE(100, 26);
    expect(decodeInode(compact)).toEqual({
      extended: false, layout: Layout.FLAT_INLINE, xattrCount: 0, mode: 0o120777, size: 11, u: 0, ino: 7, uid: 1000, gid: 100, mtime: 0, mtimeNsec: 0, nlink: 1,
    });
  });

  it('rejects compressed layouts, unknown format bits and truncation', () => {
    const withFormat = (format: number): Buffer => {
      const b = encodeInode(sample);
      b.writeUInt16LE(format, 0);
      return b;
    };
    expect(() => decodeInode(withFormat(0x03))).toThrow(/unsupported data layout 1/);
    expect(() => decodeInode(withFormat(0x07))).toThrow(/unsupported data layout 3/);
    expect(() => decodeInode(withFormat(0x21))).toThrow(/unknown i_format bits/);
    expect(() => decodeInode(encodeInode(sample).subarray(0, 40))).toThrow(RafsFormatError);
  });

  it('refuses values the extended inode cannot hold', () => {
    expect(() => encodeInode({ ...sample, nlink: 0 })).toThrow(RafsEncodeError);
    expect(() => encodeInode({ ...sample, uid: 2 ** 32 })).toThrow(/uid/);
    expect(() => encodeInode({ ...sample, mode: 0x10000 })).toThrow(/mode/);
  });
});

describe('device numbers', () => {
  it('uses the kernel new_encode_dev layout', () => {
    expect(encodeDev(8, 1)).toBe(0x801);
    expect(encodeDev(4, 300)).toBe(0x2c | (4 << 8) | (0x100 << 12));
    expect(encodeDev(0xfff, 0xfffff)).toBe(0xffffffff);
    for (const [major, minor] of [[0, 0], [1, 3], [4, 300], [259, 65536], [0xfff, 0xfffff]] as const) {
      expect(decodeDev(encodeDev(major, minor))).toEqual({ major, minor });
    }
    expect(() => encodeDev(0x1000, 0)).toThrow(/major/);
  });
});
