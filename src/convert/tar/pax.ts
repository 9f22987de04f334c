// PAX extended headers (POSIX.1-2001): records "<len> <key>=<value>\n", parsed as *bytes* because
// xattr values are binary (NULs, newlines, anything). Keys and string values become byte strings
// (one char code per byte); PAX strings are UTF-8 on the wire, so this keeps their bytes exactly.

import { MAX_SAFE } from './header.js';
import { TarFormatError, quoteBytes } from './errors.js';

/** A PAX header body larger than this is refused (a 'x', 'g', 'L' or 'K' header's data). */
export const MAX_META_SIZE = 1024 * 1024;

/** Raw records: key (byte string) → value bytes. */
export type PaxRecords = Map<string, Buffer>;

/** What PAX records override in the header, decoded. Absent fields come from the header. */
export interface PaxAttributes {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  mtime?: number;
  mtimeNsec?: number;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes (name as byte string → raw value). */
  xattrs: Map<string, Buffer>;
}

const SCHILY_XATTR = 'SCHILY.xattr.';
const LIBARCHIVE_XATTR = 'LIBARCHIVE.xattr.';
const RHT_SELINUX = 'RHT.security.selinux';

function paxError(message: string): TarFormatError {
  return new TarFormatError(`invalid PAX extended header: ${message}`);
}

/**
 * Parses a PAX header body into records. Every record's length must be exactly right: it must end
 * inside the data, on a newline, after a non-empty key and '='. GNU sparse keys are rejected.
 */
export function parsePaxRecords(data: Buffer): PaxRecords {
  const records: PaxRecords = new Map();
  let pos = 0;
  while (pos < data.length) {
    let i = pos;
    let len = 0;
    while (i < data.length && data[i]! >= 0x30 && data[i]! <= 0x39) {
      len = len * 10 + (data[i]! - 0x30);
      if (++i - pos > 7) throw paxError(`record length at byte ${pos} is absurd (over 7 digits)`);
    }
    if (i === pos || data[i] !== 0x20) {
      throw paxError(`record at byte ${pos} does not start with "<length> "`);
    }
    const end = pos + len;
    // the shortest record after "<len> " is "k=\n"
    if (len < i - pos + 1 + 3) throw paxError(`record length ${len} at byte ${pos} is too small for its own header`);
    if (end > data.length) {
      throw paxError(`record length ${len} at byte ${pos} runs past the end of the header (${data.length} bytes)`);
    }
    if (data[end - 1] !== 0x0a) throw paxError(`record length ${len} at byte ${pos} does not end on a newline (the length lies)`);
    const keyStart = i + 1;
    const eq = data.indexOf(0x3d, keyStart);
    if (eq < 0 || eq >= end - 1) throw paxError(`record at byte ${pos} has no '='`);
    if (eq === keyStart) throw paxError(`record at byte ${pos} has an empty key`);
    const key = data.toString('latin1', keyStart, eq);
    if (key.includes('\0')) throw paxError(`record key ${quoteBytes(key)} contains a NUL byte`);
    if (key.startsWith('GNU.sparse.')) {
      throw new TarFormatError(`sparse files not supported (PAX key ${quoteBytes(key)})`);
    }
    records.set(key, Buffer.from(data.subarray(eq + 1, end - 1))); // a copy: never pins the input chunk
    pos = end;
  }
  return records;
}

function parseDecimal(key: string, v: Buffer): number {
  const s = v.toString('latin1');
  if (!/^[0-9]{1,16}$/.test(s)) throw paxError(`${key}=${quoteBytes(s)} is not a decimal number`);
  const n = Number(s);
  if (n > MAX_SAFE) throw paxError(`${key}=${s} is too large`);
  return n;
}

/** Parses a PAX time "[-]sec[.frac]" into whole seconds (floor) and nanoseconds in [0, 1e9). */
export function parsePaxTime(key: string, v: Buffer): { sec: number; nsec: number } {
  const s = v.toString('latin1');
  const m = /^(-?)([0-9]{1,16})(?:\.([0-9]*))?$/.exec(s);
  if (!m) throw paxError(`${key}=${quoteBytes(s)} is not a time`);
  const whole = Number(m[2]);
  if (whole > MAX_SAFE - 1) throw paxError(`${key}=${s} is out of range`);
  const nsec = Number((m[3] ?? '').slice(0, 9).padEnd(9, '0'));
  if (m[1] !== '-') return { sec: whole, nsec };
  return nsec === 0 ? { sec: -whole, nsec: 0 } : { sec: -whole - 1, nsec: 1e9 - nsec };
}

/** Formats seconds + nanoseconds as a PAX time (fraction without trailing zeros). */
export function formatPaxTime(sec: number, nsec: number): string {
  if (!Number.isSafeInteger(sec) || !Number.isInteger(nsec) || nsec < 0 || nsec >= 1e9) {
    throw new RangeError(`bad time ${sec}.${nsec}`);
  }
  if (nsec === 0) return String(sec);
  if (sec >= 0) return `${sec}.${String(nsec).padStart(9, '0').replace(/0+$/, '')}`;
  // -2 s + 0.5 s = -1.5
  return `-${-sec - 1}.${String(1e9 - nsec).padStart(9, '0').replace(/0+$/, '')}`;
}

function percentDecode(key: string, s: string): string {
  return s.replace(/%(..)?/g, (_match, hex: string | undefined) => {
    if (hex === undefined || !/^[0-9a-fA-F]{2}$/.test(hex)) throw paxError(`bad %-escape in ${quoteBytes(key)}`);
    return String.fromCharCode(parseInt(hex, 16));
  });
}

function parseBase64(key: string, v: Buffer): Buffer {
  const s = v.toString('latin1');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.replace(/=+$/, '').length % 4 === 1) {
    throw paxError(`${quoteBytes(key)} value is not base64`);
  }
  return Buffer.from(s, 'base64');
}

/**
 * Decodes the records that matter for an entry. `records` is the merged view: global records
 * overlaid with the entry's own. An empty value for a standard key means "not set" (POSIX: it
 * deletes the global/header value, so the header field applies); for xattrs it is an empty value.
 */
export function decodePaxAttributes(records: PaxRecords): PaxAttributes {
  const attrs: PaxAttributes = { xattrs: new Map() };
  const schily: [string, Buffer][] = [];
  for (const [key, v] of records) {
    if (key.startsWith(SCHILY_XATTR)) {
      const name = key.slice(SCHILY_XATTR.length);
      if (name === '') throw paxError('empty xattr name');
      schily.push([name, v]);
      continue;
    }
    if (key.startsWith(LIBARCHIVE_XATTR)) {
      const name = percentDecode(key, key.slice(LIBARCHIVE_XATTR.length));
      if (name === '' || name.includes('\0')) throw paxError(`bad xattr name in ${quoteBytes(key)}`);
      attrs.xattrs.set(name, parseBase64(key, v));
      continue;
    }
    if (key === RHT_SELINUX) {
      attrs.xattrs.set('security.selinux', v);
      continue;
    }
    if (v.length === 0) continue;
    switch (key) {
      case 'path':
        attrs.path = v.toString('latin1');
        break;
      case 'linkpath':
        attrs.linkpath = v.toString('latin1');
        break;
      case 'uname':
        attrs.uname = v.toString('latin1');
        break;
      case 'gname':
        attrs.gname = v.toString('latin1');
        break;
      case 'size':
        attrs.size = parseDecimal(key, v);
        break;
      case 'uid':
        attrs.uid = parseDecimal(key, v);
        break;
      case 'gid':
        attrs.gid = parseDecimal(key, v);
        break;
      case 'SCHILY.devmajor':
        attrs.devmajor = parseDecimal(key, v);
        break;
      case 'SCHILY.devminor':
        attrs.devminor = parseDecimal(key, v);
        break;
      case 'mtime': {
        const t = parsePaxTime(key, v);
        attrs.mtime = t.sec;
        attrs.mtimeNsec = t.nsec;
        break;
      }
      default:
        // atime, ctime, charset, hdrcharset, comment, SCHILY.dev/ino/nlink, vendor keys: ignored
        break;
    }
  }
  // SCHILY.xattr is what GNU tar reads; when libarchive wrote both spellings, it wins
  for (const [name, v] of schily) attrs.xattrs.set(name, v);
  return attrs;
}

// ---------------------------------------------------------------------------------------------
// encoding

/** A record to write: key and value are byte strings, or the value is raw bytes. */
export type PaxRecord = readonly [key: string, value: string | Uint8Array];

/** Encodes records as a PAX header body. Keys must not contain '=' or NUL. */
export function encodePaxRecords(records: Iterable<PaxRecord>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    if (key === '' || /[=\0\n]|[^\x00-\xff]/.test(key)) throw new RangeError(`bad PAX key ${quoteBytes(key)}`);
    const k = Buffer.from(key, 'latin1');
    const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
    const n = k.length + v.length + 3; // ' ', '=', '\n'
    let digits = String(n).length;
    if (String(n + digits).length > digits) digits++;
    const len = n + digits;
    parts.push(Buffer.from(`${len} `, 'latin1'), k, Buffer.from('=', 'latin1'), Buffer.from(v), Buffer.from('\n', 'latin1'));
  }
  return Buffer.concat(parts);
}
