// The daemon: one FUSE mount and the images it serves. Dedicated: the first (and only) image mounted
// at "/" becomes the mount's root, and unmounting it ends the daemon. Shared: the mount's root is a
// directory of images, mounted and unmounted live as MOUNTPOINT/NAME. Every lazily served image
// reads through the daemon's one blob cache, whose fetcher reads each blob from any mounted image's
// backends (a blob shared by two images is fetched and stored once). Each image's access trace (what
// it read and fetched) is kept while it is mounted, and written to its spec's `trace` file when it
// is unmounted or the daemon stops.
import { readFileSync } from 'node:fs';
import { BlobCache } from '../blobcache/cache.js';
import { BlobSources } from '../blobcache/blob-sources.js';
import { ChunkFetcher, type FetchedChunk } from '../blobcache/fetcher.js';
import { Readahead } from '../blobcache/readahead.js';
import type { ChunkRef } from '../rafs/tree.js';
import { retryCount } from '../registry/retry.js';
import type { AccessTrace } from '../trace/access-trace.js';
import { join } from 'node:path';
import { log } from '../util/log.js';
import { CHUNK_DATA_SUFFIX, CHUNK_MAP_SUFFIX } from '../blobcache/chunk-map.js';
import { backendMetrics, blobcacheMetrics, buildInfo, fsMetrics, inflightMetrics, RequestLatencies } from './nydusd-metrics.js';
import { checkImageName, type DaemonConfig, type MountSpec, parseMountSpec } from './config.js';
import { DEFAULT_READ_AHEAD_KB, FuseSession } from './fuse/session.js';
import type { TraceReadSink } from './fuse/trace-ring.js';
import type { WorkerImage } from './fuse/worker.js';
import type { FilePlace } from './trace-recorder.js';
import { ImageMount, type ImageMountInfo, type MountContext } from './image-mount.js';
import type { PrefetchStats } from './prefetch.js';
import { fuseFamilies, type Family, latencyRange, renderPrometheus, sizeClass, sumWorkerMetrics } from './metrics.js';
import { type DaemonMode, MAX_SLOT } from './router.js';

/** A read that has waited this long for the backend counts as hung in the metrics. */
const HUNG_AFTER_MS = 10_000;

export type DaemonState = 'INIT' | 'RUNNING' | 'STOPPING' | 'STOPPED';

export interface DaemonOptions {
  id: string;
  mode: DaemonMode;
  /** The FUSE mount; without one the daemon serves its images only through what is attached to it (NBD). */
  mountpoint?: string;
  /** The FUSE mount shows each image as its flat block image, one file for the kernel's EROFS. */
  block?: boolean;
  config: DaemonConfig;
  /** Stop on these signals (default SIGINT and SIGTERM). */
  signals?: NodeJS.Signals[];
  /** Failover: serve this already mounted /dev/fuse descriptor (with `takeover`, a dead daemon's). */
  fuseFd?: number;
  takeover?: boolean;
}

export interface DaemonInfo {
  id: string;
  /** nydusd's build-version object (package_ver is ours). */
  version: Record<string, string>;
  pid: number;
  state: DaemonState;
  mode: DaemonMode;
  block: boolean;
  mountpoint?: string;
  cacheDir: string;
  startedAt: string;
  mounts: ImageMountInfo[];
}

export class MountConflictError extends Error {}
export class MountNotFoundError extends Error {}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** What a daemon hands its successor with its FUSE connection (sendfd / takeover through a supervisor). */
export interface HandoverState {
  format: typeof HANDOVER_FORMAT;
  mode: DaemonMode;
  mounts: { name: string; spec: MountSpec }[];
}

const HANDOVER_FORMAT = 'nydusify-ts handover 1';

/** A successor's reading of a handover state: checked, since a supervisor hands it back as bytes. */
export function parseHandoverState(bytes: Buffer): HandoverState {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`handover state: not JSON: ${(err as Error).message}`);
  }
  const o = v as Partial<HandoverState>;
  if (o?.format !== HANDOVER_FORMAT) throw new Error(`handover state: not a ${HANDOVER_FORMAT} state`);
  if (o.mode !== 'dedicated' && o.mode !== 'shared') throw new Error('handover state: mode must be dedicated or shared');
  if (!Array.isArray(o.mounts)) throw new Error('handover state: mounts must be a list');
  return { format: HANDOVER_FORMAT, mode: o.mode, mounts: o.mounts.map((m, i) => {
    if (typeof m?.name !== 'string') throw new Error(`handover state: mounts[${i}].name must be a string`);
    return { name: m.name, spec: parseMountSpec(m.spec) };
  }) };
}

export class Daemon {
  state: DaemonState = 'INIT';
  private session: FuseSession | undefined;
  private readonly mounts = new Map<string, ImageMount>();
  /** Every open image mount by slot (those being mounted too): see MountContext.traced. */
  private readonly traced = new Map<number, ImageMount>();
  /** Names being mounted right now (a second request for one is a conflict). */
  private readonly pending = new Set<string>();
  private cacheOpened: Promise<BlobCache> | undefined;
  private readonly sources: BlobSources;
  private readonly tables = new Map<string, readonly ChunkRef[]>();
  private fetcher: ChunkFetcher | undefined;
  /** Range requests by size and latency, for nydusd's backend metrics. */
  private readonly requestLatencies = new RequestLatencies();
  private nextSlot = 1;
  private demandWaiting = 0;
  private readonly readahead: Readahead;
  private readonly startedAt = new Date();
  private readonly metricSources: (() => Family[])[] = [];
  private ended!: () => void;
  /** Resolves once the daemon has stopped serving (unmounted, signalled or stopped). */
  readonly done = new Promise<void>((r) => (this.ended = r));

  constructor(readonly opts: DaemonOptions) {
    const max = opts.config.fetch.readahead;
    this.readahead = new Readahead({ initial: Math.min(1 << 20, max), max });
    const { mirrorFailureLimit, mirrorRecheckMs } = opts.config.registry;
    this.sources = new BlobSources({ ...(mirrorFailureLimit === undefined ? {} : { failureLimit: mirrorFailureLimit }), ...(mirrorRecheckMs === undefined ? {} : { recheckMs: mirrorRecheckMs }) });
  }

  private get ctx(): MountContext {
    return {
      config: this.opts.config,
      cache: () => this.cache(),
      sources: this.sources,
      tables: this.tables,
      demand: () => this.demandWaiting,
      readahead: this.readahead,
      block: this.opts.block ?? false,
      traced: this.traced,
      storePages: (nodeid, offset, data) => this.session?.storePages(nodeid, offset, data),
    };
  }

  /** Where the workers' reads go: the trace of the image they read. */
  private readonly traceReads: TraceReadSink = {
    read: (slot, at, nid, offset, length, miss) => this.traced.get(slot)?.trace.read(at, nid, offset, length, miss),
    // the lost records' images are unknown: every trace says it is not whole
    dropped: () => {
      for (const m of this.traced.values()) m.trace.lost();
    },
  };

  private chunkFetched(chunk: FetchedChunk): void {
    for (const m of this.traced.values()) m.chunkFetched(chunk);
  }

  /** A shared daemon mounts its (empty) root now; a dedicated one waits for its image. */
  async start(): Promise<void> {
    if (this.opts.mode === 'shared' && this.opts.mountpoint !== undefined) await this.startSession([]);
    this.state = 'RUNNING';
    for (const s of this.opts.signals ?? ['SIGINT', 'SIGTERM']) process.once(s, () => void this.stop());
  }

  private cache(): Promise<BlobCache> {
    const { cacheDir, fallbackCacheDir } = this.opts.config;
    this.fetcher ??= new ChunkFetcher(this.sources, {
      chunkTable: (blob) => this.tables.get(blob.blobId),
      amplify: this.opts.config.fetch.amplify,
      // once every reader of a request has given up, so does the request
      requestTimeoutMs: Math.round(this.opts.config.fetchTimeout * 1000),
      onChunk: (chunk) => this.chunkFetched(chunk),
      onRequest: (bytes, micros) => this.requestLatencies.add(sizeClass(bytes), latencyRange(micros), micros),
    });
    this.cacheOpened ??= BlobCache.open(cacheDir, { fetcher: this.fetcher, fallbackDir: fallbackCacheDir });
    return this.cacheOpened;
  }

  /** A shared daemon's session, or a dedicated one's with its image: started and served from now on. */
  private async startSession(images: ImageMount[]): Promise<void> {
    const session = await this.openSession(images.map((m) => m.worker), this.readaheadFor(images));
    if (session) this.serve(session);
  }

  /** Mounts and starts the workers (nothing happens when it ends until `serve`). */
  private async openSession(images: WorkerImage[], readaheadKb: number): Promise<FuseSession | undefined> {
    if (this.opts.mountpoint === undefined) return undefined;
    const session = new FuseSession({
      mountPath: this.opts.mountpoint,
      mode: this.opts.mode,
      images,
      threads: this.opts.config.threads,
      timeoutMs: Math.round(this.opts.config.fetchTimeout * 1000),
      fetch: (slot, blobIndex, ciIndex, file) => this.fetch(slot, blobIndex, ciIndex, file),
      reads: this.traceReads,
      entered: (slot, nid, nodeid) => this.traced.get(slot)?.entered(nid, nodeid),
      executed: (slot, nid) => this.traced.get(slot)?.executed(nid),
      signals: [],
      fd: this.opts.fuseFd,
      takeover: this.opts.takeover,
      readaheadKb,
    });
    await session.start();
    return session;
  }

  /** The kernel's readahead for a mount of `images`: none for a dedicated mount of an optimized image (readahead would fetch cold chunks). */
  private readaheadFor(images: ImageMount[]): number {
    return this.opts.config.kernelReadaheadKb ?? (this.opts.mode === 'dedicated' && images.some((m) => m.hasHotRegion()) ? 0 : DEFAULT_READ_AHEAD_KB);
  }

  /** The daemon's session from now on; when it ends, so does the daemon. */
  private serve(session: FuseSession): void {
    this.session = session;
    session.wait().then(
      () => this.stop(),
      (err: unknown) => {
        log.error('FUSE session failed', { error: err });
        process.exitCode = 1;
        return this.stop();
      },
    );
  }

  /** A session opened before its dedicated image: the image's readahead, then the image, then served. */
  private serveImage(session: FuseSession | undefined, mount: ImageMount): void {
    if (!session) return;
    session.setReadaheadKb(this.readaheadFor([mount]));
    session.addImage(mount.worker);
    this.serve(session);
  }

  private async fetch(slot: number, blobIndex: number, ciIndex: number, file?: FilePlace): Promise<Buffer | undefined> {
    const mount = [...this.mounts.values()].find((m) => m.slot === slot);
    if (!mount) throw new Error(`image slot ${slot} is not mounted`);
    this.demandWaiting++;
    try {
      return await mount.fetch(blobIndex, ciIndex, file);
    } finally {
      this.demandWaiting--;
    }
  }

  /** Mounts `spec` as `name` ("/" for a dedicated daemon, a single path component when shared). */
  async mount(name: string, given: MountSpec): Promise<ImageMountInfo> {
    const spec = this.withDefaults(given);
    if (this.state !== 'RUNNING') throw new MountConflictError(`the daemon is ${this.state}`);
    if (this.opts.mode === 'dedicated') {
      if (name !== '/') throw new MountConflictError('a dedicated daemon mounts its one image at "/"');
      if (this.mounts.size > 0 || this.pending.size > 0) throw new MountConflictError('a dedicated daemon already serves an image');
    } else checkImageName(name);
    if (this.mounts.has(name) || this.pending.has(name)) throw new MountConflictError(`"${name}" is already mounted`);
    if (this.nextSlot > MAX_SLOT) throw new MountConflictError('no image slots left: restart the daemon');
    this.pending.add(name);
    // a fresh dedicated mount: mount(2), INIT and the workers' start overlap the image's opening
    const early = this.opts.mode === 'dedicated' && !this.opts.takeover ? this.openSession([], DEFAULT_READ_AHEAD_KB) : undefined;
    early?.catch(() => undefined);
    try {
      let mount: ImageMount;
      try {
        mount = await ImageMount.open(name, this.opts.mode === 'dedicated' ? 0 : this.nextSlot++, spec, this.ctx);
      } catch (err) {
        await closeUnserved(early);
        throw err;
      }
      // the hot region needs no FUSE: it streams while the workers start
      if (this.opts.config.fetch.hotRegion) mount.startHotRegion();
      mount.startRuntimeFiles();
      try {
        if (early) this.serveImage(await early, mount);
        else if (this.opts.mode === 'dedicated') await this.startSession([mount]);
        else this.session?.addImage(mount.worker);
        mount.trace.served();
      } catch (err) {
        await closeUnserved(early);
        await mount.close();
        throw err;
      }
      this.mounts.set(name, mount);
      if (spec.prefetch) mount.startPrefetch();
      log.info('image mounted', { name, target: spec.target, bootstrap: mount.worker.bootstrap, mountpoint: this.opts.mountpoint });
      return mount.info();
    } finally {
      this.pending.delete(name);
    }
  }

  /** A mount request with what the config says of mounts that do not say: prefetch, a local bootstrap's blob directory. */
  private withDefaults(spec: MountSpec): MountSpec {
    const { prefetch, blobDir } = this.opts.config;
    return {
      ...spec,
      ...(spec.prefetch === undefined && prefetch.enable ? { prefetch: true } : {}),
      ...(spec.bootstrap !== undefined && spec.blobDir === undefined && blobDir !== undefined ? { blobDir } : {}),
    };
  }

  async umount(name: string): Promise<void> {
    const mount = this.mounts.get(name);
    if (!mount) throw new MountNotFoundError(`"${name}" is not mounted`);
    if (this.opts.mode === 'dedicated') {
      await this.stop();
      return;
    }
    this.mounts.delete(name);
    this.session?.removeImage(mount.slot);
    this.session?.drainReads();
    await this.saveTrace(mount);
    await mount.close();
    log.info('image unmounted', { name });
  }

  /** The access trace so far of the image mounted as `name`. */
  async accessTrace(name: string): Promise<AccessTrace> {
    const mount = this.mounts.get(name);
    if (!mount) throw new MountNotFoundError(`"${name}" is not mounted`);
    this.session?.drainReads();
    return mount.trace.take();
  }

  /** Writes the mount's trace file, if it has one; a failure is logged, the unmount goes on. */
  private async saveTrace(mount: ImageMount): Promise<void> {
    try {
      await mount.saveTrace();
      if (mount.spec.trace !== undefined) log.info('access trace written', { name: mount.name, file: mount.spec.trace });
    } catch (err) {
      log.error('cannot write the access trace', { name: mount.name, file: mount.spec.trace, error: err });
    }
  }

  /**
   * What a successor needs to serve the same FUSE connection (nydusd's sendfd to a supervisor):
   * the connection's descriptor, and the images to mount again with it.
   */
  handoverState(): { fd: number; state: HandoverState } {
    const fd = this.session?.fuseFd ?? -1;
    if (this.state !== 'RUNNING' || fd < 0) throw new Error('the daemon serves no FUSE connection to hand over');
    return { fd, state: { format: HANDOVER_FORMAT, mode: this.opts.mode, mounts: [...this.mounts.values()].map((m) => ({ name: m.name, spec: m.spec })) } };
  }

  info(): DaemonInfo {
    return {
      id: this.opts.id,
      version: buildInfo(VERSION),
      pid: process.pid,
      state: this.state,
      mode: this.opts.mode,
      block: this.opts.block ?? false,
      ...(this.opts.mountpoint === undefined ? {} : { mountpoint: this.opts.mountpoint }),
      cacheDir: this.opts.config.cacheDir,
      startedAt: this.startedAt.toISOString(),
      mounts: [...this.mounts.values()].map((m) => m.info()),
    };
  }

  /** The image mounted as `name`, if any. */
  imageMount(name: string): ImageMount | undefined {
    return this.mounts.get(name);
  }

  /** The names of the images mounted now. */
  mountNames(): string[] {
    return [...this.mounts.keys()];
  }

  /** Adds metric families of something serving this daemon's images (the NBD server) to /metrics. */
  addMetrics(families: () => Family[]): void {
    this.metricSources.push(families);
  }

  /** The backend's counters (the fetcher's, plus mirror failovers). */
  backendStats(): Record<string, number> {
    const f = this.fetcher?.stats ?? { requests: 0, bytes: 0, chunks: 0, amplifiedChunks: 0, corruptChunks: 0, errors: 0, timeouts: 0, refetches: 0 };
    return { ...f, failovers: this.sources.stats.failovers, registryRetries: retryCount(), inflightChunks: this.fetcher?.inflightCount ?? 0 };
  }

  async cacheStats(): Promise<{ dir: string; totalBytes: number; blobs: Awaited<ReturnType<BlobCache['list']>> }> {
    const cache = await this.cache();
    const blobs = await cache.list();
    return { dir: cache.dir, totalBytes: blobs.reduce((s, b) => s + b.diskBytes, 0), blobs };
  }

  /** nydusd's filesystem I/O stats (GET /api/v1/metrics), for the daemon's images together. */
  nydusdFsMetrics(id: string): Record<string, unknown> {
    const fuse = this.session?.fuseMetrics() ?? sumWorkerMetrics([]);
    return fsMetrics(id, fuse);
  }

  /** nydusd's backend metrics with ours beside them (GET /api/v1/metrics/backend). */
  nydusdBackendMetrics(): Record<string, unknown> {
    const b = this.backendStats();
    const mounts = [...this.mounts.values()];
    const type = mounts.length > 0 && mounts.every((m) => m.spec.target === undefined) ? 'localfs' : 'registry';
    return { ...b, ...backendMetrics(type, { requests: b.requests!, errors: b.errors!, bytes: b.bytes! }, this.requestLatencies) };
  }

  /** nydusd's blob cache metrics with ours beside them (GET /api/v1/metrics/blobcache). */
  async nydusdBlobcacheMetrics(): Promise<Record<string, unknown>> {
    const stats = await this.cacheStats();
    const fuse = this.session?.fuseMetrics() ?? sumWorkerMetrics([]);
    const prefetches = [...this.mounts.values()].map((m) => m.info().prefetch).filter((p): p is PrefetchStats => p !== undefined);
    const prefetch = {
      bytes: prefetches.reduce((s, p) => s + p.bytes, 0), requests: prefetches.reduce((s, p) => s + p.chunks, 0), workers: prefetches.length,
      millis: 0, beganSecs: 0, endedSecs: 0,
    };
    const files = stats.blobs.flatMap((b) => [join(stats.dir, `${b.blobId}${CHUNK_DATA_SUFFIX}`), join(stats.dir, `${b.blobId}${CHUNK_MAP_SUFFIX}`)]);
    const entries = stats.blobs.reduce((s, b) => s + b.readyChunks, 0);
    return { ...stats, ...blobcacheMetrics({ id: this.opts.id, dir: stats.dir, files, chunkHits: fuse.chunkHits, chunkMisses: fuse.chunkMisses, entries, prefetch }) };
  }

  /** The reads waiting on the backend now, in nydusd's hung-I/O shape (GET /api/v1/metrics/inflight). */
  nydusdInflight(): ReturnType<typeof inflightMetrics> {
    return inflightMetrics(this.session?.waitingFetches() ?? []);
  }

  async metrics(): Promise<string> {
    const b = this.backendStats();
    const waiting = this.session?.waitingReads() ?? { count: 0, oldestMs: 0 };
    const cache = this.cacheOpened ? await this.cacheStats() : undefined;
    const counter = (name: string, help: string, value: number): Family => ({ name, type: 'counter', help, samples: [{ value }] });
    const gauge = (name: string, help: string, value: number): Family => ({ name, type: 'gauge', help, samples: [{ value }] });
    const mounts = [...this.mounts.values()].map((m) => m.info());
    const prefetched = mounts.filter((m) => m.prefetch);
    return renderPrometheus([
      ...(this.session ? fuseFamilies(this.session.fuseMetrics()) : []),
      ...this.metricSources.flatMap((f) => f()),
      counter('nydusify_backend_requests_total', 'Range requests made to the backends.', b.requests!),
      counter('nydusify_backend_read_bytes_total', 'Bytes asked of the backends.', b.bytes!),
      counter('nydusify_backend_errors_total', 'Range requests that failed after retries and failover.', b.errors!),
      counter('nydusify_backend_failovers_total', 'Requests that failed on one backend and went to the next (mirrors).', b.failovers!),
      counter('nydusify_backend_chunks_total', 'Chunks fetched and verified.', b.chunks!),
      counter('nydusify_backend_amplified_chunks_total', 'Chunks fetched only because a request was grown toward 1 MiB, or because they lie inside a requested range (members sharing a gzip member).', b.amplifiedChunks!),
      counter('nydusify_backend_corrupt_chunks_total', 'Chunks that failed verification (never served).', b.corruptChunks!),
      counter('nydusify_backend_refetched_chunks_total', 'Chunks asked for again after failing verification.', b.refetches!),
      counter('nydusify_backend_timeouts_total', 'Range requests given up after the fetch timeout.', b.timeouts!),
      counter('nydusify_registry_retries_total', 'Registry requests tried again after a 5xx, 429, broken connection or cut-short body.', b.registryRetries!),
      gauge('nydusify_reads_waiting', 'Reads waiting for the backend now.', waiting.count),
      gauge('nydusify_reads_hung', `Reads waiting for the backend for more than ${HUNG_AFTER_MS / 1000} s.`, waiting.oldestMs > HUNG_AFTER_MS ? waiting.count : 0),
      gauge('nydusify_read_wait_oldest_seconds', 'How long the oldest waiting read has waited.', waiting.oldestMs / 1000),
      gauge('nydusify_mounts', 'Images served.', mounts.length),
      { name: 'nydusify_prefetch_chunks_total', type: 'counter', help: 'Chunks fetched by prefetch, by mount.', samples: prefetched.map((m) => ({ labels: { mountpoint: m.mountpoint }, value: m.prefetch!.chunks })) },
      { name: 'nydusify_prefetch_done', type: 'gauge', help: '1 once a mount\'s prefetch has finished.', samples: prefetched.map((m) => ({ labels: { mountpoint: m.mountpoint }, value: m.prefetch!.state === 'done' ? 1 : 0 })) },
      ...(cache ? [gauge('nydusify_cache_bytes', 'Bytes the blob cache uses on disk.', cache.totalBytes), gauge('nydusify_cache_blobs', 'Blobs in the blob cache.', cache.blobs.length)] : []),
      gauge('process_resident_memory_bytes', 'Resident memory of the daemon process.', process.memoryUsage.rss()),
    ]);
  }

  /** Unmounts everything and stops serving (idempotent). */
  async stop(): Promise<void> {
    if (this.state === 'STOPPING' || this.state === 'STOPPED') return this.done;
    this.state = 'STOPPING';
    try {
      await this.session?.unmount();
      await this.session?.wait().catch(() => undefined);
      for (const m of this.mounts.values()) {
        await this.saveTrace(m);
        await m.close().catch((err: unknown) => log.warn('closing a mount failed', { name: m.name, error: err }));
      }
      this.mounts.clear();
      await (await this.cacheOpened?.catch(() => undefined))?.close();
    } finally {
      this.state = 'STOPPED';
      log.info('daemon stopped', { id: this.opts.id, backend: this.backendStats() });
      this.ended();
    }
    return this.done;
  }
}

/** Unmounts a session that never served (its image could not be opened) and waits for its workers. */
async function closeUnserved(opened: Promise<FuseSession | undefined> | undefined): Promise<void> {
  const session = await opened?.catch(() => undefined);
  if (!session) return;
  await session.unmount();
  await session.wait().catch(() => undefined);
}
