// The access trace of one mounted image (trace/access-trace.ts), recorded on the daemon's main
// thread: the reads the FUSE workers served (drained from their trace rings) and the chunks the
// fetcher brought in for the image. Records are plain numbers in growing Float64Arrays, a few dozen
// bytes each, at most MAX_TRACE_EVENTS of them. Everything costly is left to when a trace is taken:
// sorting into time order, naming files (one walk of the image for the nids not named yet) and
// finding a file that holds each chunk fetched for no particular read.
import { createHash } from 'node:crypto';
import { chunkKey } from '../rafs/chunk.js';
import type { RafsImage, WalkEntry } from '../rafs/reader.js';
import { type ChunkRef, S_IFMT, S_IFREG } from '../rafs/tree.js';
import {
  type AccessTrace, FETCH_KINDS, type FetchKind, MAX_TRACE_EVENTS, MAX_TRACE_PATH, TRACE_FORMAT, TRACE_VERSION, type TraceFetch, type TraceFile,
  type TraceRead,
} from '../trace/access-trace.js';
import { forEachInSlices } from '../util/slices.js';

/** The clock of every time a recorder is given: milliseconds, comparable across threads. */
export const traceClock = (): number => performance.timeOrigin + performance.now();

/** The image a recorder traces. */
export interface TracedImage {
  /** What was mounted: a registry reference or a bootstrap path. */
  image: string;
  rafs: RafsImage;
  /** The bootstrap's bytes (hashed once, when a trace is first taken). */
  bootstrap(): Buffer;
}

/** A file (by nid), and where in it a chunk starts. */
export interface FilePlace {
  nid: number;
  offset: number;
}

// record layouts (one Float64 each field)
const READ_FIELDS = 5; // at, nid, offset, length, miss
const FETCH_FIELDS = 9; // at, ms, blob index, ci index, bytes, size, nid (-1: none given), offset, kind
const NO_NID = -1;

/** Fixed-size numeric records in one Float64Array that doubles as it fills. */
class RecordLog {
  private data: Float64Array;
  count = 0;

  constructor(private readonly fields: number, initialRecords = 256) {
    this.data = new Float64Array(fields * initialRecords);
  }

  /** Every record so far (and room after them): valid for the first `count` records even after later adds. */
  get values(): Float64Array {
    return this.data;
  }

  /** Makes room for one more record; returns the index of its first field. */
  add(): number {
    const at = this.count * this.fields;
    if (at + this.fields > this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.count++;
    return at;
  }
}

export class TraceRecorder {
  private readonly reads = new RecordLog(READ_FIELDS);
  private readonly fetches = new RecordLog(FETCH_FIELDS);
  private truncated = false;
  private digest: string | undefined;
  /** Files named so far, by nid (a hardlinked inode by its first path). */
  private readonly files = new Map<number, TraceFile>();
  /** Nids no walk could name (a corrupt image, or a path too long for a trace): their reads are left out. */
  private readonly unnamed = new Set<number>();
  /** Where a fetched chunk lies in the first file holding it, by chunk key (null: in no file). */
  private readonly places = new Map<number, FilePlace | null>();

  /** `origin`: the zero of the trace's times (traceClock), until `served` sets it. */
  constructor(private readonly source: TracedImage, private origin = traceClock(), private readonly maxEvents = MAX_TRACE_EVENTS) {}

  /** The mount is served from `at` on: the trace's times count from there (anything earlier is at 0). */
  served(at = traceClock()): void {
    this.origin = at;
  }

  /** A read served at `at` (traceClock) of file `nid`. */
  read(at: number, nid: number, offset: number, length: number, miss: boolean): void {
    if (!this.room()) return;
    const i = this.reads.add();
    const v = this.reads.values;
    v[i] = at;
    v[i + 1] = nid;
    v[i + 2] = offset;
    v[i + 3] = length;
    v[i + 4] = miss ? 1 : 0;
  }

  /**
   * A chunk fetched (asked for at `startAt`, verified at `endAt`, traceClock), for the read of a
   * file at `file` when there was one.
   */
  fetch(kind: FetchKind, ref: ChunkRef, startAt: number, endAt: number, file?: FilePlace): void {
    if (!this.room()) return;
    const i = this.fetches.add();
    const v = this.fetches.values;
    v[i] = startAt;
    v[i + 1] = Math.max(0, endAt - startAt);
    v[i + 2] = ref.blobIndex;
    v[i + 3] = ref.ciIndex;
    v[i + 4] = ref.compressedSize;
    v[i + 5] = ref.uncompressedSize;
    v[i + 6] = file?.nid ?? NO_NID;
    v[i + 7] = file?.offset ?? 0;
    v[i + 8] = FETCH_KINDS.indexOf(kind);
  }

  /** Records were lost on their way here: the trace is not whole. */
  lost(): void {
    this.truncated = true;
  }

  private room(): boolean {
    if (this.reads.count + this.fetches.count < this.maxEvents) return true;
    this.truncated = true;
    return false;
  }

  /** The trace so far, in time order. */
  async take(): Promise<AccessTrace> {
    const now = traceClock();
    const reads = { v: this.reads.values, n: this.reads.count };
    const fetches = { v: this.fetches.values, n: this.fetches.count };
    await this.resolve(reads, fetches);
    const readOrder = timeOrder(reads.v, READ_FIELDS, reads.n);
    const fetchOrder = timeOrder(fetches.v, FETCH_FIELDS, fetches.n);
    const files: TraceFile[] = [];
    const indexes = new Map<number, number>();
    const fileIndex = (nid: number): number | undefined => {
      let index = indexes.get(nid);
      const file = this.files.get(nid);
      if (index === undefined && file) {
        index = files.push(file) - 1;
        indexes.set(nid, index);
      }
      return index;
    };
    const t = (at: number): number => Math.max(0, at - this.origin);
    const outReads: TraceRead[] = [];
    const outFetches: TraceFetch[] = [];
    // both lists in time order at once, so files are numbered by their first mention in either
    for (let r = 0, f = 0; r < readOrder.length || f < fetchOrder.length;) {
      const ri = r < readOrder.length ? readOrder[r]! * READ_FIELDS : -1;
      const fi = f < fetchOrder.length ? fetchOrder[f]! * FETCH_FIELDS : -1;
      if (ri >= 0 && (fi < 0 || reads.v[ri]! <= fetches.v[fi]!)) {
        r++;
        const v = reads.v;
        const file = fileIndex(v[ri + 1]!);
        // a nid the walk did not reach (a corrupt image) names no file: its reads are left out
        if (file !== undefined) outReads.push({ t: t(v[ri]!), file, offset: v[ri + 2]!, length: v[ri + 3]!, miss: v[ri + 4] === 1 });
        continue;
      }
      f++;
      const v = fetches.v;
      const given = v[fi + 6]!;
      const place = given === NO_NID ? this.places.get(chunkKey(v[fi + 2]!, v[fi + 3]!)) : { nid: given, offset: v[fi + 7]! };
      const file = place ? fileIndex(place.nid) : undefined;
      outFetches.push({
        t: t(v[fi]!), ms: v[fi + 1]!, blob: v[fi + 2]!, chunk: v[fi + 3]!, bytes: v[fi + 4]!, size: v[fi + 5]!,
        ...(file === undefined ? {} : { file, offset: place!.offset }), kind: FETCH_KINDS[v[fi + 8]!]!,
      });
    }
    const { rafs, image } = this.source;
    this.digest ??= createHash('sha256').update(this.source.bootstrap()).digest('hex');
    return {
      format: TRACE_FORMAT,
      version: TRACE_VERSION,
      image,
      bootstrap: this.digest,
      started: new Date(this.origin).toISOString(),
      duration: t(now),
      blobs: rafs.blobs.map((b) => ({ id: b.blobId, compressedSize: b.compressedSize, chunkSize: b.chunkSize })),
      files,
      reads: outReads,
      fetches: outFetches,
      truncated: this.truncated,
    };
  }

  /**
   * Names the files the records mention and places the chunks fetched for no file's read: one walk
   * of the image (in slices: the event loop keeps serving), stopped once nothing is left to find.
   * What stays unfound is remembered as such, so no later take walks for it again.
   */
  private async resolve(reads: { v: Float64Array; n: number }, fetches: { v: Float64Array; n: number }): Promise<void> {
    const nids = new Set<number>();
    const chunks = new Set<number>();
    for (let i = 0; i < reads.n; i++) {
      const nid = reads.v[i * READ_FIELDS + 1]!;
      if (this.unknown(nid)) nids.add(nid);
    }
    for (let i = 0; i < fetches.n; i++) {
      const at = i * FETCH_FIELDS;
      const nid = fetches.v[at + 6]!;
      const key = chunkKey(fetches.v[at + 2]!, fetches.v[at + 3]!);
      if (nid !== NO_NID && this.unknown(nid)) nids.add(nid);
      else if (nid === NO_NID && !this.places.has(key)) chunks.add(key);
    }
    if (nids.size === 0 && chunks.size === 0) return;
    const { rafs } = this.source;
    const visit = (e: WalkEntry): void => {
      if (e.seen) return;
      const regular = (e.inode.mode & S_IFMT) === S_IFREG;
      if (nids.delete(e.nid)) this.name(e);
      if (!regular || chunks.size === 0) return;
      const chunkSize = rafs.fileChunkSize(e.nid);
      rafs.chunks(e.nid).forEach((c, i) => {
        const key = chunkKey(c.blobIndex, c.ciIndex);
        if (!chunks.delete(key)) return;
        this.places.set(key, { nid: e.nid, offset: i * chunkSize });
        this.name(e);
      });
    };
    try {
      await forEachInSlices(until(rafs.walk(), () => nids.size === 0 && chunks.size === 0), visit);
    } catch {
      // a bootstrap the walk refuses (workers served what they could of it): what was found stays
    }
    for (const key of chunks) this.places.set(key, null);
    for (const nid of nids) this.unnamed.add(nid);
  }

  private unknown(nid: number): boolean {
    return !this.files.has(nid) && !this.unnamed.has(nid);
  }

  private name(e: WalkEntry): void {
    if (!this.unknown(e.nid)) return;
    // walk paths are byte strings (latin1); a trace's are text
    const path = Buffer.from(e.path, 'latin1').toString('utf8');
    if (path.length <= MAX_TRACE_PATH) this.files.set(e.nid, { path, size: e.inode.size });
    else this.unnamed.add(e.nid);
  }
}

/** Record indexes ordered by time (their first field), earlier records first among equal times. */
function timeOrder(values: Float64Array, fields: number, count: number): Uint32Array {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  return order.sort((a, b) => values[a * fields]! - values[b * fields]! || a - b);
}

/** `items` until `done()` says stop (checked before each). */
function* until<T>(items: Iterable<T>, done: () => boolean): Generator<T> {
  for (const item of items) {
    if (done()) return;
    yield item;
  }
}
