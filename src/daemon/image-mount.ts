// One image served by the daemon, seen from the main thread: where its bootstrap is (the workers
// open it themselves), where its data comes from (a local blob directory, or the shared blob cache
// fed by the image's registry and mirrors), how to bring one of its chunks into the cache for a
// waiting worker, its prefetcher, and its access trace (what it read and fetched; written to the
// spec's `trace` file when it is unmounted).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BuiltBootstraps } from '../blobcache/built-bootstraps.js';
import { ChunkConflictError, type BlobCache } from '../blobcache/cache.js';
import { tableConflict } from '../blobcache/chunk-claim.js';
import type { BlobSources } from '../blobcache/blob-sources.js';
import { ChunkReader } from '../blobcache/chunk-reader.js';
import { blobChunkTables, type FetchedChunk } from '../blobcache/fetcher.js';
import { createSpillFiles } from '../blobcache/decoded-spill.js';
import { LocalDirBackend } from '../blobcache/local-backend.js';
import type { Readahead } from '../blobcache/readahead.js';
import { type ConnectedNydusImage, hotPacks, hotRegions } from '../image/remote.js';
import { storedBlobId } from '../rafs/span-blob.js';
import { framesOf, hotRegionOf, type PackFrame } from '../rafs/hot-pack.js';
import { HotPackStream } from './hot-pack-stream.js';
import { chunkKey } from '../rafs/chunk.js';
import { FlatImageMap, imageChunks } from '../rafs/flat-image.js';
import { RafsImage } from '../rafs/reader.js';
import { type BlobInfo, type ChunkRef, S_IFMT, S_IFREG } from '../rafs/tree.js';
import { type FetchKind, serializeAccessTrace } from '../trace/access-trace.js';
import { writeAtomically } from '../util/files.js';
import { log } from '../util/log.js';
import type { DaemonConfig, MountSpec } from './config.js';
import type { WorkerImage } from './fuse/worker.js';
import { HotPages, type StorePages } from './hot-pages.js';
import { allChunks, nidsOfPaths, Prefetcher, type PrefetchHooks, prefetchListChunks, type PrefetchStats } from './prefetch.js';
import { ProgramPrefetch } from './program-prefetch.js';
import { type FilePlace, TraceRecorder } from './trace-recorder.js';

/** What an image mount needs from the daemon: the one cache, the blob sources, the chunk tables. */
export interface MountContext {
  config: DaemonConfig;
  cache(): Promise<BlobCache>;
  sources: BlobSources;
  /** Every chunk of each blob, by blob id (the fetcher grows requests with them). */
  tables: Map<string, readonly ChunkRef[]>;
  /** On-demand fetches waiting now (prefetch waits for none). */
  demand(): number;
  readahead: Readahead;
  /** Workers serve each image as its flat block image, one file (flat-file-fs.ts), not as a tree. */
  block: boolean;
  /** The open image mounts by slot: each hears of the reads served from it and the chunks fetched for it. */
  traced: Map<number, ImageMount>;
  /** Puts file data into the kernel's page cache (see hot-pages.ts). */
  storePages: StorePages;
}

export interface ImageMountInfo {
  mountpoint: string;
  slot: number;
  target?: string;
  bootstrap: string;
  blobDir?: string;
  blobs: string[];
  blobBytes: number;
  prefetch?: PrefetchStats;
  /** The startup fetch of an optimized image's hot region. */
  hotRegion?: PrefetchStats;
  problems: string[];
}

/** Why a chunk the mount is waiting on was asked for, and for which file's read. */
interface Asked {
  kind: FetchKind;
  file?: FilePlace;
}

export class ImageMount {
  /** What the mount read and fetched (the trace so far: `trace.take()`). */
  readonly trace: TraceRecorder;
  /** Chunks asked of the cache and not yet had, by chunkKey: a fetch of one is recorded as what it was asked for. */
  private readonly asked = new Map<number, Asked>();
  private readonly blobIndexes: Map<string, number>;
  private prefetcher: Prefetcher | undefined;
  private hotRegion: Prefetcher | undefined;
  /** The hot pack being streamed (hot-pack-stream.ts), when the image has one. */
  private packStream: HotPackStream | undefined;
  /** Programs' starts fetched ahead (program-prefetch.ts), and those fetches still running. */
  private programs: ProgramPrefetch | undefined;
  private readonly execPrefetches = new Set<Prefetcher>();
  /** The hot region's pages, pushed into the page cache as they arrive. */
  private hotPages: HotPages | undefined;
  private flat: FlatImageMap | undefined;
  /** Closes a local image's spill files (the workers hold descriptors of their own). */
  private closeSpill: (() => void) | undefined;
  private localChunks: { reader: ChunkReader; backend: LocalDirBackend } | undefined;
  /** The bootstrap's copy next to the cache being written (a lazily served mount's). */
  private bootstrapKept: Promise<void> | undefined;

  private constructor(
    readonly name: string,
    readonly slot: number,
    readonly spec: MountSpec,
    readonly rafs: RafsImage,
    readonly worker: WorkerImage,
    private readonly lazy: { cache: BlobCache; remote: ConnectedNydusImage; refs: Map<number, ChunkRef>[]; tables: Map<string, ChunkRef[]> } | undefined,
    private readonly ctx: MountContext,
  ) {
    this.trace = new TraceRecorder({ image: spec.target ?? spec.bootstrap!, rafs, bootstrap: () => this.bootstrap() });
    this.blobIndexes = new Map(rafs.blobs.map((b, i) => [b.blobId, i]));
    ctx.traced.set(slot, this);
  }

  /** Opens (and for a registry image, connects) what `spec` names, without serving it yet. */
  static async open(name: string, slot: number, spec: MountSpec, ctx: MountContext): Promise<ImageMount> {
    const { registry } = ctx.config;
    // the daemon's registry settings, with the mount's own overrides
    const access = {
      ...registry, plainHttp: spec.plainHttp ?? registry.plainHttp, insecure: spec.insecure ?? registry.insecure, ...(spec.auth ? { auth: spec.auth } : {}),
      mirrors: [...(spec.mirrors ?? []), ...registry.mirrors],
    };
    const blobRepository = spec.blobRepository ?? ctx.config.blobRepository;
    if (spec.bootstrap !== undefined && spec.blobDir === undefined && blobRepository !== undefined) {
      // nydusd's way with a registry backend: the bootstrap here, its blobs in a repository, lazily
      const { connectBootstrap } = await import('../image/remote.js');
      return ImageMount.lazily(name, slot, spec, ctx, connectBootstrap(readFileSync(spec.bootstrap), blobRepository, access));
    }
    if (spec.bootstrap !== undefined) {
      // fail here, before anything is served, on a bootstrap the workers could not open
      const data = shared(readFileSync(spec.bootstrap));
      const rafs = RafsImage.open(Buffer.from(data));
      if (spec.blobDir === undefined && rafs.blobs.length > 0) throw new Error('the image has data blobs: give blobDir (--blob-dir)');
      // a local image's chunks a random reader comes back to are kept decoded (decoded-spill.ts)
      const spill = spec.blobDir === undefined ? undefined : createSpillFiles(ctx.config.cacheDir, rafs.blobs);
      const mount = new ImageMount(name, slot, spec, rafs, { slot, name, bootstrap: spec.bootstrap, data, blobDir: spec.blobDir, block: ctx.block, spill: spill?.spill }, undefined, ctx);
      mount.closeSpill = spill?.close;
      try {
        if (ctx.block) mount.flatMap(); // a bootstrap with no flat image (overlapping chunks) is refused here, not in the workers
      } catch (err) {
        await mount.close();
        throw err;
      }
      return mount;
    }
    // loaded when first needed: a daemon serving local images never pays for the registry client
    const { connectNydusImage } = await import('../image/remote.js');
    const cache = await ctx.cache();
    const remote = await connectNydusImage(spec.target!, access, spec.upToLayer, new BuiltBootstraps(cache.dir), ctx.config.fetch.hotRegion, spec.platform);
    return ImageMount.lazily(name, slot, spec, ctx, remote);
  }

  /** A mount served lazily through the cache from `remote`'s backends (closed if it cannot be made). */
  private static async lazily(name: string, slot: number, spec: MountSpec, ctx: MountContext, remote: ConnectedNydusImage): Promise<ImageMount> {
    let mount: ImageMount | undefined;
    try {
      const cache = await ctx.cache();
      // the main thread reads the image connectNydusImage opened; the workers get one shared copy
      const { bootstrap, rafs } = remote.image;
      const data = shared(bootstrap);
      for (const problem of remote.image.problems) log.warn('image problem', { target: spec.target, problem });
      // kept, content-addressed, next to the cache (for `cache` and for looking at): written beside
      // the mount rather than before it, as nothing reads it yet and the thread pool the write
      // queues on is busy then (an optimized image's hot region is being decoded: 50–60 ms)
      const path = join(cache.dir, `${createHash('sha256').update(bootstrap).digest('hex')}.boot`);
      const kept = keepBootstrapCopy(path, bootstrap);
      // every blob's cache files made (or checked) on the thread pool while the tables are read
      // here: the workers open them read-only. A made chunk map is synced, which can take as long
      const files = Promise.all(rafs.blobs.map(async (blob) => {
        await cache.forgetIfReplaced(blob);
        if (blob.chunkCount > 0) await cache.open(blob);
      }));
      files.catch(() => undefined); // awaited below, unless the tables fail first
      const tables = await blobChunkTables(rafs);
      const refs = rafs.blobs.map((blob) => new Map((tables.get(blob.blobId) ?? []).map((r): [number, ChunkRef] => [r.ciIndex, r])));
      mount = new ImageMount(name, slot, spec, rafs, { slot, name, bootstrap: path, data, cacheDir: cache.dir, block: ctx.block }, { cache, remote, refs, tables }, ctx);
      mount.bootstrapKept = kept;
      for (const [id, t] of tables) {
        // the blob is shared by content, the table is this image's word: one daemon serves one description
        const conflict = ctx.tables.has(id) ? tableConflict(ctx.tables.get(id)!, t) : undefined;
        if (conflict) throw new ChunkConflictError(id, 0, `${conflict} by an image already mounted: refusing this image`);
      }
      for (const [id, t] of tables) if (!ctx.tables.has(id)) ctx.tables.set(id, t);
      if (ctx.block) mount.flatMap();
      ctx.sources.add(mount, rafs.blobs.map(storedBlobId), remote.backends);
      await files;
      return mount;
    } catch (err) {
      if (mount) {
        ctx.traced.delete(slot);
        for (const blobId of ctx.sources.release(mount)) ctx.tables.delete(blobId);
      }
      await remote.close();
      throw err;
    }
  }

  /**
   * Brings chunk `ciIndex` of blob `blobIndex` into the cache (a worker reads it from there); when
   * the cache could not keep it (a full disk), its verified bytes, for the worker to take instead.
   */
  async fetch(blobIndex: number, ciIndex: number, file?: FilePlace): Promise<Buffer | undefined> {
    const blob = this.rafs.blobs[blobIndex];
    const ref = this.lazy?.refs[blobIndex]?.get(ciIndex);
    if (!this.lazy || !blob || !ref) throw new Error(`chunk ${ciIndex} of blob index ${blobIndex} is not in the lazily served image ${this.name}`);
    // while the hot region streams, misses read nothing ahead
    const table = this.hotRegion?.stats.state === 'running' ? undefined : this.lazy.cache.fetcher?.chunkTable(blob);
    const ahead = table ? this.ctx.readahead.onMiss(blob.blobId, ref, table) : [];
    // next turn: the fetcher batches per turn, and the miss must not wait for its readahead
    if (ahead.length > 0) setImmediate(() => void this.readAhead(blob, ahead));
    // a worker asks only for what its view of the cache files lacks: make sure ours is the same
    await this.lazy.cache.forgetIfReplaced(blob);
    // the worker takes the verified bytes at once; the cache stores them meanwhile
    return this.fetchRef(blob, ref, 'demand', true, file);
  }

  /** File `nid` is being started (a worker saw execve's read of it): its start is fetched ahead. */
  executed(nid: number): void {
    this.programPrefetch()?.started(nid);
  }

  /** Background fetches through the cache, recorded as prefetch (a lazily served mount's). */
  private prefetchHooks(): PrefetchHooks {
    const { cache } = this.lazy!;
    const blobOf = (ref: ChunkRef): BlobInfo => this.rafs.blobs[ref.blobIndex]!;
    return {
      isCached: (ref) => cache.isCached(blobOf(ref), ref),
      fetch: async (ref) => void (await this.fetchRef(blobOf(ref), ref, 'prefetch')),
      demand: this.ctx.demand,
    };
  }

  /** The program prefetcher of a lazily served mount (none when fetch.execPrefetch is 0), made on first use. */
  private programPrefetch(): ProgramPrefetch | undefined {
    const max = this.ctx.config.fetch.execPrefetch;
    if (!this.lazy || max === 0) return undefined;
    if (this.programs) return this.programs;
    const blobOf = (ref: ChunkRef): BlobInfo => this.rafs.blobs[ref.blobIndex]!;
    // an optimized image's prefetch table lists the files its traced start read: the hot region has their start
    const traced = this.hasHotRegion() ? new Set(this.rafs.prefetchNids) : new Set<number>();
    this.programs = new ProgramPrefetch({
      rafs: this.rafs,
      traced: (nid) => traced.has(nid),
      // verified bytes as soon as they are, not once stored: the loader's next steps are found in them
      read: async (nid, offset, length) => Buffer.concat(await Promise.all(this.rafs.chunksForRange(nid, offset, length)
        .map(async (s) => (await this.ask(blobOf(s.chunk), s.chunk, 'prefetch', true)).subarray(s.start, s.start + s.length)))),
      prefetch: (refs) => {
        // not yielding to demand: the start's own misses are what this runs beside; it keeps the link busy between them
        const prefetch = new Prefetcher(this.prefetchHooks(), { streams: EXEC_PREFETCH_STREAMS, yieldToDemand: false });
        this.execPrefetches.add(prefetch);
        prefetch.start(refs);
        void prefetch.finished().then(() => this.execPrefetches.delete(prefetch));
      },
    }, max, this.ctx.config.fetch.execPrefetchMin);
    return this.programs;
  }

  /**
   * The fetcher brought a chunk in. The trace records it if this mount asked for it, or if a
   * request for this image's blob grew to take it along (readahead; every image serving the blob
   * records such a chunk).
   */
  chunkFetched(chunk: FetchedChunk): void {
    const blobIndex = this.blobIndexes.get(chunk.blob.blobId);
    const ref = blobIndex === undefined ? undefined : this.lazy?.refs[blobIndex]?.get(chunk.ref.ciIndex);
    if (!ref) return;
    const asked = this.asked.get(chunkKey(ref.blobIndex, ref.ciIndex));
    const kind = chunk.amplified ? 'readahead' : asked?.kind;
    if (kind) this.trace.fetch(kind, ref, performance.timeOrigin + chunk.askedAt, performance.timeOrigin + chunk.verifiedAt, asked?.file);
  }

  /** Writes the trace so far to the spec's `trace` file, if it names one. */
  async saveTrace(): Promise<void> {
    if (this.spec.trace === undefined) return;
    await writeAtomically(this.spec.trace, serializeAccessTrace(await this.trace.take()));
  }

  /** The image's flat block image (built on first use: a walk of every chunk). */
  flatMap(): FlatImageMap {
    this.flat ??= FlatImageMap.build(this.rafs, this.worker.data.byteLength, this.lazy ? [...this.lazy.tables.values()].flat() : imageChunks(this.rafs));
    return this.flat;
  }

  /** The image's bootstrap bytes (the workers' shared copy). */
  bootstrap(): Buffer {
    return Buffer.from(this.worker.data);
  }

  /** A verified chunk for the main thread (block mode over NBD): through the cache, or from the local blob. */
  async readChunk(ref: ChunkRef): Promise<Buffer> {
    const blob = this.rafs.blobs[ref.blobIndex];
    if (!blob) throw new RangeError(`chunk refers to blob index ${ref.blobIndex}, the image has ${this.rafs.blobs.length} blobs`);
    if (this.lazy) return this.ask(blob, ref, 'demand');
    if (!this.localChunks) {
      const backend = new LocalDirBackend(this.spec.blobDir!);
      this.localChunks = { backend, reader: new ChunkReader(backend, this.rafs.blobs) };
    }
    return this.localChunks.reader.read(ref);
  }

  /** Starts fetching the chunks of `refs` that are not cached, in one batch; nobody waits for them. */
  private async readAhead(blob: BlobInfo, refs: ChunkRef[]): Promise<void> {
    const { cache } = this.lazy!;
    const cached = await Promise.all(refs.map((r) => cache.isCached(blob, r)));
    for (const [i, r] of refs.entries()) if (!cached[i]) this.ask(blob, r, 'readahead').catch(() => undefined);
  }

  /** A chunk through the cache (fetched if it is missing), remembered as asked for while it is had. */
  private async ask(blob: BlobInfo, ref: ChunkRef, kind: FetchKind, early = false, file?: FilePlace): Promise<Buffer> {
    const { cache } = this.lazy!;
    const key = chunkKey(ref.blobIndex, ref.ciIndex);
    // coming in the hot pack: waited for, not fetched again alongside it
    await this.packStream?.waitFor(key);
    // the first reason stands: a read joining a prefetch of the chunk waits for the prefetch's fetch
    if (this.asked.has(key)) return cache.readChunk(blob, ref, early);
    this.asked.set(key, file ? { kind, file } : { kind });
    try {
      return await cache.readChunk(blob, ref, early);
    } finally {
      this.asked.delete(key);
    }
  }

  /**
   * Fetches and stores a chunk; its verified bytes when the cache could not store them, or when
   * `early` asked for them before they were stored.
   */
  private async fetchRef(blob: BlobInfo, ref: ChunkRef, kind: FetchKind, early = false, file?: FilePlace): Promise<Buffer | undefined> {
    const bytes = await this.ask(blob, ref, kind, early, file);
    return (await this.lazy!.cache.isCached(blob, ref)) ? undefined : bytes;
  }

  /** Starts the background prefetch (registry images only). */
  startPrefetch(): void {
    if (!this.lazy || this.prefetcher) return;
    const { tables } = this.lazy;
    // an optimized image's prefetch list names whole files (for other readers of the image); what
    // of them a start touches is the hot region, already streaming: the rest would only compete
    const hot = this.hotRegion !== undefined;
    if (hot && !this.ctx.config.prefetch.all) return;
    this.prefetcher = new Prefetcher(this.prefetchHooks(), { bandwidth: this.ctx.config.prefetch.bandwidth });
    const rest = this.ctx.config.prefetch.all ? allChunks(this.rafs, tables) : [];
    if (hot) this.prefetcher.start(this.hotRegion!.finished().then(() => []), rest);
    else if (this.spec.prefetchFiles) this.prefetcher.start(prefetchListChunks(this.rafs, nidsOfPaths(this.rafs, this.spec.prefetchFiles)), rest);
    else this.prefetcher.start(prefetchListChunks(this.rafs), rest);
  }

  /** Whether the image is an optimized one, with a hot region to stream at mount. */
  hasHotRegion(): boolean {
    return this.lazy !== undefined && hotRegions(this.lazy.remote.image.manifest).size > 0;
  }

  /**
   * Streams the image's hot region (an optimized image's: the chunks a traced start touched, first in
   * their blob in first-touch order) into the cache now, at link rate: three runs of neighbours in
   * flight at a time, alongside the container's own misses rather than after them (a miss on a chunk
   * already on its way shares that fetch).
   */
  startHotRegion(): void {
    if (!this.lazy || this.hotRegion) return;
    const regions = hotRegions(this.lazy.remote.image.manifest);
    const refs = hotRegionChunks(this.rafs.blobs, regions, this.lazy.tables);
    if (refs.length === 0) return this.lazy.remote.releaseEarly();
    const { cache } = this.lazy;
    if (this.ctx.config.fetch.hotPages) {
      const pages = new HotPages(this.rafs, refs, this.ctx.storePages);
      this.hotPages = pages;
      this.worker.hotFiles = pages.files();
    }
    const blobOf = (ref: ChunkRef): BlobInfo => this.rafs.blobs[ref.blobIndex]!;
    this.hotRegion = new Prefetcher({
      isCached: (ref) => cache.isCached(blobOf(ref), ref),
      // early: a run is done once verified, so the next one is asked for while this one is stored
      fetch: async (ref) => this.hotPages?.arrived(ref, await this.ask(blobOf(ref), ref, 'hot', true)),
      demand: this.ctx.demand,
    }, { streams: HOT_REGION_STREAMS, batchBytes: 1 << 20, yieldToDemand: false });
    const packed = this.hotPackStream(regions);
    // a packed region comes as its pack; what of it did not arrive, from the hot blob after
    this.hotRegion.start(packed ? packed.stream.run().then((missed) => [...refs.filter((r) => r.blobIndex !== packed.blobIndex), ...missed]) : refs);
    // the region is what the start reads: misses around it fetch no neighbours meanwhile
    cache.fetcher?.quietWhile(this.hotRegion.finished());
    void this.hotRegion.finished().then(() => {
      this.lazy?.remote.releaseEarly();
      // held pages are for the start the region was traced from: over well before this
      setTimeout(() => this.hotPages?.drop(), HOT_PAGES_HELD_MS).unref();
    });
  }

  /** The stream of the image's hot pack, if its manifest declares one that fits its hot blob's region (one pack per image: optimize makes one hot blob). */
  private hotPackStream(regions: ReadonlyMap<string, number>): { stream: HotPackStream; blobIndex: number } | undefined {
    const { remote, tables, cache } = this.lazy!;
    const [pack] = hotPacks(remote.image.manifest).values();
    const blobIndex = pack ? this.blobIndexes.get(pack.index.blobId) : undefined;
    if (!pack || blobIndex === undefined) return undefined;
    const blob = this.rafs.blobs[blobIndex]!;
    let frames: PackFrame[];
    try {
      frames = framesOf(pack.index, hotRegionOf(tables.get(blob.blobId) ?? [], regions.get(blob.blobId)!));
    } catch (err) {
      log.warn('hot pack ignored: its region is streamed from the hot blob', { error: (err as Error).message });
      return undefined;
    }
    // the pack is read like the image's blobs: from its sources, failing over (the early read first)
    this.ctx.sources.add(this, [pack.packId], remote.backends);
    this.packStream = new HotPackStream(blob, frames, {
      read: async (offset, length) => {
        const bytes = await this.ctx.sources.readRange(pack.packId, offset, length);
        cache.fetcher?.countOutside({ requests: offset === 0 ? 1 : 0, bytes: bytes.length });
        return bytes;
      },
      corrupt: (count) => cache.fetcher?.countOutside({ corruptChunks: count }),
      arrived: (ref, data, askedAt) => {
        cache.fetcher?.countOutside({ chunks: 1 });
        this.trace.fetch('hot', ref, performance.timeOrigin + askedAt, performance.timeOrigin + performance.now());
        this.hotPages?.arrived(ref, data);
      },
      store: (ref, data) => cache.storeVerified(blob, ref, data),
    });
    return { stream: this.packStream, blobIndex };
  }

  /**
   * Fetches the mount's runtime files (MountSpec.runtimeFiles: what a container runtime reads as it
   * makes a container) now: those reads come before anything of the image runs, each would
   * otherwise be a round trip of its own. A file's first RUNTIME_FILE_BYTES at most.
   */
  startRuntimeFiles(): void {
    if (!this.lazy || !this.spec.runtimeFiles) return;
    const refs = new Map<number, ChunkRef>();
    for (const nid of nidsOfPaths(this.rafs, this.spec.runtimeFiles)) {
      if ((this.rafs.inode(nid).mode & S_IFMT) !== S_IFREG) continue;
      for (const { chunk } of this.rafs.chunksForRange(nid, 0, RUNTIME_FILE_BYTES)) refs.set(chunkKey(chunk.blobIndex, chunk.ciIndex), chunk);
    }
    for (const ref of refs.values()) this.ask(this.rafs.blobs[ref.blobIndex]!, ref, 'prefetch').catch(() => undefined);
  }

  /** The kernel was given file `nid` as node `nodeid`: the hot pages of it that arrived are pushed. */
  entered(nid: number, nodeid: number): void {
    this.hotPages?.entered(nid, nodeid);
  }

  info(): ImageMountInfo {
    return {
      mountpoint: `/${this.name === '/' ? '' : this.name}`,
      slot: this.slot,
      ...(this.spec.target === undefined ? {} : { target: this.spec.target }),
      bootstrap: this.worker.bootstrap,
      ...(this.spec.blobDir === undefined ? {} : { blobDir: this.spec.blobDir }),
      blobs: this.rafs.blobs.map((b) => b.blobId),
      blobBytes: this.blobBytes(),
      ...(this.prefetcher ? { prefetch: { ...this.prefetcher.stats } } : {}),
      ...(this.hotRegion ? { hotRegion: { ...this.hotRegion.stats } } : {}),
      problems: this.lazy?.remote.image.problems ?? [],
    };
  }

  /** Bytes of the image's data blobs: the manifest's layers the bootstrap reads (all but a Nydus image's bootstrap layer). */
  private blobBytes(): number {
    if (!this.lazy) return this.rafs.blobs.reduce((s, b) => s + b.compressedSize, 0);
    const ids = new Set(this.rafs.blobs.map((b) => `sha256:${b.blobId}`));
    return this.lazy.remote.image.manifest.layers.filter((l) => ids.has(l.digest)).reduce((sum, l) => sum + l.size, 0);
  }

  /** Stops prefetch and lets go of the registry connection, and of the chunk tables of blobs no other image has. */
  async close(): Promise<void> {
    if (this.ctx.traced.get(this.slot) === this) this.ctx.traced.delete(this.slot);
    this.packStream?.stop();
    await this.hotRegion?.stop();
    await this.prefetcher?.stop();
    await Promise.all([...this.execPrefetches].map((p) => p.stop()));
    for (const blobId of this.ctx.sources.release(this)) {
      this.ctx.tables.delete(blobId);
      this.lazy?.cache.fetcher?.forgetBlob(blobId);
    }
    await this.lazy?.remote.close();
    await this.bootstrapKept;
    await this.localChunks?.backend.close();
    this.closeSpill?.();
    this.closeSpill = undefined;
  }
}

/** Runs of a program's start in flight at once, beside its own misses. */
const EXEC_PREFETCH_STREAMS = 2;

/** Runs of the hot region in flight at once: enough to keep the link busy while a run is verified. */
const HOT_REGION_STREAMS = 3;

/** The most of one runtime file (fetch.runtimeFiles) fetched at mount: a user database, not an image's worth. */
const RUNTIME_FILE_BYTES = 1 << 20;

/** How long after its hot region has arrived a mount holds the pages of files nobody looked up. */
const HOT_PAGES_HELD_MS = 30_000;

/** The chunks of each blob's hot region (`hot`: its compressed bytes, by blob id), in blob order. */
export function hotRegionChunks(blobs: readonly BlobInfo[], hot: ReadonlyMap<string, number>, tables: ReadonlyMap<string, readonly ChunkRef[]>): ChunkRef[] {
  return blobs.flatMap((blob) => {
    const bytes = hot.get(blob.blobId);
    return bytes === undefined ? [] : hotRegionOf(tables.get(blob.blobId) ?? [], bytes);
  });
}

/** One copy of a bootstrap for the main thread and every worker. */
function shared(bytes: Buffer): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(bytes.length);
  bytes.copy(Buffer.from(sab));
  return sab;
}

/** Writes a bootstrap's copy at `path` (whole or not at all); a failure costs only the copy, so it is logged, not thrown. */
function keepBootstrapCopy(path: string, bootstrap: Buffer): Promise<void> {
  return writeAtomically(path, bootstrap).catch((err: unknown) => log.warn('the bootstrap\'s copy next to the cache could not be written', { path, error: err }));
}
