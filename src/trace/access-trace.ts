// The access trace: what one mount of an image read and what it fetched, in time order. The daemon
// records it (daemon/trace-recorder.ts), `optimize` lays an image out from it, `report` draws it.
// A trace file is untrusted input (a user hands one to `optimize` and `report`): parsing checks
// every field, every index and every count against fixed bounds before anything uses it.
//
// Times are milliseconds since the mount was served (`started`). Files are numbered by their first
// mention (a read, or a fetch of one of their chunks); a file is named by its path in the image (the
// first path of a hardlinked inode). Chunks are named by their blob (index into `blobs`) and their
// chunk index in the image's chunk info table, i.e. as the bootstrap whose sha256 is `bootstrap`
// numbers them; a fetch also says where the chunk lies in a file that holds it, so the trace alone
// tells which fetched bytes were read (a report needs no bootstrap).

export const TRACE_FORMAT = 'nydusify-ts access trace';
export const TRACE_VERSION = 1;

/**
 * The chunk size `optimize` cuts the files a trace read into by default (and the report's estimate
 * of an optimized layout assumes): small enough that the chunks a start touches hold little it did
 * not touch (debian-ml's `node -e 1`: 14.2 MB of pages, 22 MB in 16 KiB chunks, 35 MB in 64 KiB),
 * large enough that streaming them is not per-chunk work.
 */
export const DEFAULT_HOT_CHUNK_SIZE = 16 << 10;

/** Most reads and fetches a trace holds; a recorder stops recording there and says `truncated`. */
export const MAX_TRACE_EVENTS = 1_000_000;
/** Most files a trace names. */
export const MAX_TRACE_FILES = 1_000_000;
/** Longest trace file accepted, in bytes. */
export const MAX_TRACE_BYTES = 512 << 20;
/** Longest path in a trace (PATH_MAX). */
export const MAX_TRACE_PATH = 4096;

export interface TraceBlob {
  /** sha256 hex of the blob (its blob id). */
  id: string;
  compressedSize: number;
  /** The blob's chunk size (uncompressed bytes per full chunk). */
  chunkSize: number;
}

export interface TraceFile {
  /** Absolute path in the image. */
  path: string;
  size: number;
}

/** One read the filesystem served (a FUSE READ, or the part of one that fell in one file). */
export interface TraceRead {
  /** When the read arrived. */
  t: number;
  /** Index into `files`. */
  file: number;
  offset: number;
  length: number;
  /** Whether the read waited for a chunk to be fetched (a cache miss), not only the cache. */
  miss: boolean;
}

/** Why a chunk was fetched. */
export type FetchKind = 'demand' | 'readahead' | 'prefetch' | 'hot';
export const FETCH_KINDS: readonly FetchKind[] = ['demand', 'readahead', 'prefetch', 'hot'];

/** One chunk brought into the cache from the image's registry (or blob source). */
export interface TraceFetch {
  /** When it was asked for. */
  t: number;
  /** How long until its verified bytes were there. */
  ms: number;
  /** Index into `blobs`. */
  blob: number;
  /** Chunk index (into the bootstrap's chunk info table). */
  chunk: number;
  /** Compressed bytes of the chunk: what it cost on the wire. */
  bytes: number;
  /** Uncompressed bytes of the chunk. */
  size: number;
  /** Index into `files` of a file that holds the chunk (the one being read, for a demand fetch); absent when no file does. */
  file?: number;
  /** Where the chunk starts in that file (uncompressed). */
  offset?: number;
  kind: FetchKind;
}

export interface AccessTrace {
  format: typeof TRACE_FORMAT;
  version: typeof TRACE_VERSION;
  /** What was mounted: a registry reference, or a bootstrap path. */
  image: string;
  /** sha256 hex of the bootstrap the trace was taken on: chunk indexes are its. */
  bootstrap: string;
  /** ISO 8601 time the mount was served. */
  started: string;
  /** Milliseconds from `started` to when the trace was taken. */
  duration: number;
  blobs: TraceBlob[];
  files: TraceFile[];
  reads: TraceRead[];
  fetches: TraceFetch[];
  /** The recorder hit MAX_TRACE_EVENTS and dropped what came after. */
  truncated: boolean;
}

export class TraceFormatError extends Error {
  constructor(message: string) {
    super(`not a valid access trace: ${message}`);
    this.name = 'TraceFormatError';
  }
}

export function serializeAccessTrace(trace: AccessTrace): string {
  return `${JSON.stringify(trace)}\n`;
}

/** Parses and checks a trace file's text (or bytes). Throws TraceFormatError on anything out of place. */
export function parseAccessTrace(text: string | Buffer): AccessTrace {
  if (text.length > MAX_TRACE_BYTES) throw new TraceFormatError(`${text.length} bytes, more than ${MAX_TRACE_BYTES}`);
  let raw: unknown;
  try {
    raw = JSON.parse(typeof text === 'string' ? text : text.toString('utf8'));
  } catch (err) {
    throw new TraceFormatError(`not JSON (${(err as Error).message})`);
  }
  const o = record(raw, 'the trace');
  if (o.format !== TRACE_FORMAT) throw new TraceFormatError(`format is ${JSON.stringify(o.format)}, not ${JSON.stringify(TRACE_FORMAT)}`);
  if (o.version !== TRACE_VERSION) throw new TraceFormatError(`version ${JSON.stringify(o.version)} (this build reads ${TRACE_VERSION})`);
  const blobs = list(o.blobs, 'blobs', MAX_TRACE_FILES).map((b, i) => {
    const r = record(b, `blobs[${i}]`);
    return { id: hex64(r.id, `blobs[${i}].id`), compressedSize: count(r.compressedSize, `blobs[${i}].compressedSize`), chunkSize: count(r.chunkSize, `blobs[${i}].chunkSize`) };
  });
  const files = list(o.files, 'files', MAX_TRACE_FILES).map((f, i) => {
    const r = record(f, `files[${i}]`);
    return { path: path(r.path, `files[${i}].path`), size: count(r.size, `files[${i}].size`) };
  });
  const reads = list(o.reads, 'reads', MAX_TRACE_EVENTS).map((e, i) => {
    const r = record(e, `reads[${i}]`);
    const where = `reads[${i}]`;
    return { t: time(r.t, `${where}.t`), file: index(r.file, files.length, `${where}.file`), offset: count(r.offset, `${where}.offset`), length: count(r.length, `${where}.length`), miss: bool(r.miss, `${where}.miss`) };
  });
  const fetches = list(o.fetches, 'fetches', MAX_TRACE_EVENTS).map((e, i) => {
    const r = record(e, `fetches[${i}]`);
    const where = `fetches[${i}]`;
    if (!FETCH_KINDS.includes(r.kind as FetchKind)) throw new TraceFormatError(`${where}.kind is ${JSON.stringify(r.kind)}, not one of ${FETCH_KINDS.join(', ')}`);
    if ((r.file === undefined) !== (r.offset === undefined)) throw new TraceFormatError(`${where} has one of file and offset without the other`);
    const inFile = r.file === undefined ? {} : { file: index(r.file, files.length, `${where}.file`), offset: count(r.offset, `${where}.offset`) };
    return { t: time(r.t, `${where}.t`), ms: time(r.ms, `${where}.ms`), blob: index(r.blob, blobs.length, `${where}.blob`), chunk: count(r.chunk, `${where}.chunk`), bytes: count(r.bytes, `${where}.bytes`), size: count(r.size, `${where}.size`), ...inFile, kind: r.kind as FetchKind };
  });
  if (typeof o.image !== 'string' || o.image.length > MAX_TRACE_PATH) throw new TraceFormatError('image is not a string of at most 4096 characters');
  if (typeof o.started !== 'string' || Number.isNaN(Date.parse(o.started))) throw new TraceFormatError('started is not an ISO 8601 time');
  return {
    format: TRACE_FORMAT,
    version: TRACE_VERSION,
    image: o.image,
    bootstrap: hex64(o.bootstrap, 'bootstrap'),
    started: o.started,
    duration: time(o.duration, 'duration'),
    blobs,
    files,
    reads,
    fetches,
    truncated: bool(o.truncated, 'truncated'),
  };
}

/**
 * The byte ranges of each file the trace read, merged and sorted (by file index): what a container
 * touched, whatever the chunks were.
 */
export function touchedRanges(trace: AccessTrace): Map<number, Array<[start: number, end: number]>> {
  const byFile = new Map<number, Array<[number, number]>>();
  for (const r of trace.reads) {
    if (r.length === 0) continue;
    const ranges = byFile.get(r.file) ?? [];
    ranges.push([r.offset, r.offset + r.length]);
    byFile.set(r.file, ranges);
  }
  for (const [file, ranges] of byFile) {
    ranges.sort((a, b) => a[0] - b[0]);
    const merged: Array<[number, number]> = [];
    for (const [s, e] of ranges) {
      const last = merged[merged.length - 1];
      if (last && s <= last[1]) last[1] = Math.max(last[1], e);
      else merged.push([s, e]);
    }
    byFile.set(file, merged);
  }
  return byFile;
}

function record(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TraceFormatError(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function list(v: unknown, what: string, max: number): unknown[] {
  if (!Array.isArray(v)) throw new TraceFormatError(`${what} is not an array`);
  if (v.length > max) throw new TraceFormatError(`${what} has ${v.length} entries, more than ${max}`);
  return v;
}

function count(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new TraceFormatError(`${what} is not a whole number ≥ 0`);
  return v;
}

function time(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TraceFormatError(`${what} is not a time ≥ 0 (ms)`);
  return v;
}

function index(v: unknown, length: number, what: string): number {
  const i = count(v, what);
  if (i >= length) throw new TraceFormatError(`${what} is ${i}, past the ${length} entries it indexes`);
  return i;
}

function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new TraceFormatError(`${what} is not true or false`);
  return v;
}

function hex64(v: unknown, what: string): string {
  if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) throw new TraceFormatError(`${what} is not 64 lowercase hex digits`);
  return v;
}

function path(v: unknown, what: string): string {
  if (typeof v !== 'string' || !v.startsWith('/') || v.length > MAX_TRACE_PATH || v.includes('\0')) throw new TraceFormatError(`${what} is not an absolute path of at most ${MAX_TRACE_PATH} characters`);
  return v;
}
