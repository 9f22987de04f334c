// Synchronous chunk sources, for threads that never return to their event loop (the FUSE
// workers): what they are, and the pieces the two kinds (a blob directory, the lazy cache) share.
import { readSync } from 'node:fs';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import { ChunkIntegrityError } from './chunk-decoder.js';

/** Verified uncompressed bytes of chunks, synchronously. */
export interface SyncChunkSource {
  /**
   * The chunk's bytes, valid until `recycle()` is called. A read of a file says which (`nid`) and
   * where the chunk starts in it, for the main thread to record with a fetch.
   */
  read(ref: ChunkRef, nid?: number, fileOffset?: number): Buffer;
  /**
   * A read is about to ask for these chunks one after another (file `nid`'s, starting at `fileOffsets`):
   * a lazy source has the missing ones fetched together now, rather than one round trip each.
   */
  want?(refs: readonly ChunkRef[], nid: number, fileOffsets: readonly number[]): void;
  /** `length` bytes of the chunk from `start` (valid until `recycle()`), where a source can read less than the whole chunk. */
  readPart?(ref: ChunkRef, start: number, length: number): Buffer;
  /** Chunks this source has had to have fetched so far (a lazy source): a change across a read means it waited. */
  readonly fetched?: number;
  /** The reply built from earlier reads is written: their buffers may be reused. */
  recycle(): void;
  close(): void;
}

/** Where a synchronous source counts what it served from the cache and what it had to ask for. */
export interface ChunkCounters {
  chunkHit(): void;
  chunkMiss(): void;
}

/**
 * A few recently decoded chunks per serving thread: kernel readahead asks for one chunk's pages in
 * several requests, and decoding (or even a pread) per request would repeat the work. The chunk
 * buffers are recycled: a worker thread never returns to its event loop, so memory it lets go of is
 * only reclaimed when V8 gets round to it, and a fresh megabyte per chunk read grows the process by
 * hundreds of megabytes. So every buffer has room for a whole chunk, and the LRU's buffers are all
 * there ever are (plus those evicted during one request). An evicted buffer may still be part of the
 * reply being built, so it only becomes reusable at `recycle()`, which the worker calls once that
 * reply is written.
 */
/** Free buffers kept between requests. */
const SPARE_BUFFERS = 2;

export class ChunkLru {
  private readonly entries = new Map<string, Buffer>();
  private evicted: ArrayBuffer[] = [];
  private spare: ArrayBuffer[] = [];

  /** `capacity` chunks of up to `chunkSize` bytes. */
  constructor(private readonly capacity: number, private readonly chunkSize: number) {}

  /** The cached chunk, or what `load` writes into a buffer of the chunk's uncompressed size (then cached). */
  getOrLoad(ref: ChunkRef, load: (into: Buffer) => void): Buffer {
    const key = keyOf(ref);
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
    const reusable = this.spare.length > 0 && this.spare[this.spare.length - 1]!.byteLength >= size;
    const ab = reusable ? this.spare.pop()! : new ArrayBuffer(Math.max(size, this.chunkSize));
    return Buffer.from(ab, 0, size);
  }

  /** The reply that may have used evicted chunks is written: their buffers may be reused. */
  recycle(): void {
    if (this.evicted.length === 0) return;
    // every buffer fits every chunk: a couple kept for the next loads is all it takes
    this.spare = [...this.spare, ...this.evicted].slice(-SPARE_BUFFERS);
    this.evicted = [];
  }

  /** Whether the chunk is held. */
  has(ref: ChunkRef): boolean {
    return this.entries.has(keyOf(ref));
  }

  clear(): void {
    this.entries.clear();
    this.evicted = [];
    this.spare = [];
  }
}

const keyOf = (ref: ChunkRef): string => `${ref.blobIndex}:${ref.ciIndex}`;

/** The chunk size a buffer must hold for any chunk of these blobs. */
export const largestChunk = (blobs: readonly BlobInfo[]): number => blobs.reduce((m, b) => Math.max(m, b.chunkSize), 4096);

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
