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
  const where = `stargz TOC entry ${index}`;
  const fail = (detail: string): never => {
    throw new StargzFormatError(`${where}: ${detail}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('is not an object');
  const obj = raw as Record<string, unknown>;
  const str = (key: string): string => {
    const v = Object.hasOwn(obj, key) ? obj[key] : '';
    if (typeof v !== 'string') return fail(`"${key}" is not a string`);
    return v;
  };
  const num = (key: string): number => {
    const v = Object.hasOwn(obj, key) ? obj[key] : 0;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return fail(`"${key}" is not a non-negative integer below 2^53`);
    return v;
  };
  const type = str('type');
  if (!ENTRY_TYPES.has(type)) fail(`unknown type ${JSON.stringify(type)}`);
  const rawName = str('name');
  const name = type === 'chunk' ? '' : cleanPath(byteString(rawName), `${where} name`);
  const rawLink = byteString(str('linkName'));
  if (type === 'symlink' && rawLink.length > SYMLINK_MAX) fail(`symlink target of ${rawLink.length} bytes (max ${SYMLINK_MAX})`);
  if (rawLink.includes('\0')) fail('linkName contains a NUL byte');
  const [mtime, mtimeNsec] = parseModTime(str('modtime'), where);
  return {
    name,
    type: type as TocEntryType,
    size: num('size'),
    mtime,
    mtimeNsec,
    linkName: type === 'hardlink' ? cleanPath(rawLink, `${where} linkName`) : rawLink,
    mode: num('mode') & 0o7777,
    uid: num('uid'),
    gid: num('gid'),
    userName: str('userName'),
    groupName: str('groupName'),
    devMajor: num('devMajor'),
    devMinor: num('devMinor'),
    xattrs: parseXattrs(Object.hasOwn(obj, 'xattrs') ? obj.xattrs : undefined, fail),
    digest: parseDigest(str('digest'), 'digest', fail),
    offset: num('offset'),
    innerOffset: num('innerOffset'),
    chunkOffset: num('chunkOffset'),
    chunkSize: num('chunkSize'),
    endOffset: num('endOffset'),
    chunkDigest: parseDigest(str('chunkDigest'), 'chunkDigest', fail),
    compressedSize: 0,
  };
}

/** A JSON string as the byte string of its UTF-8 encoding. */
function byteString(s: string): string {
  return /^[\x00-\x7f]*$/.test(s) ? s : Buffer.from(s, 'utf8').toString('latin1');
}

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
export function parseModTime(text: string, where: string): [number, number] {
  if (text === '') return [0, 0];
  const m = RFC3339.exec(text);
  if (!m) throw new StargzFormatError(`${where}: modtime ${JSON.stringify(text)} is not an RFC 3339 time`);
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    throw new StargzFormatError(`${where}: modtime ${JSON.stringify(text)} is out of range`);
  }
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  const zone = m[8] === 'Z' ? 0 : (m[8]!.startsWith('-') ? -1 : 1) * (Number(m[8]!.slice(1, 3)) * 3600 + Number(m[8]!.slice(4, 6)) * 60);
  const seconds = date.getTime() / 1000 - zone;
  if (year === 1 && month === 1 && day === 1 && seconds === -62135596800) return [0, 0];
  if (Math.abs(seconds) > MAX_TIME) throw new StargzFormatError(`${where}: modtime ${JSON.stringify(text)} is out of range`);
  return [seconds, Number((m[7] ?? '').padEnd(9, '0'))];
}

function parseDigest(text: string, key: string, fail: (detail: string) => never): string {
  if (text === '') return '';
  const m = /^sha256:([0-9a-f]{64})$/.exec(text);
  return m ? m[1]! : fail(`"${key}" ${JSON.stringify(text)} is not sha256:<64 lowercase hex>`);
}

/** `{name: base64(value)}`, as Go marshals map[string][]byte. */
function parseXattrs(raw: unknown, fail: (detail: string) => never): Map<string, Buffer> | undefined {
  if (raw === undefined) return undefined;
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
