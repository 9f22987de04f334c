// The daemon's numbers in upstream nydusd's JSON shapes (its metrics API, as nydus-snapshotter and
// nydusctl parse it), field for field: the filesystem's I/O stats, the backend's, the blob cache's,
// the reads hung on the backend, and the daemon info's build-version object. Pure: counters in,
// objects out. Where nydusd counts something this daemon has no counterpart for (open files, partial
// cache hits), the field is there with 0; nothing is made up.
import type { AccessTrace } from '../trace/access-trace.js';
import { LATENCY_RANGES, SIZE_CLASSES, type FuseMetrics } from './metrics.js';

/** nydusd's file operations, in the order of its per-operation arrays (fop_hits, fop_errors, …). */
const FOPS = ['GETATTR', 'READLINK', 'OPEN', 'RELEASE', 'READ', 'STATFS', 'GETXATTR', 'LISTXATTR', 'OPENDIR', 'LOOKUP', 'READDIR', 'READDIRPLUS', 'ACCESS', 'FORGET', 'BATCH_FORGET'] as const;

/** GET /api/v1/metrics: the filesystem's I/O stats (nydusd's GlobalIoStats). */
export function fsMetrics(id: string, fuse: FuseMetrics): Record<string, unknown> {
  const byOp = new Map(fuse.ops.map((o) => [o.op, o]));
  const per = (f: (o: FuseMetrics['ops'][number]) => number): number[] => FOPS.map((op) => {
    const o = byOp.get(op);
    return o ? Math.round(f(o)) : 0;
  });
  return {
    files_account_enabled: false,
    access_pattern_enabled: true,
    record_latest_read_files_enabled: false,
    measure_latency: true,
    id,
    data_read: fuse.readBytes,
    block_count_read: fuse.readSizes,
    fop_hits: per((o) => o.count - o.errors),
    fop_errors: per((o) => o.errors),
    fop_cumulative_latency_total: per((o) => o.seconds * 1e6),
    read_latency_dist: fuse.readLatencies,
    // the kernel keeps files open here (OPEN answered once with "no need")
    nr_opens: 0,
    nr_max_opens: 0,
    last_fop_tp: Math.floor(fuse.lastRequest),
  };
}

/** Range requests by nydusd's size class and latency range, as its backend metrics count them. */
export class RequestLatencies {
  readonly dist: number[][] = Array.from({ length: SIZE_CLASSES }, () => new Array<number>(LATENCY_RANGES).fill(0));
  micros = 0;

  /** `sizeClass` and `latencyRange` are metrics.ts's (the same classes as the filesystem's). */
  add(sizeClass: number, latencyRange: number, micros: number): void {
    this.dist[sizeClass]![latencyRange]!++;
    this.micros += micros;
  }
}

export interface BackendCounters {
  requests: number;
  errors: number;
  bytes: number;
}

/** GET /api/v1/metrics/backend: nydusd's BackendMetrics, beside whatever else the daemon reports. */
export function backendMetrics(type: string, c: BackendCounters, latencies: RequestLatencies): Record<string, unknown> {
  return {
    backend_type: type,
    read_count: c.requests,
    read_errors: c.errors,
    read_amount_total: c.bytes,
    read_cumulative_latency_total: Math.round(latencies.micros),
    read_latency_dist: latencies.dist,
  };
}

export interface CacheCounters {
  id: string;
  dir: string;
  files: string[];
  chunkHits: number;
  chunkMisses: number;
  /** Chunks the cache holds. */
  entries: number;
  prefetch: { bytes: number; requests: number; workers: number; millis: number; beganSecs: number; endedSecs: number };
}

/** GET /api/v1/metrics/blobcache: nydusd's BlobcacheMetrics. */
export function blobcacheMetrics(c: CacheCounters): Record<string, unknown> {
  return {
    id: c.id,
    underlying_files: c.files,
    store_path: c.dir,
    partial_hits: 0,
    whole_hits: c.chunkHits,
    total: c.chunkHits + c.chunkMisses,
    entries_count: c.entries,
    prefetch_data_amount: c.prefetch.bytes,
    prefetch_requests_count: c.prefetch.requests,
    prefetch_workers: c.prefetch.workers,
    prefetch_cumulative_time_millis: Math.round(c.prefetch.millis),
    prefetch_begin_time_secs: Math.floor(c.prefetch.beganSecs),
    prefetch_end_time_secs: Math.floor(c.prefetch.endedSecs),
    buffered_backend_size: 0,
  };
}

/** GET /api/v1/metrics/inflight: the reads waiting on the backend now (nydusd's hung-I/O list). */
export function inflightMetrics(waiting: readonly { inode: number; unique: number; sinceMs: number }[]): { values: Record<string, number>[] } {
  return { values: waiting.map((w) => ({ inode: w.inode, opcode: 15, unique: w.unique, timestamp_secs: Math.floor(w.sinceMs / 1000) })) };
}

/** GET /api/v1/metrics/pattern?id=: per file read, nydusd's access pattern (reads, first read in seconds since the epoch). */
export function accessPatterns(trace: AccessTrace): { file_path: string; nr_read: number; first_access_time: number }[] {
  const started = Date.parse(trace.started);
  const byFile = new Map<number, { file_path: string; nr_read: number; first_access_time: number }>();
  for (const r of trace.reads) {
    const seen = byFile.get(r.file);
    if (seen) seen.nr_read++;
    else byFile.set(r.file, { file_path: trace.files[r.file]!.path, nr_read: 1, first_access_time: Math.floor((started + r.t) / 1000) });
  }
  return [...byFile.values()];
}

/** The build-version object nydusd's daemon info carries. */
export function buildInfo(version: string): Record<string, string> {
  return { package_ver: version, git_commit: '', build_time: '', profile: 'release', rustc: '' };
}
