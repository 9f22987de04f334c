// The FUSE codec against the byte layouts of <linux/fuse.h>: request decoding, reply encoding,
// dirent packing and the errno a malformed request turns into.
import { describe, expect, it } from 'vitest';
import {
  ATTR_OUT_SIZE, type Attr, decodeDev, decodeHeader, decodeOutHeader, decodeRequest, direntplusSize, direntSize, encodeAttrOut, encodeDev,
  encodeEntryOut, encodeInitOut, encodeOpenOut, encodeRequest, encodeStatfsOut, ENTRY_OUT_SIZE, type Entry, Errno, errorReply,
  expectsReply, FOPEN_KEEP_CACHE, FuseProtocolError, InitFlag, MAX_WRITE, negativeEntry, negotiateInit, Opcode, packDirents, packDirentsPlus,
  parseDirents, parseDirentsPlus, readAttr, readEntry, replyParts, xattrNameList, xattrReply,
} from '../../src/daemon/fuse/protocol.js';

const attr: Attr = {
  ino: 1234, size: 3_158_073, blocks: 6169, atime: 4_102_444_800, mtime: 1_700_000_000, ctime: 1_700_000_001,
  atimensec: 1, mtimensec: 999_999_999, ctimensec: 3, mode: 0o104755, nlink: 2, uid: 3_000_000_000, gid: 4_000_000_000,
  rdev: encodeDev(7, 300), blksize: 4096,
};
const entry: Entry = { nodeid: 77, generation: 1, entryValid: 86_400, attrValid: 1.5, attr };

const u32 = (...values: number[]): Buffer => {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32LE(v, i * 4));
  return b;
};
const u64 = (...values: number[]): Buffer => {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), i * 8));
  return b;
};
const readIn = (offset: number, size: number, flags = 0) => Buffer.concat([u64(9, offset), u32(size, 0), u64(0), u32(flags, 0)]);

/** The errno decodeRequest answers `buf` with. */
function errnoOf(buf: Buffer): number {
  try {
    decodeRequest(buf);
  } catch (err) {
    if (err instanceof FuseProtocolError) return err.errno;
    throw err;
  }
  return 0;
}

describe('request decoding', () => {
  it('decodes the header fields', () => {
    const req = encodeRequest(Opcode.GETATTR, 0xfedcba9876543210n, 42, Buffer.concat([u32(1, 0), u64(5)]));
    req.writeUInt32LE(1000, 24);
    req.writeUInt32LE(1001, 28);
    req.writeUInt32LE(4242, 32);
    expect(decodeHeader(req)).toEqual({ len: 56, opcode: Opcode.GETATTR, unique: 0xfedcba9876543210n, nodeid: 42, uid: 1000, gid: 1001, pid: 4242 });
    expect(decodeRequest(req)!.body).toEqual({ op: 'GETATTR', flags: 1, fh: 5n });
  });

  it('decodes every supported operation', () => {
    const cases: [number, Buffer, unknown][] = [
      [Opcode.LOOKUP, Buffer.from('name\0'), { op: 'LOOKUP', name: Buffer.from('name') }],
      [Opcode.FORGET, u64(3), { op: 'FORGET', nlookup: 3n }],
      [Opcode.BATCH_FORGET, Buffer.concat([u32(2, 0), u64(10, 1, 11, 2)]), { op: 'BATCH_FORGET', forgets: [{ nodeid: 10, nlookup: 1n }, { nodeid: 11, nlookup: 2n }] }],
      [Opcode.READLINK, Buffer.alloc(0), { op: 'READLINK' }],
      [Opcode.OPEN, u32(0o100000, 0), { op: 'OPEN', flags: 0o100000 }],
      [Opcode.OPENDIR, u32(0, 0), { op: 'OPENDIR', flags: 0 }],
      [Opcode.READ, readIn(1 << 20, 131072), { op: 'READ', fh: 9n, offset: 1 << 20, size: 131072, flags: 0 }],
      // execve's read of a program: O_LARGEFILE | FMODE_EXEC, as the kernel sends it
      [Opcode.READ, readIn(0, 4096, 0x8020), { op: 'READ', fh: 9n, offset: 0, size: 4096, flags: 0x8020 }],
      [Opcode.READDIR, readIn(24, 4096), { op: 'READDIR', fh: 9n, offset: 24, size: 4096, flags: 0 }],
      [Opcode.READDIRPLUS, readIn(0, 4096), { op: 'READDIRPLUS', fh: 9n, offset: 0, size: 4096, flags: 0 }],
      [Opcode.RELEASE, Buffer.concat([u64(4), u32(0, 0), u64(0)]), { op: 'RELEASE', fh: 4n }],
      [Opcode.RELEASEDIR, Buffer.concat([u64(4), u32(0, 0), u64(0)]), { op: 'RELEASEDIR', fh: 4n }],
      [Opcode.GETXATTR, Buffer.concat([u32(0, 0), Buffer.from('user.x\0')]), { op: 'GETXATTR', size: 0, name: Buffer.from('user.x') }],
      [Opcode.LISTXATTR, u32(64, 0), { op: 'LISTXATTR', size: 64 }],
      [Opcode.STATFS, Buffer.alloc(0), { op: 'STATFS' }],
      [Opcode.ACCESS, u32(4, 0), { op: 'ACCESS', mask: 4 }],
      [Opcode.INIT, Buffer.concat([u32(7, 45, 131072, 0x73fffffb), Buffer.alloc(48)]), { op: 'INIT', major: 7, minor: 45, maxReadahead: 131072, flags: 0x73fffffb }],
      [Opcode.DESTROY, Buffer.alloc(0), { op: 'DESTROY' }],
      [Opcode.INTERRUPT, u64(99), { op: 'INTERRUPT', unique: 99n }],
      [Opcode.FLUSH, Buffer.concat([u64(4), u32(0, 0), u64(0)]), { op: 'FLUSH', fh: 4n }],
      [4242, Buffer.alloc(3), { op: 'UNKNOWN', opcode: 4242 }],
    ];
    for (const [opcode, body, want] of cases) expect(decodeRequest(encodeRequest(opcode, 1n, 1, body))!.body, `opcode ${opcode}`).toEqual(want);
  });

  it('turns malformed requests into an errno, never another exception', () => {
    // fewer than 16 bytes: not even `unique` to answer to
    expect(decodeRequest(Buffer.alloc(10))).toBeUndefined();
    const short = encodeRequest(Opcode.GETATTR, 1n, 1).subarray(0, 30);
    expect(errnoOf(short)).toBe(Errno.EINVAL);
    const lying = encodeRequest(Opcode.STATFS, 1n, 1);
    lying.writeUInt32LE(4096, 0);
    expect(errnoOf(lying)).toBe(Errno.EINVAL);
    expect(errnoOf(encodeRequest(Opcode.LOOKUP, 1n, 1, Buffer.from('no-nul')))).toBe(Errno.EINVAL);
    expect(errnoOf(encodeRequest(Opcode.LOOKUP, 1n, 1, Buffer.from(`${'n'.repeat(256)}\0`)))).toBe(Errno.ENAMETOOLONG);
    expect(errnoOf(encodeRequest(Opcode.READ, 1n, 1, readIn(0, 10).subarray(0, 39)))).toBe(Errno.EINVAL);
    expect(errnoOf(encodeRequest(Opcode.READ, 1n, 1, Buffer.concat([u64(0), Buffer.from('ffffffffffffffff', 'hex'), Buffer.alloc(24)])))).toBe(Errno.EINVAL);
    expect(errnoOf(encodeRequest(Opcode.BATCH_FORGET, 1n, 1, Buffer.concat([u32(1000, 0), u64(1, 1)])))).toBe(Errno.EINVAL);
    expect(errnoOf(encodeRequest(Opcode.GETXATTR, 1n, 1, u32(0, 0)))).toBe(Errno.EINVAL);
    expect(errnoOf(encodeRequest(Opcode.INIT, 1n, 1, u32(7, 31)))).toBe(Errno.EINVAL);
    for (const op of [Opcode.FORGET, Opcode.GETATTR, Opcode.OPEN, Opcode.RELEASE, Opcode.LISTXATTR, Opcode.ACCESS, Opcode.INTERRUPT, Opcode.FLUSH]) {
      expect(errnoOf(encodeRequest(op, 1n, 1, Buffer.alloc(4))), `opcode ${op}`).toBe(Errno.EINVAL);
    }
  });

  it('survives random bytes', () => {
    let x = 12345;
    for (let i = 0; i < 2000; i++) {
      const len = (x = (x * 1103515245 + 12345) >>> 0) % 200;
      const buf = Buffer.alloc(len);
      for (let j = 0; j < len; j++) buf[j] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
      if (len >= 4 && i % 2 === 0) buf.writeUInt32LE(len, 0);
      if (len >= 8) buf.writeUInt32LE([1, 2, 3, 15, 22, 26, 28, 42, 44][i % 9]!, 4);
      expect(() => errnoOf(buf)).not.toThrow();
    }
  });

  it('knows which requests get no reply', () => {
    expect([Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT].map(expectsReply)).toEqual([false, false, false]);
    expect([Opcode.LOOKUP, Opcode.INIT, Opcode.DESTROY, Opcode.FLUSH, 999].map(expectsReply)).toEqual([true, true, true, true, true]);
  });
});

describe('reply encoding', () => {
  it('frames replies and errors with the out header', () => {
    const parts = replyParts(77n, [Buffer.alloc(5), Buffer.alloc(11)]);
    expect(decodeOutHeader(parts[0]!)).toEqual({ len: 32, error: 0, unique: 77n });
    expect(parts).toHaveLength(3);
    const err = errorReply(78n, Errno.ENOENT);
    expect(err).toHaveLength(1);
    expect(decodeOutHeader(err[0]!)).toEqual({ len: 16, error: -2, unique: 78n });
  });

  it('lays out fuse_attr, entry_out and attr_out as the kernel header does', () => {
    const e = encodeEntryOut(entry);
    expect(e).toHaveLength(ENTRY_OUT_SIZE);
    expect(e.readBigUInt64LE(0)).toBe(77n);
    expect(e.readBigUInt64LE(16)).toBe(86_400n);
    expect(e.readBigUInt64LE(24)).toBe(1n);
    expect(e.readUInt32LE(36)).toBe(500_000_000);
    expect(e.readUInt32LE(40 + 60)).toBe(0o104755); // attr.mode
    expect(e.readUInt32LE(40 + 68)).toBe(3_000_000_000); // attr.uid
    expect(readEntry(e, 0)).toEqual(entry);
    const a = encodeAttrOut(86_400, attr);
    expect(a).toHaveLength(ATTR_OUT_SIZE);
    expect(a.readBigUInt64LE(0)).toBe(86_400n);
    expect(readAttr(a, 16)).toEqual(attr);
  });

  it('encodes dev_t the way the kernel decodes it (new_decode_dev)', () => {
    expect(encodeDev(1, 3)).toBe(0x103);
    expect(encodeDev(7, 300)).toBe((300 & 0xff) | (7 << 8) | ((300 & ~0xff) << 12));
    for (const [major, minor] of [[0, 0], [1, 3], [7, 300], [259, 65_536], [4095, 1_048_575]] as const) expect(decodeDev(encodeDev(major, minor))).toEqual({ major, minor });
  });

  it('caches negative entries: node id 0 with an entry timeout', () => {
    const e = readEntry(encodeEntryOut(negativeEntry(60)), 0);
    expect(e.nodeid).toBe(0);
    expect(e.entryValid).toBe(60);
  });

  it('opens with FOPEN_KEEP_CACHE and answers statfs', () => {
    const o = encodeOpenOut(3n, FOPEN_KEEP_CACHE);
    expect(o.readBigUInt64LE(0)).toBe(3n);
    expect(o.readUInt32LE(8)).toBe(2);
    const s = encodeStatfsOut({ blocks: 10, bfree: 0, bavail: 0, files: 28, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 });
    expect(s).toHaveLength(80);
    expect([s.readBigUInt64LE(0), s.readBigUInt64LE(24), s.readUInt32LE(40), s.readUInt32LE(44)]).toEqual([10n, 28n, 4096, 255]);
  });

  it('negotiates INIT: minor 31, MAX_PAGES, 1 MiB writes, 256 pages', () => {
    const r = negotiateInit({ major: 7, minor: 45, maxReadahead: 131072, flags: 0x73fffffb });
    expect(r.minor).toBe(31);
    expect(r.flags & InitFlag.MAX_PAGES).toBe(InitFlag.MAX_PAGES);
    expect(r.flags & ~0x73fffffb).toBe(0);
    const out = encodeInitOut(r);
    expect(out).toHaveLength(64);
    expect([out.readUInt32LE(0), out.readUInt32LE(4), out.readUInt32LE(8), out.readUInt32LE(20), out.readUInt16LE(28)]).toEqual([7, 31, 131072, 1 << 20, 256]);
    expect(negotiateInit({ major: 7, minor: 28, maxReadahead: 1 << 22, flags: 0 })).toMatchObject({ minor: 28, maxReadahead: 1 << 20, flags: 0 });
    expect(() => negotiateInit({ major: 8, minor: 0, maxReadahead: 0, flags: 0 })).toThrow(FuseProtocolError);
  });

  it('probes, refuses and returns xattr values', () => {
    const v = Buffer.from('hello');
    expect((xattrReply(0, v) as Buffer).readUInt32LE(0)).toBe(5);
    expect(xattrReply(4, v)).toBe(Errno.ERANGE);
    expect(xattrReply(5, v)).toBe(v);
    const list = xattrNameList([Buffer.from('user.a'), Buffer.from('trusted.b')]);
    expect(list.toString('latin1')).toBe('user.a\0trusted.b\0');
    expect((xattrReply(0, xattrNameList([])) as Buffer).readUInt32LE(0)).toBe(0);
  });
});

describe('directory entries', () => {
  const names = ['.', '..', 'a', 'exactly8', 'n'.repeat(255), 'ünï'];
  const dirents = names.map((n, i) => ({ ino: 100 + i, off: i + 1, type: i < 2 ? 4 : 8, name: Buffer.from(n) }));

  it('packs fuse_dirent records 8-byte aligned and round-trips them', () => {
    const { buf, count } = packDirents(dirents, 1 << 16);
    expect(count).toBe(names.length);
    expect(buf.length).toBe(dirents.reduce((s, d) => s + direntSize(d.name.length), 0));
    expect(buf.length % 8).toBe(0);
    expect(direntSize(1)).toBe(32);
    expect(direntSize(8)).toBe(32);
    expect(direntSize(9)).toBe(40);
    expect(parseDirents(buf)).toEqual(dirents);
  });

  it('stops at the first entry that does not fit', () => {
    const limit = direntSize(1) + direntSize(2) + direntSize(1) + 7;
    const { buf, count } = packDirents(dirents, limit);
    expect(count).toBe(3);
    expect(parseDirents(buf).map((d) => d.name.toString())).toEqual(['.', '..', 'a']);
    expect(packDirents(dirents, 10).count).toBe(0);
  });

  it('packs fuse_direntplus records with their entries', () => {
    const plus = dirents.map((d) => ({ ...d, entry: { ...entry, nodeid: d.ino + 2, attr: { ...attr, ino: d.ino } } }));
    const { buf, count } = packDirentsPlus(plus, 1 << 16);
    expect(count).toBe(names.length);
    expect(direntplusSize(1)).toBe(152 + 8);
    expect(parseDirentsPlus(buf)).toEqual(plus);
    expect(packDirentsPlus(plus, direntplusSize(1) * 2 - 1).count).toBe(1);
  });

  it('regression: a READDIR asking for 4 GiB holds at most MAX_WRITE bytes', () => {
    // found by test/fuzz: the reply is a view of a buffer of the size the request asked for
    for (const size of [0xffffffff, MAX_WRITE + 1]) {
      const { buf, count } = packDirents(dirents, size);
      expect(count).toBe(names.length);
      expect(buf.buffer.byteLength).toBeLessThanOrEqual(MAX_WRITE);
    }
  });
});
