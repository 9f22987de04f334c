// Daemon metrics. Each FUSE worker counts into its own region of a SharedArrayBuffer (it is the only
// writer, so no locks; the main thread only reads), which keeps counting off the request path's
// critical section: a few float stores per request. The main thread sums the workers, adds what it
// knows itself (backend traffic, prefetch, waiting reads) and renders Prometheus text.
import type { ChunkCounters } from '../blobcache/sync-chunks.js';
import { opName } from './fuse/protocol.js';

/** Opcodes are counted in slots 0..OP_SLOTS-1 (higher ones share the last slot). */
const OP_SLOTS = 64;
/** Upper bounds (seconds) of the request latency histogram buckets; +Inf is the count. */
export const LATENCY_BUCKETS = [0.0001, 0.001, 0.01, 0.1, 1, 10] as const;
const PER_OP = 3 + LATENCY_BUCKETS.length;
const COUNT = 0;
const ERRORS = 1;
const SUM = 2;
const GLOBAL = OP_SLOTS * PER_OP;
const READ_BYTES = GLOBAL;
const CHUNK_HITS = GLOBAL + 1;
const CHUNK_MISSES = GLOBAL + 2;
const READ_ERRORS = GLOBAL + 3;
/** Seconds since the epoch of the last request served. */
const LAST_REQUEST = GLOBAL + 4;
/** nydusd's eight read-size classes and eight read-latency ranges (its metrics JSON reports them). */
export const SIZE_CLASSES = 8;
export const LATENCY_RANGES = 8;
const READ_SIZES = GLOBAL + 5;
const READ_LATENCIES = READ_SIZES + SIZE_CLASSES;
/** Float64 slots of one worker's region. */
export const WORKER_METRIC_SLOTS = READ_LATENCIES + LATENCY_RANGES;

/** nydusd's read-size class of a read of `bytes`: under 1 KiB, 4 KiB, 16 KiB, 64 KiB, or more. */
export function sizeClass(bytes: number): number {
  const bound = [1 << 10, 1 << 12, 1 << 14, 1 << 16].findIndex((b) => bytes < b);
  return bound < 0 ? 4 : bound;
}

/** nydusd's latency range of `micros`: ≤ 1 ms, 20 ms, 50 ms, 100 ms, 500 ms, 1 s, 2 s, or more. */
export function latencyRange(micros: number): number {
  const bound = [1_000, 20_000, 50_000, 100_000, 500_000, 1_000_000, 2_000_000].findIndex((b) => micros <= b);
  return bound < 0 ? 7 : bound;
}

const READ_OPCODE = 15;

export const newWorkerMetricsBuffer = (): SharedArrayBuffer => new SharedArrayBuffer(WORKER_METRIC_SLOTS * Float64Array.BYTES_PER_ELEMENT);

/** What a chunk source reports: a chunk it had (LRU or cache file) or had to ask for. */

/** A worker's writer over its region. */
export class WorkerMetrics implements ChunkCounters {
  private readonly v: Float64Array;

  constructor(buffer: SharedArrayBuffer) {
    this.v = new Float64Array(buffer);
  }

  request(opcode: number, seconds: number, failed: boolean): void {
    const at = Math.min(opcode, OP_SLOTS - 1) * PER_OP;
    const v = this.v;
    v[at + COUNT]!++;
    if (failed) v[at + ERRORS]!++;
    v[at + SUM]! += seconds;
    for (let b = 0; b < LATENCY_BUCKETS.length; b++) if (seconds <= LATENCY_BUCKETS[b]!) v[at + 3 + b]!++;
    if (opcode === READ_OPCODE) v[READ_LATENCIES + latencyRange(seconds * 1e6)]!++;
    v[LAST_REQUEST] = Date.now() / 1000;
  }

  readBytes(n: number): void {
    this.v[READ_BYTES]! += n;
    this.v[READ_SIZES + sizeClass(n)]!++;
  }

  readError(): void {
    this.v[READ_ERRORS]!++;
  }

  chunkHit(): void {
    this.v[CHUNK_HITS]!++;
  }

  chunkMiss(): void {
    this.v[CHUNK_MISSES]!++;
  }
}

export interface OpMetrics {
  op: string;
  count: number;
  errors: number;
  seconds: number;
  /** Cumulative counts per LATENCY_BUCKETS bound. */
  buckets: number[];
}

export interface FuseMetrics {
  ops: OpMetrics[];
  readBytes: number;
  readErrors: number;
  chunkHits: number;
  chunkMisses: number;
  /** Reads by nydusd's size classes, and by its latency ranges. */
  readSizes: number[];
  readLatencies: number[];
  /** Seconds since the epoch of the last request (0: none yet). */
  lastRequest: number;
}

/** The workers' regions summed. */
export function sumWorkerMetrics(buffers: readonly SharedArrayBuffer[]): FuseMetrics {
  const total = new Float64Array(WORKER_METRIC_SLOTS);
  let lastRequest = 0;
  for (const b of buffers) {
    const v = new Float64Array(b);
    for (let i = 0; i < total.length; i++) total[i]! += v[i]!;
    lastRequest = Math.max(lastRequest, v[LAST_REQUEST]!);
  }
  const ops: OpMetrics[] = [];
  for (let slot = 0; slot < OP_SLOTS; slot++) {
    const at = slot * PER_OP;
    if (total[at + COUNT] === 0) continue;
    ops.push({ op: opName(slot), count: total[at + COUNT]!, errors: total[at + ERRORS]!, seconds: total[at + SUM]!, buckets: [...total.subarray(at + 3, at + PER_OP)] });
  }
  return {
    ops, readBytes: total[READ_BYTES]!, readErrors: total[READ_ERRORS]!, chunkHits: total[CHUNK_HITS]!, chunkMisses: total[CHUNK_MISSES]!,
    readSizes: [...total.subarray(READ_SIZES, READ_SIZES + SIZE_CLASSES)], readLatencies: [...total.subarray(READ_LATENCIES, READ_LATENCIES + LATENCY_RANGES)], lastRequest,
  };
}

/** A metric family: name, type, help, samples (labels → value). */
export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  help: string;
  samples: { labels?: Record<string, string>; suffix?: string; value: number }[];
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** Prometheus text exposition format 0.0.4. */
export function renderPrometheus(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = s.labels ? Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',') : '';
      lines.push(`${f.name}${s.suffix ?? ''}${labels ? `{${labels}}` : ''} ${Number.isFinite(s.value) ? s.value : 0}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** The FUSE families: per-op counts, errors and a latency histogram; bytes served; chunk hits/misses. */
export function fuseFamilies(m: FuseMetrics): Family[] {
  const latency: Family['samples'] = [];
  for (const o of m.ops) {
    LATENCY_BUCKETS.forEach((le, i) => latency.push({ suffix: '_bucket', labels: { op: o.op, le: String(le) }, value: o.buckets[i]! }));
    latency.push({ suffix: '_bucket', labels: { op: o.op, le: '+Inf' }, value: o.count });
    latency.push({ suffix: '_sum', labels: { op: o.op }, value: o.seconds });
    latency.push({ suffix: '_count', labels: { op: o.op }, value: o.count });
  }
  return [
    { name: 'nydusify_fuse_requests_total', type: 'counter', help: 'FUSE requests served, by operation.', samples: m.ops.map((o) => ({ labels: { op: o.op }, value: o.count })) },
    { name: 'nydusify_fuse_errors_total', type: 'counter', help: 'FUSE requests answered with an error, by operation.', samples: m.ops.map((o) => ({ labels: { op: o.op }, value: o.errors })) },
    { name: 'nydusify_fuse_request_seconds', type: 'histogram', help: 'Time to serve a FUSE request, by operation.', samples: latency },
    { name: 'nydusify_fuse_read_bytes_total', type: 'counter', help: 'File bytes returned to READ requests.', samples: [{ value: m.readBytes }] },
    { name: 'nydusify_fuse_read_errors_total', type: 'counter', help: 'READ requests failed with EIO (unverifiable or unfetchable chunks).', samples: [{ value: m.readErrors }] },
    { name: 'nydusify_cache_chunk_hits_total', type: 'counter', help: 'Chunks read that were already in the blob cache.', samples: [{ value: m.chunkHits }] },
    { name: 'nydusify_cache_chunk_misses_total', type: 'counter', help: 'Chunks read that had to be fetched from the backend.', samples: [{ value: m.chunkMisses }] },
  ];
}
