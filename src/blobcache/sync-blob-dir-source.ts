// File data of a locally stored image for a FUSE worker: `<dir>/<blobId>` blob files read with
// fs.readSync, each chunk decoded and verified before it is returned.
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkIntegrityError, decodeChunk } from './chunk-decoder.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import { ChunkLru, blobOf, largestChunk, preadExact, type SyncChunkSource } from './sync-chunks.js';
import { isBlobId } from '../rafs/blob.js';
import type { DecodedSpill } from './decoded-spill.js';

/** Room for the parts of one reply read from spill files (a FUSE read is at most 1 MiB). */
const PARTS_BYTES = 1 << 20;

/**
 * Chunks from `<dir>/<blobId>` files read with fs.readSync, decoded and verified, with a small LRU
 * of decoded chunks (kernel readahead asks for one chunk's pages in several requests), and, given
 * `spill`, chunks a random reader comes back to read from their decoded copies (decoded-spill.ts).
 */
export class SyncBlobDirSource implements SyncChunkSource {
  private readonly fds = new Map<number, number>();

  private readonly cache: ChunkLru;
  /** Stored (compressed) bytes of the chunk being decoded: only needed until it is. */
  private scratch = Buffer.alloc(0);
  /** Parts read from spill files for the reply being built (valid until `recycle()`), and how much is used. */
  private readonly parts = Buffer.allocUnsafeSlow(PARTS_BYTES);
  private partsUsed = 0;

  constructor(private readonly dir: string, private readonly blobs: readonly BlobInfo[], private readonly spill?: DecodedSpill, cacheChunks = 8) {
    this.cache = new ChunkLru(cacheChunks, largestChunk(blobs));
  }

  read(ref: ChunkRef): Buffer {
    return this.cache.getOrLoad(ref, (into) => {
      if (this.spill?.has(ref) && this.spill.read(ref, 0, into)) return;
      const blob = blobOf(this.blobs, ref);
      if (this.scratch.length < ref.compressedSize) this.scratch = Buffer.allocUnsafeSlow(ref.compressedSize);
      const stored = preadExact(this.fd(ref.blobIndex, blob), this.scratch.subarray(0, ref.compressedSize), ref.compressedOffset, blob, ref, 'blob file');
      decodeChunk(blob, ref, stored, into);
      this.spill?.decoded(ref, into);
    });
  }

  /** `length` bytes of the chunk from `start`: from its decoded copy on disk when it has one and the LRU does not. */
  readPart(ref: ChunkRef, start: number, length: number): Buffer {
    if (this.spill?.has(ref) && !this.cache.has(ref) && this.partsUsed + length <= this.parts.length) {
      const part = this.parts.subarray(this.partsUsed, this.partsUsed + length);
      if (this.spill.read(ref, start, part)) {
        this.partsUsed += length;
        return part;
      }
    }
    return this.read(ref).subarray(start, start + length);
  }

  recycle(): void {
    this.cache.recycle();
    this.partsUsed = 0;
  }

  private fd(index: number, blob: BlobInfo): number {
    let fd = this.fds.get(index);
    if (fd === undefined) {
      if (!isBlobId(blob.blobId)) throw new ChunkIntegrityError(blob.blobId, 0, 'invalid blob id');
      fd = openSync(join(this.dir, blob.blobId), 'r');
      this.fds.set(index, fd);
    }
    return fd;
  }

  close(): void {
    this.spill?.close();
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    this.cache.clear();
  }
}
