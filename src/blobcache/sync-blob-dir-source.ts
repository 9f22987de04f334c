// File data of a locally stored image for a FUSE worker: `<dir>/<blobId>` blob files read with
// fs.readSync, each chunk decoded and verified before it is returned.
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkIntegrityError, decodeChunk } from './chunk-decoder.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import { ChunkLru, blobOf, largestChunk, preadExact, type SyncChunkSource } from './sync-chunks.js';
import { isBlobId } from '../rafs/blob.js';

/**
 * Chunks from `<dir>/<blobId>` files read with fs.readSync, decoded and verified, with a small LRU
 * of decoded chunks (kernel readahead asks for one chunk's pages in several requests).
 */
export class SyncBlobDirSource implements SyncChunkSource {
  private readonly fds = new Map<number, number>();

  private readonly cache: ChunkLru;
  /** Stored (compressed) bytes of the chunk being decoded: only needed until it is. */
  private scratch = Buffer.alloc(0);

  constructor(private readonly dir: string, private readonly blobs: readonly BlobInfo[], cacheChunks = 8) {
    this.cache = new ChunkLru(cacheChunks, largestChunk(blobs));
  }

  read(ref: ChunkRef): Buffer {
    return this.cache.getOrLoad(ref, (into) => {
      const blob = blobOf(this.blobs, ref);
      if (this.scratch.length < ref.compressedSize) this.scratch = Buffer.allocUnsafeSlow(ref.compressedSize);
      const stored = preadExact(this.fd(ref.blobIndex, blob), this.scratch.subarray(0, ref.compressedSize), ref.compressedOffset, blob, ref, 'blob file');
      decodeChunk(blob, ref, stored, into);
    });
  }

  recycle(): void {
    this.cache.recycle();
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
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    this.cache.clear();
  }
}
