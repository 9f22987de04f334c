// Fetches missing chunks of a blob from a backend for the cache: the misses asked for in one turn
// of the event loop are sorted by compressed offset and merged into as few Range requests as the
// gaps allow, each request grown toward `amplify` bytes with the blob's next missing chunks when the
// blob's chunk table is known. A chunk already being fetched is never asked for twice: every
// reader of it shares one promise — but only readers that describe it alike (same blob id, index,
// ranges and digest): images are untrusted toward each other, and a reader must never be handed
// bytes verified against another image's digest. Each chunk is decoded and verified on its own,
// written to the cache, made durable and only then marked ready; a chunk that fails verification is
// asked for once more (bytes broken on the way), and if it fails again rejects its own readers
// with ChunkIntegrityError, never marked. A request not done by its deadline is given up (its
// connection closed): its chunks fail, and the next reader of one asks anew.
import { isSpansBlob, storedBlobId } from '../rafs/span-blob.js';
import { SpanBytes } from './span-bytes.js';
import type { RafsImage } from '../rafs/reader.js';
import { BlobFeature, LAYER_AS_IS } from '../rafs/blob-table.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import { forEachInSlices } from '../util/slices.js';
import { ShortReadError, type BlobBackend } from './backend.js';
import { claimKey } from './chunk-claim.js';
import { decodeCheckpointRun, decodeChunkAsync, MemberChunkStream } from './chunk-decoder.js';

/** Where fetched chunks go: the cache's data file and chunk map of one blob. */
export interface ChunkSink {
  isReady(ciIndex: number): boolean;
  /** Writes a chunk's verified, uncompressed bytes at its uncompressed offset. */
  write(ref: ChunkRef, data: Buffer): Promise<void>;
  /** Makes everything written so far durable (fdatasync). */
  sync(): Promise<void>;
  markReady(ciIndex: number): Promise<void>;
}

export interface FetcherOptions {
  /** Largest hole (bytes of the blob nobody asked for) bridged to merge two chunks into one request. Default 128 KiB. */
  mergeGap?: number;
  /** Requests smaller than this grow with the blob's following missing chunks (needs `chunkTable`). Default 1 MiB; 0 turns it off. */
  amplify?: number;
  /** No merged request grows past this many bytes (a single chunk may still be larger). Default 4 MiB. */
  maxRequest?: number;
  /** Every chunk of a blob (any order), which lets requests be amplified. */
  chunkTable?: (blob: BlobInfo) => readonly ChunkRef[] | undefined;
  /** A request (the backend's retries included) still not done after this long is given up. Default 30 s. */
  requestTimeoutMs?: number;
  /** Hears of every chunk fetched and verified (an access trace records them). */
  onChunk?: (chunk: FetchedChunk) => void;
  /** Hears of every Range request once it is over: its bytes, how long it took, whether it failed. */
  onRequest?: (bytes: number, micros: number, failed: boolean) => void;
}

/** A chunk brought in from the backend and verified. */
export interface FetchedChunk {
  blob: BlobInfo;
  ref: ChunkRef;
  /** performance.now() when it was first asked for (or added to a grown request). */
  askedAt: number;
  /** performance.now() once its bytes were verified. */
  verifiedAt: number;
  /** Nobody asked for it: a request grew to take it along. */
  amplified: boolean;
}

export interface FetcherStats {
  /** Range requests made to the backend. */
  requests: number;
  /** Bytes those requests asked for. */
  bytes: number;
  /** Chunks fetched and verified. */
  chunks: number;
  /** Chunks fetched only because a request was amplified. */
  amplifiedChunks: number;
  /** Chunks that failed verification. */
  corruptChunks: number;
  /** Range requests that failed (after the backend's own retries and failover). */
  errors: number;
  /** Range requests given up at their deadline (counted in errors too). */
  timeouts: number;
  /** Chunks asked for again after failing verification. */
  refetches: number;
  /** Verified chunks the cache could not keep (a full disk, say): handed to their readers, not marked. */
  storeErrors: number;
}

interface Waiter {
  ref: ChunkRef;
  /** Hands over the verified bytes to readers who need not wait for the disk. */
  verified: (data: Buffer) => void;
  resolve: (data: Buffer) => void;
  reject: (err: unknown) => void;
  /** Times its chunk was asked for again after failing verification. */
  refetched: number;
  askedAt: number;
  amplified: boolean;
}

interface PendingBlob {
  blob: BlobInfo;
  sink: ChunkSink;
  /** By claim key. */
  waiters: Map<string, Waiter>;
}

/** A chunk being fetched: its bytes once verified, and once stored. */
interface InFlight {
  verified: Promise<Buffer>;
  stored: Promise<Buffer>;
}

interface Range {
  start: number;
  end: number;
  chunks: Waiter[];
}

const DEFAULTS = { mergeGap: 128 << 10, amplify: 1 << 20, maxRequest: 4 << 20, requestTimeoutMs: 30_000 };
/** Tries after the first for a chunk that fails verification: enough for bytes broken on the way. */
const REFETCHES = 1;

/** Why a request's chunks failed when it was given up at its deadline. */
export class FetchTimeoutError extends Error {}

export class ChunkFetcher {
  readonly stats: FetcherStats = { requests: 0, bytes: 0, chunks: 0, amplifiedChunks: 0, corruptChunks: 0, errors: 0, timeouts: 0, refetches: 0, storeErrors: 0 };
  private readonly mergeGap: number;
  private readonly amplify: number;
  private readonly maxRequest: number;
  /** Verified spans of SPANS blobs, so a chunk that runs into the next span does not fetch its first again. */
  private readonly spanBytes = new SpanBytes();
  private readonly requestTimeoutMs: number;
  private readonly inflight = new Map<string, InFlight>();
  private readonly pending = new Map<string, PendingBlob>();
  private readonly sortedTables = new Map<string, readonly ChunkRef[]>();
  private flushScheduled = false;
  /** Hot regions streaming now (quietWhile): no amplification meanwhile. */
  private quiet = 0;

  constructor(readonly backend: BlobBackend, private readonly options: FetcherOptions = {}) {
    this.mergeGap = options.mergeGap ?? DEFAULTS.mergeGap;
    this.amplify = options.amplify ?? DEFAULTS.amplify;
    this.maxRequest = Math.max(options.maxRequest ?? DEFAULTS.maxRequest, this.amplify);
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
  }

  /**
   * No request is grown (amplified) until `until` settles: an optimized image's hot region is what
   * its start reads, streaming at link rate, and neighbours of the misses around it would only take
   * the link from it.
   */
  quietWhile(until: Promise<unknown>): void {
    this.quiet++;
    const done = (): void => void this.quiet--;
    until.then(done, done);
  }

  /** Counts what came by another road than this fetcher's requests (a hot pack's frames): the counters say what crossed the link. */
  countOutside(add: { requests?: number; bytes?: number; chunks?: number; corruptChunks?: number }): void {
    this.stats.requests += add.requests ?? 0;
    this.stats.bytes += add.bytes ?? 0;
    this.stats.chunks += add.chunks ?? 0;
    this.stats.corruptChunks += add.corruptChunks ?? 0;
  }

  /** Chunks currently being fetched. */
  get inflightCount(): number {
    return this.inflight.size;
  }

  /**
   * The verified bytes of `ref`, fetched (with whatever else is missing now) and stored through
   * `sink`; with `early`, handed over once verified, before they are stored (a reader waiting for a
   * page need not wait for the disk).
   */
  fetch(blob: BlobInfo, ref: ChunkRef, sink: ChunkSink, early = false): Promise<Buffer> {
    const key = claimKey(blob.blobId, ref);
    const shared = this.inflight.get(key);
    if (shared) return early ? shared.verified : shared.stored;
    let pending = this.pending.get(blob.blobId);
    if (!pending) {
      pending = { blob, sink, waiters: new Map() };
      this.pending.set(blob.blobId, pending);
    }
    const flight = this.register(key, pending, ref, false);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // let every read issued in this turn join the batch
      setImmediate(() => this.flush());
    }
    return early ? flight.verified : flight.stored;
  }

  private register(key: string, pending: PendingBlob, ref: ChunkRef, amplified: boolean): InFlight {
    let verified!: (data: Buffer) => void;
    let failed!: (err: unknown) => void;
    const early = new Promise<Buffer>((resolve, reject) => {
      verified = resolve;
      failed = reject;
    });
    let waiter!: Waiter;
    const stored = new Promise<Buffer>((resolve, reject) => {
      waiter = { ref, verified, resolve, reject: (err) => { failed(err); reject(err); }, refetched: 0, askedAt: performance.now(), amplified };
    });
    early.catch(() => undefined); // most readers wait for `stored`
    pending.waiters.set(key, waiter);
    const flight = { verified: early, stored };
    this.inflight.set(key, flight);
    const forget = (): void => void this.inflight.delete(key);
    stored.then(forget, forget);
    return flight;
  }

  private flush(): void {
    this.flushScheduled = false;
    const batches = [...this.pending.values()];
    this.pending.clear();
    for (const batch of batches) {
      for (const range of this.plan(batch)) void this.run(batch.blob, batch.sink, range);
    }
  }

  /** Merged (and amplified) requests for one blob's batch of misses. */
  private plan(batch: PendingBlob): Range[] {
    const wanted = [...batch.waiters.values()].sort((a, b) => a.ref.compressedOffset - b.ref.compressedOffset);
    const ranges: Range[] = [];
    for (const w of wanted) {
      const start = w.ref.compressedOffset;
      const end = start + w.ref.compressedSize;
      const last = ranges[ranges.length - 1];
      if (last && start - last.end <= this.mergeGap && Math.max(end, last.end) - last.start <= this.maxRequest) {
        last.end = Math.max(last.end, end);
        last.chunks.push(w);
      } else {
        ranges.push({ start, end, chunks: [w] });
      }
    }
    if (this.amplify > 0 && this.quiet === 0) this.amplifyRanges(batch, ranges);
    return ranges;
  }

  private amplifyRanges(batch: PendingBlob, ranges: Range[]): void {
    const table = this.chunkTable(batch.blob);
    if (!table || table.length === 0) return;
    const blobId = batch.blob.blobId;
    // a stargz-family layer's chunks are whole files or 4 MiB pieces, each its own member: growing a
    // request toward `amplify` brings neighbours' members a start rarely reads (bench/stargz-lazy:
    // 32.6 → 26.5 MB fetched, 3.95 → 3.79 s); only chunks inside the range (member-mates) come along
    const grow = (batch.blob.features & LAYER_AS_IS) === 0;
    // a gzip layer's chunks decode from a checkpoint: the first miss after one brings every chunk
    // decoded from it (its span), or each later miss there would fetch the span's start again
    const checkpointed = (batch.blob.features & BlobFeature.CHECKPOINTS) !== 0;
    ranges.forEach((range, r) => {
      const spans = checkpointed ? new Set(range.chunks.map((w) => w.ref.compressedOffset)) : undefined;
      const limit = ranges[r + 1]?.start ?? Infinity;
      // first chunk starting at or after the range's start: those within it come free (chunks that
      // share a member), those after it grow it
      let lo = 0;
      let hi = table.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (table[mid]!.compressedOffset < range.start) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < table.length; i++) {
        const ref = table[i]!;
        const end = storedEnd(ref);
        const grows = end > range.end;
        const spanMate = spans?.has(ref.compressedOffset) === true;
        const capped = end > limit || end - range.start > this.maxRequest;
        if (grows && (spanMate ? capped : !grow || range.end - range.start >= this.amplify || ref.compressedOffset - range.end > this.mergeGap || capped)) {
          if (ref.compressedOffset >= range.end) break;
          continue;
        }
        const key = claimKey(blobId, ref);
        if (batch.sink.isReady(ref.ciIndex) || this.inflight.has(key)) continue;
        this.register(key, batch, ref, true).stored.catch(() => undefined); // nobody may be waiting for an amplified chunk
        range.chunks.push(batch.waiters.get(key)!);
        range.end = Math.max(range.end, end);
        this.stats.amplifiedChunks++;
      }
    });
  }

  /** Lets go of what is known of a blob no longer served (its chunk table is asked for again if it is). */
  forgetBlob(blobId: string): void {
    this.sortedTables.delete(blobId);
  }

  /** The blob's distinct chunks sorted by compressed offset (when the chunk table is known). */
  chunkTable(blob: BlobInfo): readonly ChunkRef[] | undefined {
    let table = this.sortedTables.get(blob.blobId);
    if (!table) {
      const refs = this.options.chunkTable?.(blob);
      if (!refs) return undefined;
      const seen = new Set<number>();
      table = refs.filter((r) => !seen.has(r.ciIndex) && seen.add(r.ciIndex)).sort((a, b) => a.compressedOffset - b.compressedOffset);
      this.sortedTables.set(blob.blobId, table);
    }
    return table;
  }

  /**
   * One Range request. Chunks are settled as their bytes arrive (the reader of the first one need
   * not wait for the rest of a grown request); those still missing when it fails, or when its
   * deadline passes, are rejected.
   */
  private async run(blob: BlobInfo, sink: ChunkSink, range: Range): Promise<void> {
    // by where their bytes end: a chunk is settled as soon as they are in, even when chunks overlap
    // (members of a stargz-family layer share or overlap stored ranges)
    const order = [...range.chunks].sort((a, b) => storedEnd(a.ref) - storedEnd(b.ref));
    const settling: Promise<Waiter | undefined>[] = [];
    const runs = checkpointRuns(blob, order);
    let next = 0;
    const length = range.end - range.start;
    const deadline = new AbortController();
    const began = performance.now();
    let failed = false;
    const timer = setTimeout(() => deadline.abort(new FetchTimeoutError(`blob ${blob.blobId}: ${length} bytes at ${range.start} not fetched within ${this.requestTimeoutMs} ms`)), this.requestTimeoutMs);
    // eStargz chunks decoded as their bytes arrive, from a backend that reports them (StreamedChunks)
    const streams = new StreamedChunks(blob, range.start);
    const take = (buf: Buffer, filled: number, arriving: boolean): void => {
      // bytes of a request given up on: its chunks have failed already
      if (deadline.signal.aborted) return;
      if (!runs) streams.feed(order, next, buf, filled, arriving);
      for (; next < order.length; next++) {
        const w = order[next]!;
        const at = w.ref.compressedOffset - range.start;
        if (at + w.ref.compressedSize > filled) break;
        const stored = buf.subarray(at, at + w.ref.compressedSize);
        const stream = streams.take(w);
        if (stream) settling.push(this.settle(blob, sink, w, async () => stream.finish()));
        else if (!runs) settling.push(this.settle(blob, sink, w, () => decodeChunkAsync(blob, w.ref, stored)));
        else settling.push(...this.settleRun(blob, sink, runs, w, stored));
      }
    };
    try {
      this.stats.requests++;
      // a backend deaf to the signal is not waited for either
      const given = isSpansBlob(blob) ? this.readSpans(blob, range.start, length, deadline.signal) : this.readStored(blob, range.start, length, (buf, filled) => take(buf, filled, true), deadline.signal);
      const stored = await Promise.race([given, abortion(deadline.signal)]);
      if (stored.length !== length) throw new ShortReadError(`blob ${blob.blobId}: wanted ${length} bytes at ${range.start}, got ${stored.length}`);
      take(stored, length, false);
    } catch (err) {
      failed = true;
      this.stats.errors++;
      if (deadline.signal.aborted) this.stats.timeouts++;
      for (const w of order.slice(next)) w.reject(err);
      // a gzip layer's chunks held for the rest of their run: that will not come now
      for (const run of runs?.values() ?? []) if (run.arrived.length < run.size) for (const w of run.arrived) w.reject(err);
    } finally {
      clearTimeout(timer);
      this.options.onRequest?.(length, (performance.now() - began) * 1000, failed);
    }
    const broken = (await Promise.all(settling)).filter((w): w is Waiter => w !== undefined);
    if (broken.length === 0) return;
    // once per request, not per chunk: the backend that gave these bytes is asked last next time
    this.backend.demote?.(storedBlobId(blob));
    for (const w of broken) void this.run(blob, sink, { start: w.ref.compressedOffset, end: w.ref.compressedOffset + w.ref.compressedSize, chunks: [w] });
  }

  private readStored(blob: BlobInfo, start: number, length: number, progress?: (buf: Buffer, filled: number) => void, signal?: AbortSignal): Promise<Buffer> {
    this.stats.bytes += length;
    return this.backend.readRange(storedBlobId(blob), start, length, progress, signal);
  }

  /** A SPANS blob's stored bytes: spans kept from requests before are not fetched again (span-bytes.ts). */
  private async readSpans(blob: BlobInfo, start: number, length: number, signal: AbortSignal): Promise<Buffer> {
    const { bytes, fetched } = await this.spanBytes.read(blob, start, length, (s, l) => this.backend.readRange(storedBlobId(blob), s, l, undefined, signal));
    this.stats.bytes += fetched;
    return bytes;
  }

  /**
   * A gzip layer's chunk whose bytes are in: held until the last chunk of the request decoded from
   * the same checkpoint has its bytes too, then all of them are decoded at once (decodeCheckpointRun).
   */
  private settleRun(blob: BlobInfo, sink: ChunkSink, runs: CheckpointRuns, w: Waiter, stored: Buffer): Promise<Waiter | undefined>[] {
    const run = runs.get(w.ref.compressedOffset)!;
    run.arrived.push(w);
    if (run.arrived.length < run.size) return [];
    // the last to arrive ends furthest: its stored bytes hold every other's
    const decoded = decodeCheckpointRun(blob, run.arrived.map((x) => x.ref), stored);
    return run.arrived.map((x, i) => this.settle(blob, sink, x, async () => {
      const d = decoded[i]!;
      if (d instanceof Error) throw d;
      return d;
    }));
  }

  /**
   * Decodes and verifies one chunk, hands it to its early readers, stores it: data, then
   * durability, then its bit (a crash never leaves a bit over missing data), then hands it to the
   * rest (still in flight until then: nobody asks for it again meanwhile). Verified bytes are handed
   * over whether or not the cache could keep them. A chunk that fails verification is returned, to be
   * asked for again (in a request of its own) until REFETCHES is spent.
   */
  private async settle(blob: BlobInfo, sink: ChunkSink, w: Waiter, decode: () => Promise<Buffer>): Promise<Waiter | undefined> {
    let data: Buffer;
    try {
      data = await decode();
      this.stats.chunks++;
      this.options.onChunk?.({ blob, ref: w.ref, askedAt: w.askedAt, verifiedAt: performance.now(), amplified: w.amplified });
    } catch (err) {
      this.stats.corruptChunks++;
      if (w.refetched < REFETCHES) {
        w.refetched++;
        this.stats.refetches++;
        return w;
      }
      w.reject(err);
      return undefined;
    }
    w.verified(data);
    const kept = await sink.write(w.ref, data).then(() => sink.sync()).then(() => true, () => false);
    if (kept) await sink.markReady(w.ref.ciIndex).catch(() => undefined);
    else this.stats.storeErrors++;
    w.resolve(data);
    return undefined;
  }
}

/**
 * The member chunks of one request being decoded as their bytes arrive (MemberChunkStream), each
 * fed what came of its stored bytes. Streams are begun only while bytes are reported arriving: a
 * backend that hands them over all at once gets them decoded whole, on the thread pool. A request
 * retried from its start (a new buffer, or fewer bytes than before) begins its streams anew.
 */
class StreamedChunks {
  private readonly streams = new Map<Waiter, MemberChunkStream>();
  private buf: Buffer | undefined;
  private fedTo = 0;

  constructor(private readonly blob: BlobInfo, private readonly start: number) {}

  /** The bytes of `buf` up to `filled` to the streams of chunks order[from..] (begun for those that suit, while `arriving`). */
  feed(order: readonly Waiter[], from: number, buf: Buffer, filled: number, arriving: boolean): void {
    if (buf !== this.buf || filled < this.fedTo) {
      this.streams.clear();
      this.buf = buf;
      this.fedTo = 0;
    }
    for (let i = from; i < order.length; i++) {
      const w = order[i]!;
      const at = w.ref.compressedOffset - this.start;
      const end = Math.min(filled, at + w.ref.compressedSize);
      let stream = this.streams.get(w);
      if (!stream && arriving && this.fedTo <= at && end > at && MemberChunkStream.suits(this.blob, w.ref)) this.streams.set(w, (stream = new MemberChunkStream(this.blob, w.ref)));
      if (stream && end > Math.max(at, this.fedTo)) stream.push(buf.subarray(Math.max(at, this.fedTo), end));
    }
    this.fedTo = filled;
  }

  /** The stream of chunk `w` (its bytes all fed), if it has one; forgotten here. */
  take(w: Waiter): MemberChunkStream | undefined {
    const stream = this.streams.get(w);
    this.streams.delete(w);
    return stream;
  }
}

/** A request's chunks of a gzip layer by the stored start they decode from: how many, and those whose bytes are in. */
type CheckpointRuns = Map<number, { size: number; arrived: Waiter[] }>;

/** The runs of a request's chunks (`order`), for a CHECKPOINTS blob only. */
function checkpointRuns(blob: BlobInfo, order: readonly Waiter[]): CheckpointRuns | undefined {
  if (!(blob.features & BlobFeature.CHECKPOINTS)) return undefined;
  const runs: CheckpointRuns = new Map();
  for (const w of order) {
    const run = runs.get(w.ref.compressedOffset);
    if (run) run.size++;
    else runs.set(w.ref.compressedOffset, { size: 1, arrived: [] });
  }
  return runs;
}

/** Where a chunk's stored bytes end in its blob. */
const storedEnd = (ref: ChunkRef): number => ref.compressedOffset + ref.compressedSize;

/** Rejects with the signal's reason once it aborts. */
function abortion(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
}

/**
 * Every distinct chunk of each blob of an image, by blob id (what FetcherOptions.chunkTable wants).
 * Built in slices: a million-chunk image does not hold the daemon's event loop for seconds.
 */
export async function blobChunkTables(rafs: RafsImage): Promise<Map<string, ChunkRef[]>> {
  const byBlob = new Map<number, Map<number, ChunkRef>>();
  const add = (ref: ChunkRef): void => {
    let m = byBlob.get(ref.blobIndex);
    if (!m) byBlob.set(ref.blobIndex, (m = new Map()));
    m.set(ref.ciIndex, ref);
  };
  // the chunk info table lists them all (a walk over every file is much slower); an image without one walks
  await forEachInSlices(rafs.chunkInfoTable(), add);
  if (byBlob.size === 0) {
    await forEachInSlices(rafs.walk(), (entry) => {
      if ((entry.inode.mode & 0o170000) === 0o100000 && !entry.seen) rafs.chunks(entry.nid).forEach(add);
    });
  }
  const tables = new Map<string, ChunkRef[]>();
  for (const [index, m] of byBlob) {
    const blob = rafs.blobs[index];
    if (blob) tables.set(blob.blobId, [...m.values()]);
  }
  return tables;
}
