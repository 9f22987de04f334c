// The lazy-load report's numbers, computed from an access trace alone (no bootstrap, no registry):
// what was fetched when and why, what each file cost against what it was read for, how often a read
// waited, which fetched chunks nobody read, and an estimate of what a layout built from this trace
// would fetch. Pure: a checked AccessTrace in, plain data out; report-html.ts draws it and
// `report --json` prints it as it is. Its size is bounded whatever the trace's (a fixed number of
// time buckets, a fixed number of file rows).
import { type AccessTrace, DEFAULT_HOT_CHUNK_SIZE, FETCH_KINDS, type FetchKind, touchedRanges } from './access-trace.js';

/** Files listed one by one; the rest are summed as one row. */
export const DEFAULT_TOP_FILES = 50;
/** The timeline has at most this many buckets (fewer when a round bucket width covers the trace). */
const MAX_BUCKETS = 100;

export interface ReportOptions {
  hotChunkSize?: number;
  topFiles?: number;
}

export interface ReportTotals {
  /** Compressed bytes of every fetch: what the mount cost on the wire. */
  fetchedBytes: number;
  /** Uncompressed bytes of every fetch. */
  fetchedSize: number;
  /** Bytes of files that reads touched, each byte once. */
  touchedBytes: number;
  /** Chunk fetches. */
  requests: number;
  reads: number;
  files: number;
}

export interface ReportHeader {
  image: string;
  bootstrap: string;
  started: string;
  duration: number;
  truncated: boolean;
  totals: ReportTotals;
}

export interface Timeline {
  /** Width of one bucket in ms; bucket i covers [i·bucketMs, (i+1)·bucketMs). */
  bucketMs: number;
  buckets: number;
  /** Compressed bytes whose fetch finished (t + ms) in each bucket, by why they were fetched. */
  fetchedBytes: Record<FetchKind, number[]>;
  /** Reads that arrived in each bucket and found their chunks cached. */
  hits: number[];
  /** Reads that arrived in each bucket and waited for a fetch. */
  misses: number[];
}

export interface FileRow {
  path: string;
  size: number;
  /** Bytes of the file that reads touched (merged ranges). */
  touched: number;
  /** Compressed bytes of the fetches attributed to the file. */
  fetchedBytes: number;
  /** Uncompressed bytes of those fetches. */
  fetchedSize: number;
  reads: number;
  fetches: number;
}

export interface OtherFiles extends Omit<FileRow, 'path'> {
  /** How many files the row sums. */
  count: number;
}

export interface FilesReport {
  /** The files that cost most (fetched bytes, then touched bytes), at most `topFiles` of them. */
  top: FileRow[];
  /** The rest, summed; null when `top` holds every file. */
  others: OtherFiles | null;
}

export interface CacheReport {
  reads: number;
  hits: number;
  misses: number;
  /** hits ÷ reads (0 without reads). */
  hitShare: number;
  demandFetches: number;
  /** Sum of the demand fetches' durations: the time reads spent waiting on the registry. */
  waitMs: number;
}

export interface WasteCount {
  chunks: number;
  bytes: number;
}

export interface WasteReport extends WasteCount {
  /** Wasted bytes ÷ all fetched bytes (compressed; 0 when nothing was fetched). */
  share: number;
  byKind: Record<FetchKind, WasteCount>;
}

export interface OptimizedEstimate {
  hotChunkSize: number;
  /** Compressed bytes fetched now. */
  bytesNow: number;
  /** Estimated compressed bytes an image laid out from this trace would fetch. */
  estimatedBytes: number;
  /** bytesNow − estimatedBytes (negative when the estimate is larger). */
  savedBytes: number;
  /** savedBytes ÷ bytesNow (0 when nothing was fetched). */
  savedShare: number;
  requestsNow: number;
  /** One sequential stream of the hot region, or none when nothing was touched. */
  requestsOptimized: number;
  /** Image-wide compressed ÷ uncompressed bytes of the fetches (1 when nothing was fetched). */
  compressionRatio: number;
}

export interface ReportData {
  header: ReportHeader;
  timeline: Timeline;
  files: FilesReport;
  cache: CacheReport;
  waste: WasteReport;
  optimized: OptimizedEstimate;
}

type Ranges = Array<[start: number, end: number]>;

export function computeReport(trace: AccessTrace, options: ReportOptions = {}): ReportData {
  const hotChunkSize = options.hotChunkSize ?? DEFAULT_HOT_CHUNK_SIZE;
  const topFiles = options.topFiles ?? DEFAULT_TOP_FILES;
  if (!Number.isSafeInteger(hotChunkSize) || hotChunkSize <= 0) throw new RangeError(`hot chunk size ${hotChunkSize} is not a whole number of bytes > 0`);
  if (!Number.isSafeInteger(topFiles) || topFiles < 0) throw new RangeError(`top files ${topFiles} is not a whole number ≥ 0`);
  const touched = touchedRanges(trace);
  const rows = fileRows(trace, touched);
  const totals: ReportTotals = {
    fetchedBytes: sum(trace.fetches, (f) => f.bytes),
    fetchedSize: sum(trace.fetches, (f) => f.size),
    touchedBytes: sum(rows, (r) => r.touched),
    requests: trace.fetches.length,
    reads: trace.reads.length,
    files: trace.files.length,
  };
  return {
    header: { image: trace.image, bootstrap: trace.bootstrap, started: trace.started, duration: trace.duration, truncated: trace.truncated, totals },
    timeline: timeline(trace),
    files: topRows(rows, topFiles),
    cache: cacheReport(trace),
    waste: wasteReport(trace, touched, totals.fetchedBytes),
    optimized: optimizedEstimate(trace, touched, rows, totals, hotChunkSize),
  };
}

function sum<T>(items: readonly T[], value: (item: T) => number): number {
  let total = 0;
  for (const item of items) total += value(item);
  return total;
}

/** a ÷ b, or 0 when b is 0: a report never shows NaN or Infinity. */
function share(a: number, b: number): number {
  return b === 0 ? 0 : a / b;
}

/** The smallest 1, 2 or 5 × 10^k ms (k ≥ 0) that is at least `ms`: bucket widths a reader can add up. */
function roundBucketWidth(ms: number): number {
  for (let decade = 1; ; decade *= 10) {
    for (const step of [1, 2, 5]) if (step * decade >= ms) return step * decade;
  }
}

function timeline(trace: AccessTrace): Timeline {
  let end = trace.duration;
  for (const f of trace.fetches) end = Math.max(end, f.t + f.ms);
  for (const r of trace.reads) end = Math.max(end, r.t);
  const bucketMs = roundBucketWidth(end / MAX_BUCKETS);
  const buckets = Math.max(1, Math.ceil(end / bucketMs));
  const bucketOf = (t: number): number => Math.min(buckets - 1, Math.floor(t / bucketMs));
  const zeros = (): number[] => new Array<number>(buckets).fill(0);
  const fetchedBytes = Object.fromEntries(FETCH_KINDS.map((k) => [k, zeros()])) as Record<FetchKind, number[]>;
  for (const f of trace.fetches) fetchedBytes[f.kind][bucketOf(f.t + f.ms)]! += f.bytes;
  const hits = zeros();
  const misses = zeros();
  for (const r of trace.reads) (r.miss ? misses : hits)[bucketOf(r.t)]! += 1;
  return { bucketMs, buckets, fetchedBytes, hits, misses };
}

function fileRows(trace: AccessTrace, touched: Map<number, Ranges>): FileRow[] {
  const rows: FileRow[] = trace.files.map((f, i) => ({
    path: f.path,
    size: f.size,
    touched: sum(touched.get(i) ?? [], ([s, e]) => e - s),
    fetchedBytes: 0,
    fetchedSize: 0,
    reads: 0,
    fetches: 0,
  }));
  for (const r of trace.reads) rows[r.file]!.reads += 1;
  for (const f of trace.fetches) {
    if (f.file === undefined) continue;
    const row = rows[f.file]!;
    row.fetchedBytes += f.bytes;
    row.fetchedSize += f.size;
    row.fetches += 1;
  }
  return rows;
}

function topRows(rows: FileRow[], topFiles: number): FilesReport {
  const sorted = [...rows].sort((a, b) => b.fetchedBytes - a.fetchedBytes || b.touched - a.touched || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const rest = sorted.slice(topFiles);
  const others: OtherFiles | null = rest.length === 0 ? null : {
    count: rest.length,
    size: sum(rest, (r) => r.size),
    touched: sum(rest, (r) => r.touched),
    fetchedBytes: sum(rest, (r) => r.fetchedBytes),
    fetchedSize: sum(rest, (r) => r.fetchedSize),
    reads: sum(rest, (r) => r.reads),
    fetches: sum(rest, (r) => r.fetches),
  };
  return { top: sorted.slice(0, topFiles), others };
}

function cacheReport(trace: AccessTrace): CacheReport {
  const misses = sum(trace.reads, (r) => (r.miss ? 1 : 0));
  const demand = trace.fetches.filter((f) => f.kind === 'demand');
  return {
    reads: trace.reads.length,
    hits: trace.reads.length - misses,
    misses,
    hitShare: share(trace.reads.length - misses, trace.reads.length),
    demandFetches: demand.length,
    waitMs: sum(demand, (f) => f.ms),
  };
}

/** Whether [start, end) meets any of `ranges` (sorted, merged). */
function overlaps(ranges: Ranges, start: number, end: number): boolean {
  // the first range that ends after `start`, by binary search
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ranges[mid]![1] <= start) lo = mid + 1;
    else hi = mid;
  }
  return lo < ranges.length && ranges[lo]![0] < end;
}

/**
 * A fetched chunk is wasted when no read touched any of its bytes in the file the trace says holds
 * it; a chunk no file holds cannot be read at all.
 */
function wasteReport(trace: AccessTrace, touched: Map<number, Ranges>, fetchedBytes: number): WasteReport {
  const byKind = Object.fromEntries(FETCH_KINDS.map((k) => [k, { chunks: 0, bytes: 0 }])) as Record<FetchKind, WasteCount>;
  for (const f of trace.fetches) {
    const read = f.file !== undefined && overlaps(touched.get(f.file) ?? [], f.offset!, f.offset! + f.size);
    if (read) continue;
    byKind[f.kind].chunks += 1;
    byKind[f.kind].bytes += f.bytes;
  }
  const kinds = Object.values(byKind);
  const bytes = sum(kinds, (k) => k.bytes);
  return { chunks: sum(kinds, (k) => k.chunks), bytes, share: share(bytes, fetchedBytes), byKind };
}

/** Bytes of `ranges` once each is widened to whole hot chunks (the last one ends at the file's end). */
function roundedOutBytes(ranges: Ranges, hotChunkSize: number, fileSize: number): number {
  let total = 0;
  let coveredTo = 0;
  for (const [s, e] of ranges) {
    const start = Math.max(coveredTo, Math.floor(s / hotChunkSize) * hotChunkSize);
    const end = Math.min(Math.ceil(e / hotChunkSize) * hotChunkSize, Math.max(fileSize, e));
    if (end > start) total += end - start;
    coveredTo = Math.max(coveredTo, end);
  }
  return total;
}

/**
 * An image laid out from this trace would fetch, for each file, the hot chunks its reads touched,
 * compressed as well as that file's chunks compressed now (as the whole image's did, for a file that
 * fetched nothing), in one sequential stream. An estimate: the real hot region depends on the
 * optimizer's packing and the compressor.
 */
function optimizedEstimate(trace: AccessTrace, touched: Map<number, Ranges>, rows: FileRow[], totals: ReportTotals, hotChunkSize: number): OptimizedEstimate {
  const compressionRatio = totals.fetchedSize === 0 ? 1 : totals.fetchedBytes / totals.fetchedSize;
  let estimate = 0;
  for (const [file, ranges] of touched) {
    const row = rows[file]!;
    const ratio = row.fetchedSize === 0 ? compressionRatio : row.fetchedBytes / row.fetchedSize;
    estimate += roundedOutBytes(ranges, hotChunkSize, trace.files[file]!.size) * ratio;
  }
  const estimatedBytes = Math.round(estimate);
  return {
    hotChunkSize,
    bytesNow: totals.fetchedBytes,
    estimatedBytes,
    savedBytes: totals.fetchedBytes - estimatedBytes,
    savedShare: share(totals.fetchedBytes - estimatedBytes, totals.fetchedBytes),
    requestsNow: totals.requests,
    requestsOptimized: touched.size === 0 ? 0 : 1,
    compressionRatio,
  };
}
