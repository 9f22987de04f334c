// The SOCI zTOC (awslabs/soci-snapshotter, ztoc/fbs/ztoc.fbs): a FlatBuffers table of the layer's
// tar entries (where each file's data lies in the uncompressed tar) and of its gzip checkpoints
// (the zinfo, decoded by zinfo.ts), so that a file can be read by inflating only the spans it
// covers. decodeZtoc returns plain records in the order soci's ztoc.Unmarshal gives, refuses what
// that refuses, and checks besides everything a reader relies on (types, sizes, digests, times).
import { SociFormatError } from './errors.js';
import { FlatBuffer, fbField, type FbTable } from './flatbuffers.js';

export type ZtocEntryType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
export type ZtocAlgorithm = 'gzip' | 'uncompressed';

export interface ZtocEntry {
  /** Path as a byte string (each byte one char code), exactly as the tar entry had it. */
  name: string;
  type: ZtocEntryType;
  /** Where the entry's data starts in the uncompressed tar (just after its header). */
  offset: number;
  /** Data length: 0 for every type but 'reg'. */
  size: number;
  /** Symlink target or hardlink target path, as a byte string; '' otherwise. */
  linkname: string;
  /** The tar header's mode field as stored (permission bits and more). */
  mode: number;
  uid: number;
  gid: number;
  /** Byte strings. */
  uname: string;
  gname: string;
  /** Seconds since the epoch (may be negative) and nanoseconds. */
  mtime: number;
  mtimeNsec: number;
  devmajor: number;
  devminor: number;
  /**
   * Every PAX record of the entry (`SCHILY.xattr.<name>` for xattrs, but also `path`, `mtime`, …):
   * key as a byte string → raw value (a view of the zTOC buffer).
   */
  pax: Map<string, Buffer>;
}

export interface Ztoc {
  version: string;
  buildToolIdentifier: string;
  compressedArchiveSize: number;
  uncompressedArchiveSize: number;
  algorithm: ZtocAlgorithm;
  maxSpanId: number;
  /** One raw 32-byte sha256 per span, of the span's compressed bytes. */
  spanDigests: Buffer[];
  /** The zinfo blob (decodeZinfo), a view of the zTOC buffer; empty when absent. */
  checkpoints: Buffer;
  /** Sorted by offset. */
  entries: ZtocEntry[];
}

export interface ZtocLimits {
  maxEntries: number;
  /** Longest name, linkname, uname, gname and other short string, in bytes. */
  maxNameBytes: number;
  /** Most bytes of PAX keys and values together in one entry. */
  maxPaxBytes: number;
}

export const DEFAULT_ZTOC_LIMITS: Readonly<ZtocLimits> = { maxEntries: 1_000_000, maxNameBytes: 64 * 1024, maxPaxBytes: 1024 * 1024 };

/** What soci's tar.go calls TarBlockSize: headers and data start on multiples of it. */
const TAR_BLOCK = 512;

// Field ids are the declaration order in ztoc.fbs.
const ZTOC = {
  version: fbField(0, 'version'),
  buildToolIdentifier: fbField(1, 'build_tool_identifier'),
  compressedArchiveSize: fbField(2, 'compressed_archive_size'),
  uncompressedArchiveSize: fbField(3, 'uncompressed_archive_size'),
  toc: fbField(4, 'toc'),
  compressionInfo: fbField(5, 'compression_info'),
};
const TOC = { metadata: fbField(0, 'metadata') };
const FILE = {
  name: fbField(0, 'name'),
  type: fbField(1, 'type'),
  uncompressedOffset: fbField(2, 'uncompressed_offset'),
  uncompressedSize: fbField(3, 'uncompressed_size'),
  linkname: fbField(4, 'linkname'),
  mode: fbField(5, 'mode'),
  uid: fbField(6, 'uid'),
  gid: fbField(7, 'gid'),
  uname: fbField(8, 'uname'),
  gname: fbField(9, 'gname'),
  modTime: fbField(10, 'mod_time'),
  devmajor: fbField(11, 'devmajor'),
  devminor: fbField(12, 'devminor'),
  xattrs: fbField(13, 'xattrs'),
};
const XATTR = { key: fbField(0, 'key'), value: fbField(1, 'value') };
const INFO = {
  compressionAlgorithm: fbField(0, 'compression_algorithm'),
  maxSpanId: fbField(1, 'max_span_id'),
  spanDigests: fbField(2, 'span_digests'),
  checkpoints: fbField(3, 'checkpoints'),
};

/** The CompressionAlgorithm enum; Gzip is the schema default, so soci leaves the field out for it. */
const ALGORITHMS = new Map<number, ZtocAlgorithm>([
  [1, 'gzip'],
  [2, 'uncompressed'],
]);
const GZIP = 1;

const ENTRY_TYPES: ReadonlySet<string> = new Set<ZtocEntryType>(['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo']);

/**
 * An honest zTOC visits each of its bytes at most once (soci's builder shares no strings); a bound
 * of a few times its size leaves room for a writer that shares some, and keeps a hostile one's
 * work linear in its size.
 */
const MAX_VISITS_PER_BYTE = 4;

/** Decodes and checks a zTOC; anything malformed, hostile or unsupported is a SociFormatError. */
export function decodeZtoc(buf: Buffer, limits: Partial<ZtocLimits> = {}): Ztoc {
  // field by field: a spread would let an explicit `undefined` turn a limit off
  const lim: ZtocLimits = {
    maxEntries: limits.maxEntries ?? DEFAULT_ZTOC_LIMITS.maxEntries,
    maxNameBytes: limits.maxNameBytes ?? DEFAULT_ZTOC_LIMITS.maxNameBytes,
    maxPaxBytes: limits.maxPaxBytes ?? DEFAULT_ZTOC_LIMITS.maxPaxBytes,
  };
  const fb = new FlatBuffer(buf, { maxVisitedBytes: MAX_VISITS_PER_BYTE * buf.length });
  const root = fb.root('zTOC');
  const toc = required(root.table(ZTOC.toc), 'zTOC.toc');
  const info = required(root.table(ZTOC.compressionInfo), 'zTOC.compression_info');
  const compressedArchiveSize = nonNegative(root.int64(ZTOC.compressedArchiveSize), 'zTOC.compressed_archive_size');
  const uncompressedArchiveSize = nonNegative(root.int64(ZTOC.uncompressedArchiveSize), 'zTOC.uncompressed_archive_size');
  const { algorithm, maxSpanId, spanDigests, checkpoints } = decodeCompressionInfo(info, lim);
  return {
    version: root.text(ZTOC.version, 'utf8', lim.maxNameBytes) ?? '',
    buildToolIdentifier: root.text(ZTOC.buildToolIdentifier, 'utf8', lim.maxNameBytes) ?? '',
    compressedArchiveSize,
    uncompressedArchiveSize,
    algorithm,
    maxSpanId,
    spanDigests,
    checkpoints,
    entries: decodeEntries(toc, uncompressedArchiveSize, lim),
  };
}

function decodeCompressionInfo(info: FbTable, lim: ZtocLimits): Pick<Ztoc, 'algorithm' | 'maxSpanId' | 'spanDigests' | 'checkpoints'> {
  const code = info.int8(INFO.compressionAlgorithm, GZIP);
  const algorithm = ALGORITHMS.get(code);
  if (algorithm === undefined) throw new SociFormatError(`${info.what}.compression_algorithm: unknown algorithm ${code}`);
  const maxSpanId = info.int32(INFO.maxSpanId);
  const digests = info.strings(INFO.spanDigests, lim.maxNameBytes);
  if (maxSpanId < 0 || digests.length !== maxSpanId + 1) {
    throw new SociFormatError(`${info.what}: ${digests.length} span digests for max_span_id ${maxSpanId} (one per span expected)`);
  }
  const spanDigests: Buffer[] = [];
  for (let i = 0; i < digests.length; i++) spanDigests.push(parseSha256(digests.at(i), `${info.what}.span_digests[${i}]`));
  return { algorithm, maxSpanId, spanDigests, checkpoints: info.ubytes(INFO.checkpoints) ?? Buffer.alloc(0) };
}

const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;

/** "sha256:<64 lowercase hex>" (what go-digest accepts for sha256) → the 32 raw bytes. */
function parseSha256(bytes: Buffer, what: string): Buffer {
  const text = bytes.toString('latin1');
  if (!SHA256_DIGEST.test(text)) throw new SociFormatError(`${what}: ${quote(text)} is not a sha256 digest`);
  return Buffer.from(text.slice(7), 'hex');
}

function decodeEntries(toc: FbTable, archiveSize: number, lim: ZtocLimits): ZtocEntry[] {
  const tables = toc.tables(TOC.metadata);
  if (tables.length > lim.maxEntries) throw new SociFormatError(`${toc.what}.metadata: ${tables.length} entries, more than the limit of ${lim.maxEntries}`);
  const entries: ZtocEntry[] = [];
  const times = new ModTimes();
  for (let i = 0; i < tables.length; i++) entries.push(decodeEntry(tables.at(i), archiveSize, lim, times));
  // soci's Unmarshal sorts by offset (Array.prototype.sort is stable; Go's sort.Slice is not, which
  // only matters for entries sharing an offset)
  entries.sort((a, b) => a.offset - b.offset);
  checkTarOrder(entries);
  return entries;
}

/**
 * soci's flatbufferToTOC rule (ErrInvalidTOCEntry): each entry's data starts at or after the
 * previous entry's data end rounded up to a tar block, where the next header is. It holds for
 * entries of size 0 too (their "end" is their offset), and it does not demand room for the header
 * itself: an offset equal to the rounded end passes, as in soci.
 */
function checkTarOrder(entries: readonly ZtocEntry[]): void {
  let nextHeader = 0;
  for (const e of entries) {
    if (e.offset < nextHeader) {
      throw new SociFormatError(`zTOC entry ${quote(e.name)}: data at ${e.offset} starts before ${nextHeader}, where the previous entry's data ends (rounded up to ${TAR_BLOCK})`);
    }
    nextHeader = Math.ceil((e.offset + e.size) / TAR_BLOCK) * TAR_BLOCK;
  }
}

function decodeEntry(t: FbTable, archiveSize: number, lim: ZtocLimits, times: ModTimes): ZtocEntry {
  const name = t.text(FILE.name, 'latin1', lim.maxNameBytes) ?? '';
  // spelled out only for a message: a large zTOC has a million entries
  const fail = (detail: string): SociFormatError => new SociFormatError(`${t.what} ${quote(name)}: ${detail}`);
  const type = t.text(FILE.type, 'latin1', lim.maxNameBytes) ?? '';
  if (!ENTRY_TYPES.has(type)) throw fail(`unknown type ${quote(type)}`);
  const offset = t.int64(FILE.uncompressedOffset);
  const size = t.int64(FILE.uncompressedSize);
  if (offset < 0 || size < 0) throw fail(`negative uncompressed_offset ${offset} or uncompressed_size ${size}`);
  if (size !== 0 && type !== 'reg') throw fail(`a ${type} entry has data size ${size}`);
  if (offset + size > archiveSize) throw fail(`data [${offset}, ${offset + size}) runs past the ${archiveSize}-byte tar`);
  const linkname = t.text(FILE.linkname, 'latin1', lim.maxNameBytes) ?? '';
  if (name.includes('\0') || linkname.includes('\0')) throw fail('NUL byte in the name or linkname');
  const modTime = t.text(FILE.modTime, 'latin1', lim.maxNameBytes) ?? '';
  const time = times.read(modTime);
  if (typeof time === 'string') throw fail(`mod_time ${quote(modTime)} ${time}`);
  return {
    name,
    type: type as ZtocEntryType,
    offset,
    size,
    linkname,
    mode: t.int64(FILE.mode),
    uid: t.uint32(FILE.uid),
    gid: t.uint32(FILE.gid),
    uname: t.text(FILE.uname, 'latin1', lim.maxNameBytes) ?? '',
    gname: t.text(FILE.gname, 'latin1', lim.maxNameBytes) ?? '',
    mtime: time[0],
    mtimeNsec: time[1],
    devmajor: t.int64(FILE.devmajor),
    devminor: t.int64(FILE.devminor),
    pax: decodePax(t, lim.maxPaxBytes),
  };
}

/** The raw PAX records (the schema calls them xattrs); a repeated key keeps its last value, as Go's map does. */
function decodePax(t: FbTable, maxBytes: number): Map<string, Buffer> {
  const records = t.tables(FILE.xattrs);
  const pax = new Map<string, Buffer>();
  let left = maxBytes;
  for (let i = 0; i < records.length; i++) {
    const r = records.at(i);
    // each read is limited to what is left, so an oversized record is refused before it is decoded
    const key = r.bytes(XATTR.key, left) ?? Buffer.alloc(0);
    left -= key.length;
    const value = r.bytes(XATTR.value, left) ?? Buffer.alloc(0);
    left -= value.length;
    pax.set(key.toString('latin1'), value);
  }
  return pax;
}

// Go's time.MarshalText: RFC 3339 with up to 9 fraction digits (trailing zeros dropped), "Z" or a
// ±hh:mm offset (the builder's local zone).
const RFC3339 = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:Z|([+-])(\d\d):(\d\d))$/;

/** Go's zero time.Time, 0001-01-01T00:00:00Z. */
const GO_ZERO_TIME = -62_135_596_800;

/**
 * A mod_time string → [seconds since the epoch, nanoseconds]. '' is Go's zero time: soci writes
 * it when MarshalText fails (a year beyond 9999) and reads it back as the zero time.
 */
export function parseModTime(text: string): [number, number] {
  const time = readModTime(text);
  if (typeof time === 'string') throw new SociFormatError(`mod_time ${quote(text)} ${time}`);
  return time;
}

/** Remembers the last mod_time read: most entries of a layer share their time with the one before. */
class ModTimes {
  private text: string | undefined;
  private time: [number, number] | string = '';

  read(text: string): [number, number] | string {
    if (text !== this.text) {
      this.text = text;
      this.time = readModTime(text);
    }
    return this.time;
  }
}

/** parseModTime, or why not. */
function readModTime(text: string): [number, number] | string {
  if (text === '') return [GO_ZERO_TIME, 0];
  const m = RFC3339.exec(text);
  if (m === null) return 'is not an RFC 3339 time';
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const zoneHours = m[9] === undefined ? 0 : Number(m[9]);
  const zoneMinutes = m[10] === undefined ? 0 : Number(m[10]);
  // Go's parser takes neither leap seconds nor a zone of 24 hours or more
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59 || zoneHours > 23 || zoneMinutes > 59) {
    return 'is out of range';
  }
  const zone = (m[8] === '-' ? -1 : 1) * (zoneHours * 3600 + zoneMinutes * 60);
  const seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - zone;
  const nsec = m[7] === undefined ? 0 : Number(m[7].padEnd(9, '0'));
  return [seconds, nsec];
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

function required(t: FbTable | undefined, what: string): FbTable {
  // soci's Unmarshal fails on a zTOC without it too (its generated accessors panic)
  if (t === undefined) throw new SociFormatError(`${what} is missing`);
  return t;
}

function nonNegative(value: number, what: string): number {
  if (value < 0) throw new SociFormatError(`${what} ${value} is negative`);
  return value;
}

/** A string for a message: escaped, and cut when long. */
function quote(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);
}
