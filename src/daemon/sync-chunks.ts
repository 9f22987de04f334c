// Pieces the synchronous chunk sources of the FUSE workers share (local blob files, lazy cache).
import { readSync } from 'node:fs';
import { ChunkIntegrityError } from '../blobcache/chunk-decoder.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';

/** Buffers kept for reuse beyond the LRU's own (so a burst of evictions does not pile up memory). */
const SPARE_BUFFERS = 2;

/**
 * A few recently decoded chunks per serving thread: kernel readahead asks for one chunk's pages in
 * several requests, and decoding (or even a pread) per request would repeat the work. The chunk
 * buffers are recycled: a worker thread never returns to its event loop, so memory it lets go of is
 * only reclaimed when V8 gets round to it, and a fresh megabyte per chunk read grows the process by
 * hundreds of megabytes. An evicted buffer may still be part of the reply being built, so it only
 * becomes reusable at `recycle()`, which the worker calls once that reply is written.
 */
export class ChunkLru {
  private readonly entries = new Map<string, Buffer>();
  private evicted: ArrayBuffer[] = [];
  private spare: ArrayBuffer[] = [];

  constructor(private readonly capacity: number) {}

  /** The cached chunk, or what `load` writes into a buffer of the chunk's uncompressed size (then cached). */
  getOrLoad(ref: ChunkRef, load: (into: Buffer) => void): Buffer {
    const key = `${ref.blobIndex}:${ref.ciIndex}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const into = this.buffer(ref.uncompressedSize);
    load(into);
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next().value!;
      this.evicted.push(this.entries.get(oldest)!.buffer as ArrayBuffer);
      this.entries.delete(oldest);
    }
    this.entries.set(key, into);
    return into;
  }

  private buffer(size: number): Buffer {
    const i = this.spare.findIndex((b) => b.byteLength >= size);
    const ab = i >= 0 ? this.spare.splice(i, 1)[0]! : new ArrayBuffer(size);
    return Buffer.from(ab, 0, size);
  }

  /** The reply that may have used evicted chunks is written: their buffers may be reused. */
  recycle(): void {
    if (this.evicted.length === 0) return;
    this.spare.push(...this.evicted);
    this.evicted = [];
    // the largest are the most reusable
    if (this.spare.length > SPARE_BUFFERS) this.spare = this.spare.sort((a, b) => b.byteLength - a.byteLength).slice(0, SPARE_BUFFERS);
  }

  clear(): void {
    this.entries.clear();
    this.evicted = [];
    this.spare = [];
  }
}

export function blobOf(blobs: readonly BlobInfo[], ref: ChunkRef): BlobInfo {
  const blob = blobs[ref.blobIndex];
  if (!blob) throw new ChunkIntegrityError('?', ref.ciIndex, `blob index ${ref.blobIndex} is not in the image`);
  return blob;
}

/** Fills `into` from `position` of `fd`; a file that ends first is an integrity error. */
export function preadExact(fd: number, into: Buffer, position: number, blob: BlobInfo, ref: ChunkRef, what: string): Buffer {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `${what} ends before ${position + into.length}`);
    done += n;
  }
  return into;
}
