// The FUSE kernel protocol (little endian, struct layouts of <linux/fuse.h>) as a pure codec: request
// decoding and reply encoding, no I/O. Every decoder checks lengths against the bytes the kernel
// sent; a malformed request becomes a FuseProtocolError carrying the errno to answer with, so the
// serving loop replies and goes on instead of dying.

export const FUSE_KERNEL_VERSION = 7;
/** The minor version we speak: 7.31 (MAX_PAGES, CACHE_SYMLINKS; no extension headers or flags2). */
export const FUSE_OUR_MINOR = 31;
export const FUSE_ROOT_ID = 1;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 128;
export const ATTR_OUT_SIZE = 104;
export const OPEN_OUT_SIZE = 16;
export const STATFS_OUT_SIZE = 80;
export const INIT_OUT_SIZE = 64;
export const GETXATTR_OUT_SIZE = 8;
export const DIRENT_HEADER_SIZE = 24;
export const DIRENTPLUS_HEADER_SIZE = ENTRY_OUT_SIZE + DIRENT_HEADER_SIZE;

export const MAX_WRITE = 1 << 20;
export const MAX_PAGES = 256;
/** Per-reader buffer: the kernel wants at least max_write + 80 bytes (EINVAL otherwise). */
/**
 * In a READ's file flags: the file was opened by execve (for the program, and for its interpreter),
 * the kernel's __FMODE_EXEC, which it keeps in f_flags and FUSE passes on as they are.
 */
export const FMODE_EXEC = 0x20;
export const READ_BUFFER_SIZE = MAX_WRITE + 4096;
export const MAX_NAME_LENGTH = 255;

export const Opcode = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  READLINK: 5,
  OPEN: 14,
  READ: 15,
  STATFS: 17,
  RELEASE: 18,
  GETXATTR: 22,
  LISTXATTR: 23,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  ACCESS: 34,
  INTERRUPT: 36,
  DESTROY: 38,
  BATCH_FORGET: 42,
  READDIRPLUS: 44,
} as const;
export type OpName = keyof typeof Opcode;
const OP_NAMES = new Map<number, OpName>(Object.entries(Opcode).map(([k, v]) => [v, k as OpName]));

export function opName(opcode: number): string {
  return OP_NAMES.get(opcode) ?? `OP_${opcode}`;
}

export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENODATA: 61,
  EPROTO: 71,
  EROFS: 30,
  ESTALE: 116,
} as const;

export const InitFlag = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
} as const;

/** The INIT flags we accept when the kernel offers them. */
export const WANTED_INIT_FLAGS =
  InitFlag.ASYNC_READ | InitFlag.BIG_WRITES | InitFlag.DO_READDIRPLUS | InitFlag.READDIRPLUS_AUTO |
  InitFlag.PARALLEL_DIROPS | InitFlag.MAX_PAGES | InitFlag.CACHE_SYMLINKS;

/** ACCESS mask bit asking for write access (always EROFS here). */
export const W_OK = 2;

export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
/** Keep the directory's entries in the page cache (readdir served by the kernel). */
export const FOPEN_CACHE_DIR = 1 << 3;

/** A malformed or unsupported request: answer it with `errno`. */
export class FuseProtocolError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

export type RequestBody =
  | { op: 'LOOKUP'; name: Buffer }
  | { op: 'FORGET'; nlookup: bigint }
  | { op: 'BATCH_FORGET'; forgets: { nodeid: number; nlookup: bigint }[] }
  | { op: 'GETATTR'; flags: number; fh: bigint }
  | { op: 'READLINK' }
  | { op: 'OPEN' | 'OPENDIR'; flags: number }
  /** flags: the open file's (FMODE_EXEC on the file execve opened) */
  | { op: 'READ' | 'READDIR' | 'READDIRPLUS'; fh: bigint; offset: number; size: number; flags: number }
  | { op: 'RELEASE' | 'RELEASEDIR'; fh: bigint }
  | { op: 'GETXATTR'; size: number; name: Buffer }
  | { op: 'LISTXATTR'; size: number }
  | { op: 'STATFS' }
  | { op: 'ACCESS'; mask: number }
  | { op: 'INIT'; major: number; minor: number; maxReadahead: number; flags: number }
  | { op: 'DESTROY' }
  | { op: 'INTERRUPT'; unique: bigint }
  | { op: 'FLUSH'; fh: bigint }
  | { op: 'UNKNOWN'; opcode: number };

export interface Request {
  header: InHeader;
  body: RequestBody;
}

/**
 * The header of one request as read from /dev/fuse (`buf` holds exactly the bytes read). Returns
 * undefined when not even `unique` is there (nothing can be answered); throws FuseProtocolError
 * when the header is there but inconsistent.
 */
export function decodeHeader(buf: Buffer): InHeader | undefined {
  if (buf.length < 16) return undefined;
  const len = buf.readUInt32LE(0);
  const opcode = buf.readUInt32LE(4);
  const unique = buf.readBigUInt64LE(8);
  if (buf.length < IN_HEADER_SIZE) throw new FuseProtocolError(Errno.EINVAL, `request of ${buf.length} bytes is shorter than its header`);
  const header: InHeader = {
    len,
    opcode,
    unique,
    nodeid: u64(buf, 16),
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
  };
  if (len !== buf.length) throw new FuseProtocolError(Errno.EINVAL, `header says ${len} bytes, ${buf.length} were read`);
  return header;
}

/** A u64 as a number; values past 2^53 (never valid node ids or offsets here) become -1. */
function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : -1;
}

function need(body: Buffer, size: number, what: string): void {
  if (body.length < size) throw new FuseProtocolError(Errno.EINVAL, `${what}: ${body.length} body bytes, need ${size}`);
}

/** A NUL-terminated name starting at `at`. */
function cName(body: Buffer, at: number, what: string): Buffer {
  const end = body.indexOf(0, at);
  if (end < 0) throw new FuseProtocolError(Errno.EINVAL, `${what}: name is not NUL-terminated`);
  return body.subarray(at, end);
}

/** Decodes one request; throws FuseProtocolError (with the errno to reply) on malformed input. */
export function decodeRequest(buf: Buffer): Request | undefined {
  const header = decodeHeader(buf);
  if (!header) return undefined;
  const body = buf.subarray(IN_HEADER_SIZE, header.len);
  const name = opName(header.opcode);
  const decoded = ((): RequestBody => {
    switch (header.opcode) {
      case Opcode.LOOKUP: {
        const n = cName(body, 0, name);
        if (n.length > MAX_NAME_LENGTH) throw new FuseProtocolError(Errno.ENAMETOOLONG, `${name}: name of ${n.length} bytes`);
        return { op: 'LOOKUP', name: n };
      }
      case Opcode.FORGET:
        need(body, 8, name);
        return { op: 'FORGET', nlookup: body.readBigUInt64LE(0) };
      case Opcode.BATCH_FORGET: {
        need(body, 8, name);
        const count = body.readUInt32LE(0);
        need(body, 8 + count * 16, name);
        const forgets = Array.from({ length: count }, (_, i) => ({ nodeid: u64(body, 8 + i * 16), nlookup: body.readBigUInt64LE(16 + i * 16) }));
        return { op: 'BATCH_FORGET', forgets };
      }
      case Opcode.GETATTR:
        need(body, 16, name);
        return { op: 'GETATTR', flags: body.readUInt32LE(0), fh: body.readBigUInt64LE(8) };
      case Opcode.READLINK:
        return { op: 'READLINK' };
      case Opcode.OPEN:
      case Opcode.OPENDIR:
        need(body, 8, name);
        return { op: header.opcode === Opcode.OPEN ? 'OPEN' : 'OPENDIR', flags: body.readUInt32LE(0) };
      case Opcode.READ:
      case Opcode.READDIR:
      case Opcode.READDIRPLUS: {
        need(body, 40, name);
        const offset = u64(body, 8);
        if (offset < 0) throw new FuseProtocolError(Errno.EINVAL, `${name}: offset out of range`);
        return { op: name as 'READ' | 'READDIR' | 'READDIRPLUS', fh: body.readBigUInt64LE(0), offset, size: body.readUInt32LE(16), flags: body.readUInt32LE(32) };
      }
      case Opcode.RELEASE:
      case Opcode.RELEASEDIR:
        need(body, 24, name);
        return { op: header.opcode === Opcode.RELEASE ? 'RELEASE' : 'RELEASEDIR', fh: body.readBigUInt64LE(0) };
      case Opcode.GETXATTR:
        need(body, 8, name);
        return { op: 'GETXATTR', size: body.readUInt32LE(0), name: cName(body, 8, name) };
      case Opcode.LISTXATTR:
        need(body, 8, name);
        return { op: 'LISTXATTR', size: body.readUInt32LE(0) };
      case Opcode.STATFS:
        return { op: 'STATFS' };
      case Opcode.ACCESS:
        need(body, 8, name);
        return { op: 'ACCESS', mask: body.readUInt32LE(0) };
      case Opcode.INIT:
        need(body, 16, name);
        return { op: 'INIT', major: body.readUInt32LE(0), minor: body.readUInt32LE(4), maxReadahead: body.readUInt32LE(8), flags: body.readUInt32LE(12) };
      case Opcode.DESTROY:
        return { op: 'DESTROY' };
      case Opcode.INTERRUPT:
        need(body, 8, name);
        return { op: 'INTERRUPT', unique: body.readBigUInt64LE(0) };
      case Opcode.FLUSH:
        need(body, 24, name);
        return { op: 'FLUSH', fh: body.readBigUInt64LE(0) };
      default:
        return { op: 'UNKNOWN', opcode: header.opcode };
    }
  })();
  return { header, body: decoded };
}

/** Requests the kernel expects no reply to. */
export function expectsReply(opcode: number): boolean {
  return opcode !== Opcode.FORGET && opcode !== Opcode.BATCH_FORGET && opcode !== Opcode.INTERRUPT;
}

// ---------------------------------------------------------------------------------------- replies

export interface Attr {
  ino: number;
  size: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  atimensec: number;
  mtimensec: number;
  ctimensec: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
}

export interface Entry {
  /** 0 for a cached negative entry. */
  nodeid: number;
  generation: number;
  entryValid: number;
  attrValid: number;
  attr: Attr;
}

/** Linux's new_encode_dev: the u32 dev_t that struct fuse_attr carries. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export function decodeDev(dev: number): { major: number; minor: number } {
  return { major: (dev & 0xfff00) >>> 8, minor: (dev & 0xff) | ((dev >>> 12) & 0xfff00) };
}

/** Whole seconds of a timeout, then its nanoseconds. */
function splitSeconds(seconds: number): [number, number] {
  const whole = Math.floor(seconds);
  return [whole, Math.round((seconds - whole) * 1e9)];
}

const TWO_32 = 2 ** 32;

/**
 * A 64-bit field from a safe integer as two 32-bit halves (BigInt conversions cost more than the
 * rest of a READDIRPLUS entry); negative values (times before 1970) in two's complement.
 */
function writeU64(buf: Buffer, n: number, at: number): void {
  const hi = Math.floor(n / TWO_32);
  buf.writeUInt32LE(n - hi * TWO_32, at);
  buf.writeUInt32LE(hi >>> 0, at + 4);
}

export function writeAttr(buf: Buffer, at: number, a: Attr): void {
  writeU64(buf, a.ino, at);
  writeU64(buf, a.size, at + 8);
  writeU64(buf, a.blocks, at + 16);
  writeU64(buf, a.atime, at + 24);
  writeU64(buf, a.mtime, at + 32);
  writeU64(buf, a.ctime, at + 40);
  buf.writeUInt32LE(a.atimensec, at + 48);
  buf.writeUInt32LE(a.mtimensec, at + 52);
  buf.writeUInt32LE(a.ctimensec, at + 56);
  buf.writeUInt32LE(a.mode, at + 60);
  buf.writeUInt32LE(a.nlink, at + 64);
  buf.writeUInt32LE(a.uid, at + 68);
  buf.writeUInt32LE(a.gid, at + 72);
  buf.writeUInt32LE(a.rdev, at + 76);
  buf.writeUInt32LE(a.blksize, at + 80);
  buf.writeUInt32LE(0, at + 84);
}

export function readAttr(buf: Buffer, at: number): Attr {
  return {
    ino: Number(buf.readBigUInt64LE(at)),
    size: Number(buf.readBigUInt64LE(at + 8)),
    blocks: Number(buf.readBigUInt64LE(at + 16)),
    atime: Number(buf.readBigInt64LE(at + 24)),
    mtime: Number(buf.readBigInt64LE(at + 32)),
    ctime: Number(buf.readBigInt64LE(at + 40)),
    atimensec: buf.readUInt32LE(at + 48),
    mtimensec: buf.readUInt32LE(at + 52),
    ctimensec: buf.readUInt32LE(at + 56),
    mode: buf.readUInt32LE(at + 60),
    nlink: buf.readUInt32LE(at + 64),
    uid: buf.readUInt32LE(at + 68),
    gid: buf.readUInt32LE(at + 72),
    rdev: buf.readUInt32LE(at + 76),
    blksize: buf.readUInt32LE(at + 80),
  };
}

const ZERO_ATTR: Attr = { ino: 0, size: 0, blocks: 0, atime: 0, mtime: 0, ctime: 0, atimensec: 0, mtimensec: 0, ctimensec: 0, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 0 };

export function writeEntry(buf: Buffer, at: number, e: Entry): void {
  const [ev, evNsec] = splitSeconds(e.entryValid);
  const [av, avNsec] = splitSeconds(e.attrValid);
  writeU64(buf, e.nodeid, at);
  writeU64(buf, e.generation, at + 8);
  writeU64(buf, ev, at + 16);
  writeU64(buf, av, at + 24);
  buf.writeUInt32LE(evNsec, at + 32);
  buf.writeUInt32LE(avNsec, at + 36);
  writeAttr(buf, at + 40, e.attr);
}

export function readEntry(buf: Buffer, at: number): Entry {
  return {
    nodeid: Number(buf.readBigUInt64LE(at)),
    generation: Number(buf.readBigUInt64LE(at + 8)),
    entryValid: Number(buf.readBigUInt64LE(at + 16)) + buf.readUInt32LE(at + 32) / 1e9,
    attrValid: Number(buf.readBigUInt64LE(at + 24)) + buf.readUInt32LE(at + 36) / 1e9,
    attr: readAttr(buf, at + 40),
  };
}

/** A reply header followed by `payload`; the whole reply is written with one writev. */
export function replyParts(unique: bigint, payload: Buffer[] = []): Buffer[] {
  let len = OUT_HEADER_SIZE;
  for (const p of payload) len += p.length;
  const header = Buffer.alloc(OUT_HEADER_SIZE);
  header.writeUInt32LE(len, 0);
  header.writeInt32LE(0, 4);
  header.writeBigUInt64LE(unique, 8);
  // an empty part would cost a failing write(fd, NULL, 0) in writev
  return [header, ...payload.filter((p) => p.length > 0)];
}

/** FUSE_NOTIFY_STORE: the notify code of a message that puts data into a file's page cache. */
const NOTIFY_STORE = 4;

/**
 * A FUSE_NOTIFY_STORE message (unique 0): the kernel copies `data` into the page cache of inode
 * `nodeid` at `offset`, as if a READ had returned it. The inode must be known to the kernel (after a
 * LOOKUP); otherwise the write fails with ENOENT and nothing happens.
 */
export function notifyStore(nodeid: number, offset: number, data: Buffer): Buffer[] {
  const header = Buffer.alloc(OUT_HEADER_SIZE + 24);
  header.writeUInt32LE(header.length + data.length, 0);
  header.writeInt32LE(NOTIFY_STORE, 4);
  header.writeBigUInt64LE(0n, 8);
  writeU64(header, nodeid, 16);
  writeU64(header, offset, 24);
  header.writeUInt32LE(data.length, 32);
  return [header, data];
}

export function errorReply(unique: bigint, errno: number): Buffer[] {
  const header = Buffer.alloc(OUT_HEADER_SIZE);
  header.writeUInt32LE(OUT_HEADER_SIZE, 0);
  header.writeInt32LE(-Math.abs(errno), 4);
  header.writeBigUInt64LE(unique, 8);
  return [header];
}

export function encodeEntryOut(e: Entry): Buffer {
  const buf = Buffer.alloc(ENTRY_OUT_SIZE);
  writeEntry(buf, 0, e);
  return buf;
}

/** A negative entry the kernel caches for `valid` seconds (LOOKUP answer for a missing name). */
export function negativeEntry(valid: number): Entry {
  return { nodeid: 0, generation: 0, entryValid: valid, attrValid: 0, attr: ZERO_ATTR };
}

export function encodeAttrOut(attrValid: number, attr: Attr): Buffer {
  const buf = Buffer.alloc(ATTR_OUT_SIZE);
  const [av, avNsec] = splitSeconds(attrValid);
  writeU64(buf, av, 0);
  buf.writeUInt32LE(avNsec, 8);
  writeAttr(buf, 16, attr);
  return buf;
}

export function encodeOpenOut(fh: bigint, openFlags: number): Buffer {
  const buf = Buffer.alloc(OPEN_OUT_SIZE);
  buf.writeBigUInt64LE(fh, 0);
  buf.writeUInt32LE(openFlags, 8);
  return buf;
}

export interface StatFs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

export function encodeStatfsOut(s: StatFs): Buffer {
  const buf = Buffer.alloc(STATFS_OUT_SIZE);
  buf.writeBigUInt64LE(BigInt(s.blocks), 0);
  buf.writeBigUInt64LE(BigInt(s.bfree), 8);
  buf.writeBigUInt64LE(BigInt(s.bavail), 16);
  buf.writeBigUInt64LE(BigInt(s.files), 24);
  buf.writeBigUInt64LE(BigInt(s.ffree), 32);
  buf.writeUInt32LE(s.bsize, 40);
  buf.writeUInt32LE(s.namelen, 44);
  buf.writeUInt32LE(s.frsize, 48);
  return buf;
}

export interface InitReply {
  minor: number;
  maxReadahead: number;
  flags: number;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  timeGran: number;
  maxPages: number;
}

/**
 * Our INIT answer to what the kernel offered; `readaheadLimit` (bytes) caps the readahead the kernel
 * applies with INIT, before any file can be opened (it can only be raised later, through the bdi).
 */
export function negotiateInit(req: { major: number; minor: number; maxReadahead: number; flags: number }, readaheadLimit = MAX_WRITE): InitReply {
  if (req.major !== FUSE_KERNEL_VERSION) throw new FuseProtocolError(Errno.EPROTO, `kernel FUSE ${req.major}.${req.minor}: only major 7 is supported`);
  return {
    minor: Math.min(req.minor, FUSE_OUR_MINOR),
    maxReadahead: Math.min(req.maxReadahead, MAX_WRITE, readaheadLimit),
    flags: (req.flags & WANTED_INIT_FLAGS) >>> 0,
    maxBackground: 64,
    congestionThreshold: 48,
    maxWrite: MAX_WRITE,
    timeGran: 1,
    maxPages: MAX_PAGES,
  };
}

export function encodeInitOut(r: InitReply): Buffer {
  const buf = Buffer.alloc(INIT_OUT_SIZE);
  buf.writeUInt32LE(FUSE_KERNEL_VERSION, 0);
  buf.writeUInt32LE(r.minor, 4);
  buf.writeUInt32LE(r.maxReadahead, 8);
  buf.writeUInt32LE(r.flags, 12);
  buf.writeUInt16LE(r.maxBackground, 16);
  buf.writeUInt16LE(r.congestionThreshold, 18);
  buf.writeUInt32LE(r.maxWrite, 20);
  buf.writeUInt32LE(r.timeGran, 24);
  buf.writeUInt16LE(r.maxPages, 28);
  return buf;
}

export function encodeGetxattrOut(size: number): Buffer {
  const buf = Buffer.alloc(GETXATTR_OUT_SIZE);
  buf.writeUInt32LE(size, 0);
  return buf;
}

/**
 * The answer to GETXATTR/LISTXATTR of `value` for a caller buffer of `size` bytes: size 0 asks for
 * the length (getxattr_out), a buffer too small is ERANGE, otherwise the bytes themselves.
 */
export function xattrReply(size: number, value: Buffer): Buffer | number {
  if (size === 0) return encodeGetxattrOut(value.length);
  if (size < value.length) return Errno.ERANGE;
  return value;
}

/** LISTXATTR of a node that has no xattrs (the roots and files the daemon makes up). */
export function noXattrsReply(size: number): Buffer[] | number {
  const r = xattrReply(size, xattrNameList([]));
  return typeof r === 'number' ? r : [r];
}

/** LISTXATTR's value: every name followed by a NUL. */
export function xattrNameList(names: Iterable<Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const n of names) parts.push(n, Buffer.alloc(1));
  return Buffer.concat(parts);
}

export interface DirentOut {
  ino: number;
  /** Cookie of the entry after this one (the offset the next READDIR resumes at). */
  off: number;
  /** DT_* type. */
  type: number;
  name: Buffer;
}

const align8 = (n: number): number => (n + 7) & ~7;

export const direntSize = (nameLength: number): number => align8(DIRENT_HEADER_SIZE + nameLength);
export const direntplusSize = (nameLength: number): number => align8(DIRENTPLUS_HEADER_SIZE + nameLength);

function writeDirent(buf: Buffer, at: number, d: DirentOut): void {
  writeU64(buf, d.ino, at);
  writeU64(buf, d.off, at + 8);
  buf.writeUInt32LE(d.name.length, at + 16);
  buf.writeUInt32LE(d.type, at + 20);
  d.name.copy(buf, at + DIRENT_HEADER_SIZE);
}

/**
 * Packs directory entries (fuse_dirent, or fuse_direntplus with each entry's entry_out in front;
 * 8-byte aligned, zero padded) into one reply of at most `maxSize` bytes, as they come: readdir
 * fills it straight from the image, with no list of entries in between.
 */
export class DirentPacker {
  private readonly buf: Buffer;
  private used = 0;
  count = 0;

  constructor(maxSize: number, private readonly plus: boolean) {
    // the kernel asks for at most max_pages pages; a larger size (up to 4 GiB in the request) must
    // not become an allocation of that size
    this.buf = Buffer.alloc(Math.max(0, Math.min(maxSize, MAX_WRITE)));
  }

  /** Adds one entry (`entry` is required with plus); false when it does not fit (nothing added). */
  add(d: DirentOut, entry?: Entry): boolean {
    const size = this.plus ? direntplusSize(d.name.length) : direntSize(d.name.length);
    if (this.used + size > this.buf.length) return false;
    let at = this.used;
    if (this.plus) {
      writeEntry(this.buf, at, entry ?? negativeEntry(0));
      at += ENTRY_OUT_SIZE;
    }
    writeDirent(this.buf, at, d);
    this.used += size;
    this.count++;
    return true;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.used);
  }
}

/**
 * Packs entries (fuse_dirent) into at most `maxSize` bytes; returns the bytes and how many entries
 * fit. Stops at the first entry that does not fit.
 */
export function packDirents(entries: Iterable<DirentOut>, maxSize: number): { buf: Buffer; count: number } {
  const packer = new DirentPacker(maxSize, false);
  for (const d of entries) if (!packer.add(d)) break;
  return { buf: packer.finish(), count: packer.count };
}

/** As packDirents, with each entry's entry_out in front (fuse_direntplus). */
export function packDirentsPlus(entries: Iterable<DirentOut & { entry: Entry }>, maxSize: number): { buf: Buffer; count: number } {
  const packer = new DirentPacker(maxSize, true);
  for (const d of entries) if (!packer.add(d, d.entry)) break;
  return { buf: packer.finish(), count: packer.count };
}

/** Parses packed fuse_dirent records (for tests and tools). */
export function parseDirents(buf: Buffer): DirentOut[] {
  const out: DirentOut[] = [];
  for (let at = 0; at + DIRENT_HEADER_SIZE <= buf.length;) {
    const namelen = buf.readUInt32LE(at + 16);
    out.push({ ino: Number(buf.readBigUInt64LE(at)), off: Number(buf.readBigUInt64LE(at + 8)), type: buf.readUInt32LE(at + 20), name: buf.subarray(at + 24, at + 24 + namelen) });
    at += direntSize(namelen);
  }
  return out;
}

/** Parses packed fuse_direntplus records (for tests and tools). */
export function parseDirentsPlus(buf: Buffer): (DirentOut & { entry: Entry })[] {
  const out: (DirentOut & { entry: Entry })[] = [];
  for (let at = 0; at + DIRENTPLUS_HEADER_SIZE <= buf.length;) {
    const d = at + ENTRY_OUT_SIZE;
    const namelen = buf.readUInt32LE(d + 16);
    out.push({ entry: readEntry(buf, at), ino: Number(buf.readBigUInt64LE(d)), off: Number(buf.readBigUInt64LE(d + 8)), type: buf.readUInt32LE(d + 20), name: buf.subarray(d + 24, d + 24 + namelen) });
    at += direntplusSize(namelen);
  }
  return out;
}

// --------------------------------------------------------------------- request encoders (for tests)

/** Builds a request as the kernel would send it (tests, tools). */
export function encodeRequest(opcode: number, unique: bigint, nodeid: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const buf = Buffer.alloc(IN_HEADER_SIZE + body.length);
  buf.writeUInt32LE(buf.length, 0);
  buf.writeUInt32LE(opcode, 4);
  buf.writeBigUInt64LE(unique, 8);
  buf.writeBigUInt64LE(BigInt(nodeid), 16);
  body.copy(buf, IN_HEADER_SIZE);
  return buf;
}

/** The out header of a reply (tests, tools). */
export function decodeOutHeader(buf: Buffer): { len: number; error: number; unique: bigint } {
  if (buf.length < OUT_HEADER_SIZE) throw new FuseProtocolError(Errno.EINVAL, 'reply shorter than its header');
  return { len: buf.readUInt32LE(0), error: buf.readInt32LE(4), unique: buf.readBigUInt64LE(8) };
}
