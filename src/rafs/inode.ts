// EROFS on-disk inodes (docs/rafs-v6.md §1.7, §1.8): the writer always emits the 64-byte extended form,
// the reader also accepts the 32-byte compact form older dir-rafs builds produced.
import { checkEncodable, checkRange, putU16, putU32, readU64, writeI64, writeU64 } from './bytes.js';
import { RafsFormatError } from './errors.js';
import { MAX_TIME } from './tree.js';

/** nids count 32-byte slots from the start of the meta area. */
export const INODE_SLOT_SIZE = 32;
export const EXTENDED_INODE_SIZE = 64;
export const COMPACT_INODE_SIZE = 32;

/** Data layouts (i_format bits 1..3); the compressed ones (1, 3) are never used by RAFS. */
export const Layout = { FLAT_PLAIN: 0, FLAT_INLINE: 2, CHUNK_BASED: 4 } as const;
export type Layout = (typeof Layout)[keyof typeof Layout];
const LAYOUTS: readonly number[] = Object.values(Layout);

export interface DiskInode {
  /** 64-byte form; false for the 32-byte compact form (only ever decoded). */
  extended: boolean;
  layout: Layout;
  /** i_xattr_icount: 0, or the inline xattr area size in 4-byte units minus 2 (see xattr.ts). */
  xattrCount: number;
  mode: number;
  size: number;
  /** i_u: raw_blkaddr (flat layouts), chunk format (chunk-based) or rdev (devices). */
  u: number;
  ino: number;
  uid: number;
  gid: number;
  /** Seconds; compact inodes have none (0). */
  mtime: number;
  mtimeNsec: number;
  nlink: number;
}

const INODE = 'inode';

export function encodeInode(inode: DiskInode): Buffer {
  const buf = Buffer.alloc(EXTENDED_INODE_SIZE);
  writeInode(buf, 0, inode);
  return buf;
}

/** Encodes an extended inode at `offset` of `buf` (a bootstrap writes thousands: no Buffer each); its reserved bytes are left as they are (zero). */
export function writeInode(buf: Buffer, offset: number, inode: DiskInode): void {
  checkEncodable(inode.xattrCount, 0, 0xffff, INODE, 'xattr count');
  checkEncodable(inode.mode, 0, 0xffff, INODE, 'mode');
  checkEncodable(inode.size, 0, Number.MAX_SAFE_INTEGER, INODE, 'size');
  checkEncodable(inode.u, 0, 0xffffffff, INODE, 'i_u');
  checkEncodable(inode.ino, 0, 0xffffffff, INODE, 'ino');
  checkEncodable(inode.uid, 0, 0xffffffff, INODE, 'uid');
  checkEncodable(inode.gid, 0, 0xffffffff, INODE, 'gid');
  checkEncodable(inode.mtimeNsec, 0, 999_999_999, INODE, 'mtime nsec');
  checkEncodable(inode.nlink, 1, 0xffffffff, INODE, 'nlink');
  checkEncodable(inode.mtime, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, INODE, 'mtime');
  putU16(buf, offset, 1 | (inode.layout << 1));
  putU16(buf, offset + 2, inode.xattrCount);
  putU16(buf, offset + 4, inode.mode);
  writeU64(buf, inode.size, offset + 8);
  putU32(buf, offset + 16, inode.u);
  putU32(buf, offset + 20, inode.ino);
  putU32(buf, offset + 24, inode.uid);
  putU32(buf, offset + 28, inode.gid);
  // stored as u64 seconds; a pre-1970 time survives as its two's complement
  writeI64(buf, inode.mtime, offset + 32);
  putU32(buf, offset + 40, inode.mtimeNsec);
  putU32(buf, offset + 44, inode.nlink);
}

/** Decodes the inode at `offset`, in whichever form its i_format says. */
export function decodeInode(buf: Buffer, offset = 0): DiskInode {
  // reads in place (no subarray): this runs for every lookup and getattr
  checkRange(buf.length, offset, 2, INODE);
  const format = buf.readUInt16LE(offset);
  if (format & ~0xf) throw new RafsFormatError(INODE, offset, `unknown i_format bits 0x${format.toString(16)}`);
  const layout = (format >> 1) & 0x7;
  if (!LAYOUTS.includes(layout)) throw new RafsFormatError(INODE, offset, `unsupported data layout ${layout}`);
  const extended = (format & 1) === 1;
  checkRange(buf.length, offset, extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE, INODE);
  const at = (field: number): number => offset + field;
  if (!extended) {
    return {
      extended,
      layout: layout as Layout,
      xattrCount: buf.readUInt16LE(at(2)),
      mode: buf.readUInt16LE(at(4)),
      nlink: buf.readUInt16LE(at(6)),
      size: buf.readUInt32LE(at(8)),
      u: buf.readUInt32LE(at(16)),
      ino: buf.readUInt32LE(at(20)),
      uid: buf.readUInt16LE(at(24)),
      gid: buf.readUInt16LE(at(26)),
      mtime: 0,
      mtimeNsec: 0,
    };
  }
  return {
    extended,
    layout: layout as Layout,
    xattrCount: buf.readUInt16LE(at(2)),
    mode: buf.readUInt16LE(at(4)),
    size: readU64(buf, at(8), INODE),
    u: buf.readUInt32LE(at(16)),
    ino: buf.readUInt32LE(at(20)),
    uid: buf.readUInt32LE(at(24)),
    gid: buf.readUInt32LE(at(28)),
    // a u64 (i64 before 1970) on disk: a time no Date can show is clamped, and so are nanoseconds past a second
    mtime: Math.min(Math.max(buf.readInt32LE(at(36)) * 2 ** 32 + buf.readUInt32LE(at(32)), -MAX_TIME), MAX_TIME),
    mtimeNsec: Math.min(buf.readUInt32LE(at(40)), 999_999_999),
    nlink: buf.readUInt32LE(at(44)),
  };
}

/** Linux new_encode_dev truncated to 32 bits, the i_u of device inodes. */
export function encodeDev(major: number, minor: number): number {
  checkEncodable(major, 0, 0xfff, INODE, 'device major');
  checkEncodable(minor, 0, 0xfffff, INODE, 'device minor');
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export function decodeDev(rdev: number): { major: number; minor: number } {
  return { major: (rdev >>> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}
