// The reads a FUSE worker served, handed to the main thread for the mounts' access traces. A worker
// never returns to its event loop and may sit in read(2) on /dev/fuse for hours, so a batch it
// buffered itself would reach the main thread only with its next request; instead each worker
// writes its records into a ring in shared memory that the main thread drains whenever it wants
// the trace so far (and when the worker asks for a chunk, nudges it, or exits). One writer (the
// worker moves `head`), one reader (the main thread moves `tail`): no locks, a few stores per read.
// If the main thread falls a whole ring behind, records are dropped and counted (the trace says
// `truncated`), never waited for.

/** Records per ring (a power of two). */
export const RING_RECORDS = 8192;
const MASK = RING_RECORDS - 1;
/** The worker nudges the main thread once this many records wait. */
export const NUDGE_AT = 512;
const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const HEADER_BYTES = 16;
/** Per record: t and offset (Float64), then slot with the miss bit, nid and length (Uint32). */
const F64_PER_RECORD = 2;
const U32_PER_RECORD = 3;
const MISS_BIT = 0x8000_0000;

export const newTraceRing = (): SharedArrayBuffer =>
  new SharedArrayBuffer(HEADER_BYTES + RING_RECORDS * (F64_PER_RECORD * 8 + U32_PER_RECORD * 4));

interface RingViews {
  words: Int32Array;
  f64: Float64Array;
  u32: Uint32Array;
}

function views(ring: SharedArrayBuffer): RingViews {
  const f64Bytes = RING_RECORDS * F64_PER_RECORD * 8;
  return {
    words: new Int32Array(ring, 0, HEADER_BYTES / 4),
    f64: new Float64Array(ring, HEADER_BYTES, RING_RECORDS * F64_PER_RECORD),
    u32: new Uint32Array(ring, HEADER_BYTES + f64Bytes, RING_RECORDS * U32_PER_RECORD),
  };
}

/** Where drained records go: the read, with its time as performance.timeOrigin + performance.now() (ms). */
export interface TraceReadSink {
  read(slot: number, at: number, nid: number, offset: number, length: number, miss: boolean): void;
  /** Records lost because the ring was full (no slot known). */
  dropped(count: number): void;
}

/** A worker's side. */
export class TraceRingWriter {
  /** performance.now() when the request being served arrived (the worker sets it per request). */
  arrived = 0;
  private readonly v: RingViews;
  private readonly origin = performance.timeOrigin;
  private head = 0;

  constructor(ring: SharedArrayBuffer, private readonly nudge: () => void) {
    this.v = views(ring);
  }

  /** A read of file `nid` of the image in `slot`, served for the request that arrived at `arrived`. */
  read(slot: number, nid: number, offset: number, length: number, miss: boolean): void {
    const { words, f64, u32 } = this.v;
    const head = this.head;
    const waiting = (head - Atomics.load(words, TAIL)) | 0;
    if (waiting >= RING_RECORDS) {
      Atomics.add(words, DROPPED, 1);
      return;
    }
    const i = head & MASK;
    f64[i * F64_PER_RECORD] = this.origin + this.arrived;
    f64[i * F64_PER_RECORD + 1] = offset;
    u32[i * U32_PER_RECORD] = miss ? (slot | MISS_BIT) >>> 0 : slot;
    u32[i * U32_PER_RECORD + 1] = nid;
    u32[i * U32_PER_RECORD + 2] = length;
    this.head = (head + 1) | 0;
    // the store publishes the record: the reader loads head before it reads what lies below it
    Atomics.store(words, HEAD, this.head);
    if (waiting + 1 === NUDGE_AT) this.nudge();
  }
}

/** The main thread's side. */
export class TraceRingReader {
  private readonly v: RingViews;

  constructor(ring: SharedArrayBuffer) {
    this.v = views(ring);
  }

  /** Hands every record written so far to `sink`, oldest first, and frees their room. */
  drain(sink: TraceReadSink): void {
    const { words, f64, u32 } = this.v;
    const head = Atomics.load(words, HEAD);
    let tail = Atomics.load(words, TAIL);
    for (; tail !== head; tail = (tail + 1) | 0) {
      const i = tail & MASK;
      const first = u32[i * U32_PER_RECORD]!;
      sink.read((first & ~MISS_BIT) >>> 0, f64[i * F64_PER_RECORD]!, u32[i * U32_PER_RECORD + 1]!, f64[i * F64_PER_RECORD + 1]!, u32[i * U32_PER_RECORD + 2]!, (first & MISS_BIT) !== 0);
    }
    Atomics.store(words, TAIL, tail);
    const dropped = Atomics.exchange(words, DROPPED, 0);
    if (dropped > 0) sink.dropped(dropped);
  }
}
