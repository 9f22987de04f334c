// A pull reader over an async iterable of byte chunks: hands out zero-copy slices of the chunks it
// was given, and copies only when a small read (a header) straddles two chunks.

const EMPTY = Buffer.alloc(0);

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`tar source yielded ${typeof chunk === 'string' ? 'a string' : typeof chunk}, expected Buffer/Uint8Array chunks`);
}

export class ChunkReader {
  private readonly it: AsyncIterator<unknown>;
  private chunk: Buffer = EMPTY;
  private pos = 0;
  private eof = false;
  /** Stream offset of the next unread byte. */
  offset = 0;

  constructor(source: AsyncIterable<unknown>) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** Bytes readable without awaiting. */
  get buffered(): number {
    return this.chunk.length - this.pos;
  }

  /** Makes at least one byte readable; false at the end of the source. */
  async fill(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      if (this.eof) return false;
      const r = await this.it.next();
      if (r.done) {
        this.eof = true;
        this.chunk = EMPTY;
        this.pos = 0;
        return false;
      }
      this.chunk = toBuffer(r.value);
      this.pos = 0;
    }
    return true;
  }

  /** A zero-copy slice of up to `max` buffered bytes (call when `buffered > 0`). */
  take(max: number): Buffer {
    const n = Math.min(max, this.chunk.length - this.pos);
    const out = this.chunk.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /**
   * Reads exactly `n` bytes as one Buffer: a view into the chunk when it holds them all (unless
   * `copy`), else a copy into `scratch` (when big enough) or a new buffer. At the end of the
   * source, returns how many bytes were there instead.
   */
  async readExact(n: number, opts: { copy?: boolean; scratch?: Buffer } = {}): Promise<Buffer | number> {
    if (n === 0) return EMPTY;
    if (this.buffered >= n && !opts.copy) return this.take(n);
    if (this.buffered === 0 && !(await this.fill())) return 0;
    if (this.buffered >= n && !opts.copy) return this.take(n);
    const out = opts.scratch && opts.scratch.length >= n ? opts.scratch.subarray(0, n) : Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (this.buffered === 0 && !(await this.fill())) return got;
      const part = this.take(n - got);
      part.copy(out, got);
      got += part.length;
    }
    return out;
  }

  /** Skips `n` bytes; returns how many were skipped (fewer at the end of the source). */
  async skip(n: number): Promise<number> {
    let done = 0;
    while (done < n) {
      if (this.buffered === 0 && !(await this.fill())) break;
      done += this.take(n - done).length;
    }
    return done;
  }

  /** Reads and discards everything up to the end of the source. */
  async drain(): Promise<void> {
    this.offset += this.buffered;
    this.pos = this.chunk.length;
    while (await this.fill()) {
      this.offset += this.buffered;
      this.pos = this.chunk.length;
    }
  }

  /** Lets the source release its resources (a no-op once it has ended). */
  async close(): Promise<void> {
    if (this.eof) return;
    this.eof = true;
    this.chunk = EMPTY;
    this.pos = 0;
    await this.it.return?.();
  }
}
