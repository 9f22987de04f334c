// One TOC entry (spec §1.5), checked and reduced to a compact record. Writers omit zero values, so a
// missing number is 0 and a missing string ''. Strings become byte strings (one char per byte, as
// the RAFS tree wants them): JSON carries UTF-8 text, tar names are bytes.
import { MAX_TIME, MAX_TREE_DEPTH } from '../rafs/tree.js';
import { StargzFormatError } from './errors.js';

export type TocEntryType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'chunk';

const ENTRY_TYPES = new Set<string>(['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk']);
const NAME_MAX = 255;
/** Linux's longest symlink target (PATH_MAX less the NUL). */
const SYMLINK_MAX = 4095;
const XATTR_NAME_MAX = 255;
const XATTR_VALUE_MAX = 65536;

export interface TocEntry {
  /** Path components joined by '/', without leading '/' or '.' parts; '' is the root. Byte string. */
  name: string;
  type: TocEntryType;
  /** Regular files: the whole file's length. */
  size: number;
  /** Seconds since the epoch and nanoseconds; 0 when the TOC has no (or Go's zero) time. */
  mtime: number;
  mtimeNsec: number;
  /** Symlinks: the target, verbatim. Hardlinks: the target entry's name, cleaned like `name`. */
  linkName: string;
  /** Permission bits with setuid/setgid/sticky (S_IFMT bits some writers add are dropped). */
  mode: number;
  uid: number;
  gid: number;
  /** Carried forward from an earlier entry of the same uid/gid when this one omits it. */
  userName: string;
  groupName: string;
  devMajor: number;
  devMinor: number;
  xattrs: Map<string, Buffer> | undefined;
  /** Hex sha256 of the whole file ('' when absent). */
  digest: string;
  /** Where the piece's gzip member / zstd frame starts in the blob. */
  offset: number;
  /** Uncompressed bytes to skip in that member before the piece starts. */
  innerOffset: number;
  /** Where the piece starts in the file. */
  chunkOffset: number;
  /** The piece's length; as stored (0 = to the end of the file) until the TOC reader resolves it. */
  chunkSize: number;
  /** zstd:chunked: where the file's frame ends (0 when absent). */
  endOffset: number;
  /** Hex sha256 of the piece ('' when absent). */
  chunkDigest: string;
  /** Set by the TOC reader on data pieces: bytes of the blob from `offset` that hold the member. */
  compressedSize: number;
}

/** Remembers user and group names per id, since writers print a name only when it changes. */
export class OwnerNames {
  private readonly users = new Map<number, string>();
  private readonly groups = new Map<number, string>();

  resolve(entry: TocEntry): void {
    entry.userName = carry(this.users, entry.uid, entry.userName);
    entry.groupName = carry(this.groups, entry.gid, entry.groupName);
  }
}

function carry(names: Map<number, string>, id: number, name: string): string {
  if (name !== '') names.set(id, name);
  return names.get(id) ?? '';
}

/** Checks one raw `entries` element; `index` is for messages. */
export function parseTocEntry(raw: unknown, index: number): TocEntry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return failEntry(index, 'is not an object');
  const obj = raw as Record<string, unknown>;
  const type = str(obj, 'type', index);
  if (!ENTRY_TYPES.has(type)) failEntry(index, `unknown type ${JSON.stringify(type)}`);
  const rawName = str(obj, 'name', index);
  const name = type === 'chunk' ? '' : entryPath(byteString(rawName), index, 'name');
  const rawLink = byteString(str(obj, 'linkName', index));
  if (type === 'symlink' && rawLink.length > SYMLINK_MAX) failEntry(index, `symlink target of ${rawLink.length} bytes (max ${SYMLINK_MAX})`);
  if (rawLink.includes('\0')) failEntry(index, 'linkName contains a NUL byte');
  const modtime = str(obj, 'modtime', index);
  // no [seconds, nanoseconds] pair for the common form: one array less per entry
  const seconds = modtime === '' ? 0 : wholeSecondsUtc(modtime);
  const time = seconds === undefined ? parseModTime(modtime, index) : undefined;
  return {
    name,
    type: type as TocEntryType,
    size: num(obj, 'size', index),
    mtime: time ? time[0] : seconds!,
    mtimeNsec: time ? time[1] : 0,
    linkName: type === 'hardlink' ? entryPath(rawLink, index, 'linkName') : rawLink,
    mode: num(obj, 'mode', index) & 0o7777,
    uid: num(obj, 'uid', index),
    gid: num(obj, 'gid', index),
    userName: str(obj, 'userName', index),
    groupName: str(obj, 'groupName', index),
    devMajor: num(obj, 'devMajor', index),
    devMinor: num(obj, 'devMinor', index),
    xattrs: parseXattrs(member(obj, 'xattrs'), index),
    digest: parseDigest(str(obj, 'digest', index), 'digest', index),
    offset: num(obj, 'offset', index),
    innerOffset: num(obj, 'innerOffset', index),
    chunkOffset: num(obj, 'chunkOffset', index),
    chunkSize: num(obj, 'chunkSize', index),
    endOffset: num(obj, 'endOffset', index),
    chunkDigest: parseDigest(str(obj, 'chunkDigest', index), 'chunkDigest', index),
    compressedSize: 0,
  };
}

// module-level helpers, not closures per entry: a TOC has thousands of entries, parsed cold

function failEntry(index: number, detail: string): never {
  throw new StargzFormatError(`stargz TOC entry ${index}: ${detail}`);
}

/** An own member's value, or undefined (members writers omit, the most, cost no hasOwn call). */
function member(obj: Record<string, unknown>, key: string): unknown {
  const v = obj[key];
  return v !== undefined && Object.hasOwn(obj, key) ? v : undefined;
}

function str(obj: Record<string, unknown>, key: string, index: number): string {
  const v = member(obj, key) ?? '';
  if (typeof v !== 'string') return failEntry(index, `"${key}" is not a string`);
  return v;
}

function num(obj: Record<string, unknown>, key: string, index: number): number {
  const v = member(obj, key) ?? 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return failEntry(index, `"${key}" is not a non-negative integer below 2^53`);
  return v;
}

/** A JSON string as the byte string of its UTF-8 encoding. */
function byteString(s: string): string {
  return /^[\x00-\x7f]*$/.test(s) ? s : Buffer.from(s, 'utf8').toString('latin1');
}

/** An entry's name (or hardlink target) cleaned: as it is when it already is (nearly all), else by cleanPath. */
function entryPath(path: string, index: number, key: string): string {
  return alreadyClean(path) ?? cleanPath(path, `stargz TOC entry ${index} ${key}`);
}

/**
 * `path` less one trailing '/' when that is what cleanPath would make of it: no empty, '.' or '..'
 * component, no NUL, and short enough that no component or depth limit can be reached; else undefined.
 */
function alreadyClean(path: string): string | undefined {
  const end = path.endsWith('/') ? path.length - 1 : path.length;
  if (end === 0 || end > NAME_MAX) return undefined;
  let start = 0;
  for (let i = 0; i <= end; i++) {
    const c = i < end ? path.charCodeAt(i) : SLASH;
    if (c === 0) return undefined;
    if (c !== SLASH) continue;
    const length = i - start;
    if (length === 0 || (length <= 2 && path.charCodeAt(start) === DOT && (length === 1 || path.charCodeAt(start + 1) === DOT))) return undefined;
    start = i + 1;
  }
  return end === path.length ? path : path.slice(0, end);
}

const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * `./a//b/` → `a/b`; `/`, `.` and `` → '' (the root). Refuses `..` components (a name must not
 * escape the layer, and no writer produces them), NUL bytes, components over NAME_MAX bytes and
 * paths deeper than a RAFS tree may be.
 */
export function cleanPath(path: string, what: string): string {
  if (path.includes('\0')) throw new StargzFormatError(`${what}: contains a NUL byte`);
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new StargzFormatError(`${what}: ${JSON.stringify(path)} has a '..' component`);
    if (part.length > NAME_MAX) throw new StargzFormatError(`${what}: a component of ${part.length} bytes (max ${NAME_MAX})`);
    parts.push(part);
  }
  if (parts.length > MAX_TREE_DEPTH) throw new StargzFormatError(`${what}: ${parts.length} components, more than ${MAX_TREE_DEPTH}`);
  return parts.join('/');
}

const RFC3339 = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/;

/** RFC 3339 (what Go's time.Time marshals to) → [seconds, nanoseconds]; '' and Go's zero time → 0. */
export function parseModTime(text: string, index: number): [number, number] {
  if (text === '') return [0, 0];
  const seconds = wholeSecondsUtc(text);
  if (seconds !== undefined) return [seconds, 0];
  const m = RFC3339.exec(text);
  if (!m) return failEntry(index, `modtime ${JSON.stringify(text)} is not an RFC 3339 time`);
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (!inRange(month, day, hour, minute, second)) return failEntry(index, `modtime ${JSON.stringify(text)} is out of range`);
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  const zone = m[8] === 'Z' ? 0 : (m[8]!.startsWith('-') ? -1 : 1) * (Number(m[8]!.slice(1, 3)) * 3600 + Number(m[8]!.slice(4, 6)) * 60);
  const total = date.getTime() / 1000 - zone;
  if (year === 1 && month === 1 && day === 1 && total === -62135596800) return [0, 0];
  if (Math.abs(total) > MAX_TIME) return failEntry(index, `modtime ${JSON.stringify(text)} is out of range`);
  return [total, Number((m[7] ?? '').padEnd(9, '0'))];
}

function inRange(month: number, day: number, hour: number, minute: number, second: number): boolean {
  return month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 && second <= 60;
}

/**
 * The common form, `YYYY-MM-DDTHH:MM:SSZ` (Go's for a UTC time of whole seconds) with a year from
 * 100 (where Date.UTC stops reading years as 19xx), as seconds; undefined for any other text.
 */
function wholeSecondsUtc(t: string): number | undefined {
  if (t.length !== 20 || t[4] !== '-' || t[7] !== '-' || t[10] !== 'T' || t[13] !== ':' || t[16] !== ':' || t[19] !== 'Z') return undefined;
  const year = digits(t, 0, 4);
  const month = digits(t, 5, 7);
  const day = digits(t, 8, 10);
  const hour = digits(t, 11, 13);
  const minute = digits(t, 14, 16);
  const second = digits(t, 17, 19);
  if (year < 100 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0 || !inRange(month, day, hour, minute, second)) return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, second) / 1000;
}

/** The decimal number t[from, to), or -1 when a character there is not a digit. */
function digits(t: string, from: number, to: number): number {
  let value = 0;
  for (let i = from; i < to; i++) {
    const d = t.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value;
}

const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;

function parseDigest(text: string, key: string, index: number): string {
  if (text === '') return '';
  return SHA256_DIGEST.test(text) ? text.slice('sha256:'.length) : failEntry(index, `"${key}" ${JSON.stringify(text)} is not sha256:<64 lowercase hex>`);
}

/** `{name: base64(value)}`, as Go marshals map[string][]byte. */
function parseXattrs(raw: unknown, index: number): Map<string, Buffer> | undefined {
  if (raw === undefined) return undefined;
  const fail = (detail: string): never => failEntry(index, detail);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('"xattrs" is not an object');
  const out = new Map<string, Buffer>();
  for (const [key, value] of Object.entries(raw)) {
    const name = byteString(key);
    if (name === '' || name.length > XATTR_NAME_MAX || name.includes('\0')) fail(`xattr name ${JSON.stringify(key)} is empty, too long or has a NUL`);
    if (typeof value !== 'string' || value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) fail(`xattr ${JSON.stringify(key)} is not base64`);
    const bytes = Buffer.from(value as string, 'base64');
    if (bytes.length > XATTR_VALUE_MAX) fail(`xattr ${JSON.stringify(key)} of ${bytes.length} bytes (max ${XATTR_VALUE_MAX})`);
    out.set(name, bytes);
  }
  return out.size > 0 ? out : undefined;
}
