// Background prefetch for a lazily served image: first the chunks of the files on the bootstrap's
// prefetch list (in list order; a directory stands for everything below it), then, if asked, every
// other chunk of the image's blobs. Prefetch always yields to on-demand reads: before each batch it
// waits until no read is waiting for the backend, and it never fetches faster than its bandwidth
// limit. A batch is issued in one turn, so the fetcher merges it into few Range requests.
import { chunkKey } from '../rafs/chunk.js';
import type { RafsImage } from '../rafs/reader.js';
import { S_IFDIR, S_IFMT, S_IFREG, type ChunkRef } from '../rafs/tree.js';
import { log } from '../util/log.js';
import { forEachInSlices } from '../util/slices.js';

/** Compressed bytes per prefetch batch. */
const BATCH_BYTES = 2 << 20;
const IDLE_POLL_MS = 5;

export interface PrefetchStats {
  state: 'idle' | 'running' | 'done' | 'stopped' | 'failed';
  /** Chunks prefetch fetched (those already cached are skipped, not counted). */
  chunks: number;
  /** Compressed bytes of those chunks. */
  bytes: number;
  failedChunks: number;
  /** Chunks of the prefetch list (before skipping cached ones). */
  listed: number;
}

/**
 * The chunks of the image's prefetch list, in order, each once. Resolved in slices (a walk of a big
 * image takes a while), and each file's chunks are read once however many paths link to it.
 */
export async function prefetchListChunks(rafs: RafsImage, list: readonly number[] = rafs.prefetchNids): Promise<ChunkRef[]> {
  const order = new Map<number, number>();
  list.forEach((nid, i) => order.has(nid) || order.set(nid, i));
  if (order.size === 0) return [];
  const under = new Map<number, number>();
  /** Each listed file with the first position of the list that covers it. */
  const listed = new Map<number, number>();
  await forEachInSlices(rafs.walk(), (e) => {
    const own = order.get(e.nid);
    const inherited = e.nid === rafs.root ? undefined : under.get(e.parentNid);
    const at = own === undefined ? inherited : inherited === undefined ? own : Math.min(own, inherited);
    if (at === undefined) return;
    const type = e.inode.mode & S_IFMT;
    if (type === S_IFDIR) under.set(e.nid, at);
    else if (type === S_IFREG) listed.set(e.nid, Math.min(at, listed.get(e.nid) ?? at));
  });
  const buckets: number[][] = list.map(() => []);
  for (const [nid, at] of listed) buckets[at]!.push(nid);
  // chunks() decodes the image's whole chunk table the first time: have that done in slices too
  await forEachInSlices(rafs.chunkInfoTable(), () => undefined);
  const refs: ChunkRef[] = [];
  await forEachInSlices(buckets.flat(), (nid) => {
    for (const ref of rafs.chunks(nid)) refs.push(ref);
  });
  return uniqueChunks(refs);
}

/**
 * The nids of absolute `paths` in the image (a mount's own prefetch list, nydusd's prefetch_files),
 * in order; a path the image lacks is left out. Components are looked up as they are: no symlink is
 * followed, as in the image's own prefetch table.
 */
export function nidsOfPaths(rafs: RafsImage, paths: readonly string[]): number[] {
  return paths.flatMap((path) => {
    let nid: number | undefined = rafs.root;
    for (const name of path.split('/').filter((c) => c !== '' && c !== '.')) {
      nid = rafs.lookup(nid, name);
      if (nid === undefined) return [];
    }
    return [nid];
  });
}

/** Every chunk of the image, in blob order. */
export function allChunks(rafs: RafsImage, tables: ReadonlyMap<string, readonly ChunkRef[]>): ChunkRef[] {
  return rafs.blobs.flatMap((b) => [...(tables.get(b.blobId) ?? [])].sort((x, y) => x.compressedOffset - y.compressedOffset));
}

function uniqueChunks(refs: ChunkRef[]): ChunkRef[] {
  const seen = new Set<number>();
  return refs.filter((r) => {
    const key = chunkKey(r.blobIndex, r.ciIndex);
    return !seen.has(key) && seen.add(key);
  });
}

export interface PrefetchHooks {
  isCached(ref: ChunkRef): Promise<boolean>;
  /** Brings a chunk into the cache (verified). */
  fetch(ref: ChunkRef): Promise<void>;
  /** On-demand reads waiting for the backend now. */
  demand(): number;
}

export interface PrefetchOptions {
  /** Bytes per second (0: no limit). */
  bandwidth?: number;
  /** Batches in flight at once, each a run of neighbouring chunks. Default 1. */
  streams?: number;
  /** Compressed bytes per batch. Default 2 MiB. */
  batchBytes?: number;
  /** Wait, before each batch, until no on-demand read waits for the backend. Default true. */
  yieldToDemand?: boolean;
}

export class Prefetcher {
  readonly stats: PrefetchStats = { state: 'idle', chunks: 0, bytes: 0, failedChunks: 0, listed: 0 };
  private stopped = false;
  private run: Promise<void> | undefined;
  private readonly options: Required<PrefetchOptions>;

  constructor(private readonly hooks: PrefetchHooks, options: PrefetchOptions = {}) {
    this.options = { bandwidth: 0, streams: 1, batchBytes: BATCH_BYTES, yieldToDemand: true, ...options };
  }

  /** Starts prefetching `list` (once resolved), then `rest` (duplicates of the list are skipped). */
  start(list: ChunkRef[] | Promise<ChunkRef[]>, rest: ChunkRef[] = []): void {
    this.stats.state = 'running';
    this.run = this.loopOver(list, rest).then(
      () => void (this.stats.state = this.stopped ? 'stopped' : 'done'),
      (err: unknown) => {
        this.stats.state = 'failed';
        log.warn('prefetch failed', { error: err });
      },
    );
  }

  /** Resolves once the prefetch is over (done, stopped or failed). */
  finished(): Promise<void> {
    return this.run ?? Promise.resolve();
  }

  /** Stops after the batches in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.run;
  }

  private async loopOver(list: ChunkRef[] | Promise<ChunkRef[]>, rest: ChunkRef[]): Promise<void> {
    const listed = await list;
    this.stats.listed = listed.length;
    const refs = uniqueChunks([...listed, ...rest]);
    const cursor = { next: 0, fetched: 0, started: performance.now() };
    await Promise.all(Array.from({ length: this.options.streams }, () => this.stream(refs, cursor)));
  }

  /** One stream: takes the next run of `refs` from the shared cursor, fetches what is not cached, again. */
  private async stream(refs: ChunkRef[], cursor: { next: number; fetched: number; started: number }): Promise<void> {
    const { bandwidth, batchBytes, yieldToDemand } = this.options;
    while (cursor.next < refs.length && !this.stopped) {
      while (yieldToDemand && this.hooks.demand() > 0 && !this.stopped) await sleep(IDLE_POLL_MS);
      if (this.stopped) break;
      // taken in one go, so a batch is a run of neighbours (the fetcher merges it into few requests)
      const run: ChunkRef[] = [];
      for (let bytes = 0; cursor.next < refs.length && bytes < batchBytes; ) {
        const ref = refs[cursor.next++]!;
        run.push(ref);
        bytes += ref.compressedSize;
      }
      const cached = await Promise.all(run.map((ref) => this.hooks.isCached(ref)));
      const batch = run.filter((_, k) => !cached[k]);
      const results = await Promise.allSettled(batch.map((ref) => this.hooks.fetch(ref)));
      results.forEach((r, k) => {
        if (r.status === 'fulfilled') {
          this.stats.chunks++;
          this.stats.bytes += batch[k]!.compressedSize;
        } else this.stats.failedChunks++;
      });
      cursor.fetched += batch.reduce((sum, ref) => sum + ref.compressedSize, 0);
      if (bandwidth > 0) {
        const ahead = (cursor.fetched / bandwidth) * 1000 - (performance.now() - cursor.started);
        if (ahead > 0) await sleep(ahead);
      }
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
