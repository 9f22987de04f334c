// One 512-byte tar header block: decoding (ustar, GNU, v7) and encoding (ustar with GNU base-256
// numbers when a value does not fit in octal). Strings are *byte strings*: each byte of the field
// is one char code (latin1), so non-UTF-8 names survive unchanged.

import { TarFormatError, quoteBytes } from './errors.js';

export const BLOCK_SIZE = 512;

/** Largest size/uid/gid/… we accept: beyond this, JS numbers stop being exact integers. */
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** uid_t, gid_t and device numbers are 32-bit on Linux; GNU tar refuses more, and so do we. */
export const MAX_ID = 0xffff_ffff;

/** What a decoded entry is. */
export type EntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

/** What a header block is: an entry, or a meta header describing the next entry. */
export type HeaderKind = EntryType | 'pax' | 'pax-global' | 'gnu-longname' | 'gnu-longlink';

/** Which magic the header carried: POSIX ustar ("ustar\0" "00"), GNU ("ustar  \0"), or none (v7). */
export type HeaderFormat = 'ustar' | 'gnu' | 'v7';

export interface TarHeader {
  kind: HeaderKind;
  /** The raw typeflag byte as a one-char string ('\0' for old v7 files). */
  typeflag: string;
  format: HeaderFormat;
  /** name, with the ustar prefix joined in front (byte string). */
  name: string;
  /** Permission bits including setuid/setgid/sticky (the header's mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** The size field. Meaningful for files and meta headers only. */
  size: number;
  /** Seconds since the epoch; may be negative (GNU base-256). */
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

/** Header field layout: [offset, length]. */
export const FIELD = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

type NumericField = 'mode' | 'uid' | 'gid' | 'size' | 'mtime' | 'devmajor' | 'devminor';

const TYPEFLAGS: Record<string, HeaderKind> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file', // contiguous file: a regular file everywhere that matters
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
  x: 'pax',
  g: 'pax-global',
  L: 'gnu-longname',
  K: 'gnu-longlink',
};

const UNSUPPORTED_TYPEFLAGS: Record<string, string> = {
  S: 'GNU sparse file: sparse files not supported',
  D: 'GNU incremental dump directory',
  M: 'GNU multi-volume continuation',
  N: 'old GNU long file names',
  V: 'GNU volume label',
  X: 'Solaris extended header',
  A: 'Solaris access control list',
  E: 'Solaris extended attributes',
  I: 'inode metadata (star)',
};

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

/** True when the 512 bytes at `off` are all zero (an end-of-archive marker block). */
export function isZeroBlock(buf: Uint8Array, off = 0): boolean {
  return Buffer.compare(buf.subarray(off, off + BLOCK_SIZE), ZERO_BLOCK) === 0;
}

/** Reads a NUL-terminated (or field-filling) string as a byte string. */
function readString(buf: Buffer, off: number, len: number): string {
  let end = buf.indexOf(0, off);
  if (end < 0 || end > off + len) end = off + len;
  return buf.toString('latin1', off, end);
}

function numericError(field: string, why: string, buf: Buffer, off: number, len: number): TarFormatError {
  return new TarFormatError(`invalid ${field} field in tar header: ${why} (${quoteBytes(buf.toString('latin1', off, off + len))})`);
}

/**
 * Parses a numeric header field: octal digits (leading spaces/NULs allowed, terminated by NUL or
 * space; an all-blank field is 0) or GNU base-256 (first byte's high bit set, two's complement).
 * Rejects values beyond ±2^53 and, unless `allowNegative`, negative values.
 */
export function parseNumeric(buf: Buffer, off: number, len: number, field: string, allowNegative = false): number {
  const first = buf[off]!;
  if (first & 0x80) {
    // GNU base-256: the remaining bits of the field are a big-endian two's complement number
    const negative = (first & 0x40) !== 0;
    if (negative && !allowNegative) throw numericError(field, 'negative base-256 value', buf, off, len);
    const inv = negative ? 0xff : 0;
    let value = 0;
    for (let i = 0; i < len; i++) {
      let c = buf[off + i]! ^ inv;
      if (i === 0) c &= 0x7f;
      if (value > (MAX_SAFE - c) / 256) throw numericError(field, 'base-256 value too large', buf, off, len);
      value = value * 256 + c;
    }
    return negative ? -value - 1 : value;
  }
  let i = off;
  const end = off + len;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0)) i++;
  let value = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x37) break;
    value = value * 8 + (c - 0x30); // at most 12 digits: < 2^36, always exact
    digits++;
  }
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c !== 0 && c !== 0x20) {
      throw numericError(field, digits === 0 ? 'not an octal number' : 'junk after the octal number', buf, off, len);
    }
  }
  return value;
}

/**
 * The unsigned sum alone, the one nearly every archive stores: two branch-free runs around the
 * checksum field (a layer of small files has as many headers as files, each summed on the thread
 * that parses the layer).
 */
function unsignedChecksum(buf: Buffer, off: number): number {
  const [cOff, cLen] = FIELD.chksum;
  let sum = 8 * 0x20;
  for (let i = off; i < off + cOff; i++) sum += buf[i]!;
  for (let i = off + cOff + cLen; i < off + BLOCK_SIZE; i++) sum += buf[i]!;
  return sum;
}

/** Unsigned and signed sums of the header with the checksum field counted as eight spaces. */
export function headerChecksums(buf: Buffer, off = 0): { unsigned: number; signed: number } {
  let unsigned = 8 * 0x20;
  let high = 0; // bytes >= 0x80: each counts 256 less in the signed sum
  const [cOff, cLen] = FIELD.chksum;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    if (i === cOff) {
      i += cLen - 1;
      continue;
    }
    const b = buf[off + i]!;
    unsigned += b;
    if (b >= 0x80) high++;
  }
  return { unsigned, signed: unsigned - 256 * high };
}

/**
 * Decodes the 512-byte header at `buf[off..off+512]` (the caller checks for zero blocks first).
 * `streamOffset` is only used in error messages.
 */
export function decodeHeader(buf: Buffer, off = 0, streamOffset = off): TarHeader {
  if (buf.length - off < BLOCK_SIZE) throw new TarFormatError('short tar header block', { offset: streamOffset });
  const at = ` (header at offset ${streamOffset})`;
  try {
    const [cOff, cLen] = FIELD.chksum;
    let stored: number;
    try {
      stored = parseNumeric(buf, off + cOff, cLen, 'chksum');
    } catch {
      throw new TarFormatError('invalid tar header: checksum field is not a number (not a tar archive, or corrupt)');
    }
    // the signed sum (old tar writers) only when the unsigned one does not match
    const unsigned = unsignedChecksum(buf, off);
    if (stored !== unsigned && stored !== headerChecksums(buf, off).signed) {
      throw new TarFormatError(`invalid tar header: bad checksum (stored ${stored}, computed ${unsigned}) (not a tar archive, or corrupt)`);
    }

    const typeflag = String.fromCharCode(buf[off + FIELD.typeflag[0]]!);
    let kind = TYPEFLAGS[typeflag];
    if (kind === undefined) {
      const known = UNSUPPORTED_TYPEFLAGS[typeflag];
      throw new TarFormatError(`unsupported tar entry typeflag ${JSON.stringify(typeflag)}${known ? `: ${known}` : ''}`);
    }

    const magic = buf.toString('latin1', off + FIELD.magic[0], off + FIELD.magic[0] + 8);
    const format: HeaderFormat = magic === 'ustar  \0' ? 'gnu' : magic.startsWith('ustar\0') ? 'ustar' : 'v7';

    const str = (f: 'name' | 'linkname' | 'uname' | 'gname'): string => readString(buf, off + FIELD[f][0], FIELD[f][1]);
    const num = (f: NumericField, allowNegative = false): number => parseNumeric(buf, off + FIELD[f][0], FIELD[f][1], f, allowNegative);

    let name = str('name');
    if (format === 'ustar') {
      // star puts atime/ctime at 476..500 and "tar\0" at 508; its prefix is then only 131 bytes
      const star = buf.toString('latin1', off + 508, off + 512) === 'tar\0';
      const prefix = readString(buf, off + FIELD.prefix[0], star ? 131 : FIELD.prefix[1]);
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    if (typeflag === '\0' && name.endsWith('/')) kind = 'dir'; // pre-POSIX tars marked directories by name only

    const ustarLike = format !== 'v7';
    const isDevice = kind === 'char' || kind === 'block';
    return {
      kind,
      typeflag,
      format,
      name,
      mode: num('mode') & 0o7777,
      uid: num('uid'),
      gid: num('gid'),
      size: num('size'),
      mtime: num('mtime', true),
      linkname: str('linkname'),
      uname: ustarLike ? str('uname') : '',
      gname: ustarLike ? str('gname') : '',
      // only devices need these; other writers leave them blank or junk-filled
      devmajor: ustarLike && isDevice ? num('devmajor') : 0,
      devminor: ustarLike && isDevice ? num('devminor') : 0,
    };
  } catch (err) {
    if (err instanceof TarFormatError && err.offset === undefined) {
      throw new TarFormatError(err.message + at, { offset: streamOffset, cause: err.cause });
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// encoding

export interface HeaderFields {
  /** Byte string, at most 100 bytes (longer paths go in a PAX record). */
  name: string;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
}

/** Largest value an octal field of `len` bytes holds with its NUL terminator. */
export function octalMax(len: number): number {
  return 8 ** (len - 1) - 1;
}

function writeString(buf: Buffer, str: string, field: 'name' | 'linkname' | 'uname' | 'gname'): void {
  const [off, len] = FIELD[field];
  if (str.length > len || /[^\x00-\xff]/.test(str)) {
    throw new RangeError(`tar header ${field} ${quoteBytes(str)} does not fit in ${len} bytes (or is not a byte string)`);
  }
  buf.write(str, off, len, 'latin1');
}

/** Writes `value` as zero-padded octal + NUL, or as GNU base-256 when it does not fit. */
export function writeNumeric(buf: Buffer, off: number, len: number, value: number): void {
  if (!Number.isSafeInteger(value)) throw new RangeError(`tar header number ${value} is not a safe integer`);
  if (value >= 0 && value <= octalMax(len)) {
    buf.write(value.toString(8).padStart(len - 1, '0'), off, len - 1, 'latin1');
    buf[off + len - 1] = 0;
    return;
  }
  // base-256, big-endian two's complement with the top bit of the first byte set
  let v = BigInt(value);
  for (let i = len - 1; i >= 1; i--) {
    buf[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (v !== (value < 0 ? -1n : 0n)) throw new RangeError(`tar header number ${value} does not fit in ${len} bytes`);
  buf[off] = value < 0 ? 0xff : 0x80;
}

/** Encodes a POSIX ustar header block (GNU base-256 for numbers too big for octal). */
export function encodeHeader(h: HeaderFields): Buffer {
  const buf = Buffer.alloc(BLOCK_SIZE);
  writeString(buf, h.name, 'name');
  const num = (f: NumericField, v: number): void => writeNumeric(buf, FIELD[f][0], FIELD[f][1], v);
  num('mode', h.mode & 0o7777);
  num('uid', h.uid);
  num('gid', h.gid);
  num('size', h.size);
  num('mtime', h.mtime);
  if (h.typeflag.length !== 1) throw new RangeError(`bad typeflag ${JSON.stringify(h.typeflag)}`);
  buf[FIELD.typeflag[0]] = h.typeflag.charCodeAt(0);
  writeString(buf, h.linkname ?? '', 'linkname');
  buf.write('ustar\x0000', FIELD.magic[0], 8, 'latin1');
  // POSIX wants uname/gname NUL-terminated: at most 31 bytes
  writeString(buf, (h.uname ?? '').slice(0, FIELD.uname[1] - 1), 'uname');
  writeString(buf, (h.gname ?? '').slice(0, FIELD.gname[1] - 1), 'gname');
  num('devmajor', h.devmajor ?? 0);
  num('devminor', h.devminor ?? 0);
  const sum = headerChecksums(buf).unsigned;
  buf.write(sum.toString(8).padStart(6, '0') + '\0 ', FIELD.chksum[0], 8, 'latin1');
  return buf;
}
