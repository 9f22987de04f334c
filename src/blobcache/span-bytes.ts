// Stored bytes of SOCI-indexed layers' spans (SPANS blobs, rafs/span-blob.ts), kept a while once
// verified. A chunk that runs from one span into the next needs both, whole: without these, its
// request fetches again the span its neighbours were just decoded from (on debian-ml at soci's
// 4 MiB spans, every span boundary of a program being started). A span is kept only if its bytes
// match the digest its checkpoint gives, so a kept span is as good as a fetched one; what decodes
// from them is checked again as always.
import { checkpointStart, spanEnd, spanEndingAt } from '../rafs/checkpoints.js';
import { spanMatches } from '../rafs/span-blob.js';
import type { BlobInfo } from '../rafs/tree.js';

/** Most bytes kept: a few dozen spans, what one start's requests overlap within. */
const MAX_BYTES = 64 << 20;

/** `length` bytes at `offset` of the blob's stored bytes, from its backend. */
export type StoredRead = (offset: number, length: number) => Promise<Buffer>;

export class SpanBytes {
  /** Kept spans by `blobId:span`, least recently used first. */
  private readonly kept = new Map<string, Buffer>();
  private bytes = 0;

  /**
   * The stored bytes [start, start + length) of SPANS blob `blob` (whole spans, from a checkpoint's
   * start to a span's end): kept spans at either end are not fetched again, the rest is read with
   * `read`. Returns the bytes and how many were read.
   */
  async read(blob: BlobInfo, start: number, length: number, read: StoredRead): Promise<{ bytes: Buffer; fetched: number }> {
    const spans = this.spansIn(blob, start, start + length);
    if (spans.length === 0) return { bytes: await read(start, length), fetched: length };
    let first = 0;
    while (first < spans.length && this.kept.has(this.key(blob, spans[first]!))) first++;
    let last = spans.length - 1;
    while (last >= first && this.kept.has(this.key(blob, spans[last]!))) last--;
    const out = Buffer.allocUnsafe(length);
    let fetched = 0;
    if (first <= last) {
      const cps = blob.checkpoints!;
      const from = checkpointStart(cps[spans[first]!]!);
      const to = spanEnd(cps, spans[last]!, blob.compressedSize);
      const middle = await read(from, to - from);
      fetched = middle.length;
      middle.copy(out, from - start);
    }
    for (const k of [...spans.slice(0, first), ...spans.slice(last + 1)]) {
      const kept = this.take(this.key(blob, k))!;
      kept.copy(out, checkpointStart(blob.checkpoints![k]!) - start);
    }
    this.keep(blob, spans, start, out);
    return { bytes: out, fetched };
  }

  /** The spans that make up [start, end) exactly; none when it is not whole spans (then it is read as it is). */
  private spansIn(blob: BlobInfo, start: number, end: number): number[] {
    const cps = blob.checkpoints ?? [];
    const first = cps.findIndex((c) => checkpointStart(c) === start);
    const last = first < 0 ? undefined : spanEndingAt(cps, first, end, blob.compressedSize);
    return last === undefined ? [] : Array.from({ length: last - first + 1 }, (_, i) => first + i);
  }

  /** Keeps each of `spans` in `bytes` (stored bytes from `start`) whose digest matches its checkpoint's. */
  private keep(blob: BlobInfo, spans: readonly number[], start: number, bytes: Buffer): void {
    const cps = blob.checkpoints!;
    for (const k of spans) {
      const from = checkpointStart(cps[k]!) - start;
      const span = bytes.subarray(from, spanEnd(cps, k, blob.compressedSize) - start);
      if (span.length > MAX_BYTES / 4 || !spanMatches(blob, k, bytes, start)) continue;
      const key = this.key(blob, k);
      this.take(key);
      this.kept.set(key, Buffer.from(span));
      this.bytes += span.length;
    }
    for (const [key, b] of this.kept) {
      if (this.bytes <= MAX_BYTES) break;
      this.kept.delete(key);
      this.bytes -= b.length;
    }
  }

  /** Removes and returns a kept span (read spans are kept again, as the most recent). */
  private take(key: string): Buffer | undefined {
    const b = this.kept.get(key);
    if (b) {
      this.kept.delete(key);
      this.bytes -= b.length;
    }
    return b;
  }

  private key(blob: BlobInfo, span: number): string {
    return `${blob.blobId}:${span}`;
  }
}
