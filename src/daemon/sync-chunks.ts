// Pieces the synchronous chunk sources of the FUSE workers share (local blob files, lazy cache).
import { readSync } from 'node:fs';
import { ChunkIntegrityError } from '../blobcache/chunk-decoder.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';

/**
 * A few recently decoded chunks per serving thread: kernel readahead asks for one chunk's pages in
 * several requests, and decoding (or even a pread) per request would repeat the work.
 */
export class ChunkLru {
  private readonly entries = new Map<string, Buffer>();

  constructor(private readonly capacity: number) {}

  /** The chunk `blobIndex:ciIndex`, marked most recently used. */
  get(key: string): Buffer | undefined {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    return hit;
  }

  /** The cached chunk, or what `load` gives (then cached). */
  getOrLoad(ref: ChunkRef, load: () => Buffer): Buffer {
    const key = `${ref.blobIndex}:${ref.ciIndex}`;
    const hit = this.get(key);
    if (hit) return hit;
    const data = load();
    this.put(key, data);
    return data;
  }

  put(key: string, data: Buffer): void {
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, data);
  }

  clear(): void {
    this.entries.clear();
  }
}

export function blobOf(blobs: readonly BlobInfo[], ref: ChunkRef): BlobInfo {
  const blob = blobs[ref.blobIndex];
  if (!blob) throw new ChunkIntegrityError('?', ref.ciIndex, `blob index ${ref.blobIndex} is not in the image`);
  return blob;
}

/** Exactly `length` bytes at `position` of `fd`; a file that ends first is an integrity error. */
export function preadExact(fd: number, length: number, position: number, blob: BlobInfo, ref: ChunkRef, what: string): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `${what} ends before ${position + length}`);
    done += n;
  }
  return buf;
}
