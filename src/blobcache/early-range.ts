// A backend that starts reading a blob's leading bytes before anyone asks for them: an optimized
// image's hot region (its size is on the manifest's layer) is asked for as one request once the
// bootstrap has arrived, while it is unpacked and opened and the mount is made. Reads that fall
// inside that range are then answered from it as its bytes arrive: the startup fetch keeps the link
// busy from then on, with no gap between its runs. Anything else, and everything
// after the early read failed or was released, goes to the backend underneath. The bytes are the
// blob's as any read of it gives them: every chunk is verified above, as always.
import type { BlobBackend } from './backend.js';

/** Larger leading ranges are not read ahead (they are held in memory until released). */
export const EARLY_RANGE_MAX = 64 << 20;

type Progress = (buf: Buffer, filled: number) => void;

class EarlyRead {
  buf: Buffer | undefined;
  filled = 0;
  failed = false;
  private waiters: (() => void)[] = [];

  constructor(readonly length: number) {}

  arrived(buf: Buffer, filled: number): void {
    this.buf = buf;
    this.filled = filled;
    this.wakeAll();
  }

  fail(): void {
    this.failed = true;
    this.buf = undefined;
    this.wakeAll();
  }

  /** Resolves once `end` bytes are in (true), or the read failed or `signal` gave up (false). */
  async until(end: number, signal?: AbortSignal): Promise<boolean> {
    while (!this.failed && this.filled < end) {
      if (signal?.aborted) return false;
      await new Promise<void>((wake) => {
        this.waiters.push(wake);
        signal?.addEventListener('abort', () => wake(), { once: true });
      });
    }
    return !this.failed && this.buf !== undefined;
  }

  private wakeAll(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

export class EarlyRangeBackend implements BlobBackend {
  private readonly reads = new Map<string, EarlyRead>();
  private readonly abort = new AbortController();

  constructor(private readonly inner: BlobBackend) {}

  /** Starts reading bytes [0, length) of `blobId` now (once per blob; not above EARLY_RANGE_MAX). */
  start(blobId: string, length: number): void {
    if (this.reads.has(blobId) || length <= 0 || length > EARLY_RANGE_MAX) return;
    const read = new EarlyRead(length);
    this.reads.set(blobId, read);
    this.inner.readRange(blobId, 0, length, (buf, filled) => read.arrived(buf, filled), this.abort.signal).then(
      (buf) => read.arrived(buf, length),
      () => read.fail(),
    );
  }

  async readRange(blobId: string, offset: number, length: number, progress?: Progress, signal?: AbortSignal): Promise<Buffer> {
    const read = this.reads.get(blobId);
    const end = offset + length;
    if (read && offset >= 0 && end <= read.length && (await read.until(end, signal))) {
      // a copy: the early buffer is dropped on release, and readers may keep what they are given
      const out = Buffer.from(read.buf!.subarray(offset, end));
      progress?.(out, length);
      return out;
    }
    if (signal?.aborted) throw signal.reason ?? new Error('aborted');
    return this.inner.readRange(blobId, offset, length, progress, signal);
  }

  /** Drops the early bytes (the startup fetch is over); reads go to the backend underneath from now on. */
  release(): void {
    this.abort.abort();
    for (const read of this.reads.values()) read.fail();
    this.reads.clear();
  }

  demote(blobId: string): void {
    // bytes that did not verify: never serve that blob from the early read again
    this.reads.get(blobId)?.fail();
    this.reads.delete(blobId);
    this.inner.demote?.(blobId);
  }

  size(blobId: string): Promise<number> {
    return this.inner.size(blobId);
  }

  async close(): Promise<void> {
    this.release();
    await this.inner.close();
  }
}
