// Readahead for on-demand misses, per blob, in the manner of the kernel's: a miss that lands in (or
// right after) the window of the previous miss means the reader goes forward through the blob, so
// the window doubles (up to a limit) and the chunks after it are fetched in the background; a miss
// elsewhere reads nothing ahead and starts over (on a slow link every byte read ahead for a random
// reader is a byte the reader waits behind). The point is pipelining: the
// next request is on the wire while the reader is still busy with the last one, instead of one
// round trip per miss. What to fetch is decided here; the fetching is the caller's.
import type { ChunkRef } from '../rafs/tree.js';

export interface ReadaheadOptions {
  /** First window, in compressed bytes after the missed chunk. Default 1 MiB; 0 turns readahead off. */
  initial?: number;
  /** Largest window. Default 8 MiB. */
  max?: number;
}

interface Window {
  start: number;
  end: number;
  size: number;
}

export class Readahead {
  private readonly initial: number;
  private readonly max: number;
  private readonly windows = new Map<string, Window>();

  constructor(options: ReadaheadOptions = {}) {
    this.initial = options.initial ?? 1 << 20;
    this.max = Math.max(options.max ?? 8 << 20, this.initial);
  }

  /**
   * The chunks to read ahead after a miss on `ref` of blob `blobId`, whose chunks sorted by
   * compressed offset are `table`.
   */
  onMiss(blobId: string, ref: ChunkRef, table: readonly ChunkRef[]): ChunkRef[] {
    if (this.initial === 0 || table.length === 0) return [];
    const at = ref.compressedOffset;
    const last = this.windows.get(blobId);
    const sequential = last !== undefined && at >= last.start && at <= last.end + this.initial;
    if (!sequential) {
      // one miss says nothing about the next: remember where a sequential reader would go on
      this.windows.set(blobId, { start: at, end: at + ref.compressedSize, size: this.initial / 2 });
      return [];
    }
    const size = Math.min(last.size * 2, this.max);
    // the reader has had the last window already: the new one follows it
    const begin = Math.max(at + ref.compressedSize, last.end);
    const end = begin + size;
    this.windows.set(blobId, { start: at, end, size });
    const out: ChunkRef[] = [];
    for (let i = firstAtOrAfter(table, begin); i < table.length && table[i]!.compressedOffset < end; i++) out.push(table[i]!);
    return out;
  }
}

function firstAtOrAfter(table: readonly ChunkRef[], offset: number): number {
  let lo = 0;
  let hi = table.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (table[mid]!.compressedOffset < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
