// Lazy loading for a FUSE worker: chunks come from the blob cache directory, read synchronously
// (`<blobId>.blob.data` by pread once the chunk's bit is set in `<blobId>.blob.data.chunk_map`; the
// cache only ever marks verified data). On a miss the worker asks the main thread, which owns the
// BlobCache (and its fetcher: merged Range requests, verification), and blocks on Atomics.wait over
// its own reply slot until the main thread says the chunk is cached, or failed, or the wait times
// out (a dead registry is EIO, never a hang). A chunk read from the cache files is checked against
// this image's own digest the first time this source serves it: the cache is shared with other
// images, whose bootstraps may describe the same blob id differently, and a ready chunk's bytes
// never change after that (the cache never writes over a ready chunk), so one check suffices.
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkIntegrityError } from '../blobcache/chunk-decoder.js';
import { digest } from '../native/index.js';
import { CHUNK_DATA_SUFFIX, CHUNK_MAP_ALL_READY, chunkBit, chunkMapPath } from '../blobcache/chunk-map.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import { ChunkLru, blobOf, largestChunk, preadExact } from './sync-chunks.js';
import type { SyncChunkSource } from './fs.js';
import type { ChunkCounters } from './metrics.js';
import { isBlobId } from '../rafs/blob.js';

/**
 * Int32 words of a worker's reply slot: [0] id of the last answered request, [1] its status, [2]
 * the last id the worker issued. The ids live in the slot, not in a chunk source: a worker serves
 * several images (a source each) through its one slot, and two sources counting from 1 each would
 * take an old answer to one for the new request.
 */
export const SLOT_WORDS = 3;
export const STATUS_OK = 1;
export const STATUS_FAILED = 2;
/** How long a worker waits for the main thread to fetch one chunk. */
export const DEFAULT_FETCH_TIMEOUT_MS = 30_000;

/** A worker's request for a chunk that is not in the cache. */
export interface FetchRequest {
  type: 'fetch';
  id: number;
  /** The image (its slot in the mount). */
  slot: number;
  blobIndex: number;
  ciIndex: number;
}

/** Main-thread side: answer request `id` in a worker's slot and wake the worker. */
export function answerFetch(slot: Int32Array, id: number, ok: boolean): void {
  Atomics.store(slot, 1, ok ? STATUS_OK : STATUS_FAILED);
  Atomics.store(slot, 0, id);
  Atomics.notify(slot, 0);
}

interface BlobFiles {
  data: number;
  map: number;
  allReady: boolean;
  /** Chunks whose bytes in these files matched this image's digest. */
  verified: Set<number>;
}

export class SyncLazyCacheSource implements SyncChunkSource {
  private readonly files = new Map<number, BlobFiles>();
  private readonly cache: ChunkLru;
  private readonly slot: Int32Array;

  constructor(
    private readonly dir: string,
    private readonly blobs: readonly BlobInfo[],
    slot: SharedArrayBuffer,
    private readonly ask: (req: Omit<FetchRequest, 'slot'>) => void,
    private readonly timeoutMs = DEFAULT_FETCH_TIMEOUT_MS,
    private readonly counters?: ChunkCounters,
    cacheChunks = 8,
  ) {
    this.cache = new ChunkLru(cacheChunks, largestChunk(blobs));
    this.slot = new Int32Array(slot);
  }

  read(ref: ChunkRef): Buffer {
    return this.cache.getOrLoad(ref, (into) => {
      const blob = blobOf(this.blobs, ref);
      let files = this.open(ref.blobIndex, blob);
      const verified = files.verified.has(ref.ciIndex);
      if (verified || this.isReady(files, ref.ciIndex)) this.counters?.chunkHit();
      else {
        this.counters?.chunkMiss();
        this.fetch(blob, ref);
        // the main thread stored it; if the files this thread holds do not say so, they were
        // replaced (a cache cleaned under the daemon): read the current ones, and never a hole
        if (!this.isReady(files, ref.ciIndex)) {
          this.closeFiles(ref.blobIndex);
          files = this.open(ref.blobIndex, blob);
          if (!this.isReady(files, ref.ciIndex)) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, 'fetched, but the cache files do not hold it');
        }
      }
      preadExact(files.data, into, ref.uncompressedOffset, blob, ref, 'cache data file');
      if (verified) return;
      if (!digest(blob.digester, into).equals(ref.digest)) {
        throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, 'the cached bytes do not match this image\'s chunk digest (another image described this chunk differently)');
      }
      files.verified.add(ref.ciIndex);
    });
  }

  recycle(): void {
    this.cache.recycle();
  }

  /** Asks the main thread to bring the chunk into the cache; returns once it is there, throws otherwise. */
  private fetch(blob: BlobInfo, ref: ChunkRef): void {
    const id = Atomics.add(this.slot, 2, 1) + 1;
    this.ask({ type: 'fetch', id, blobIndex: ref.blobIndex, ciIndex: ref.ciIndex });
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const seen = Atomics.load(this.slot, 0);
      if (seen === id) break;
      const left = deadline - Date.now();
      if (left <= 0) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `fetching the chunk timed out after ${this.timeoutMs} ms`);
      Atomics.wait(this.slot, 0, seen, left);
    }
    if (Atomics.load(this.slot, 1) !== STATUS_OK) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, 'fetching the chunk failed (see the daemon log)');
  }

  private isReady(files: BlobFiles, ciIndex: number): boolean {
    if (files.allReady) return true;
    const { offset, mask } = chunkBit(ciIndex);
    const b = Buffer.alloc(1);
    if (readSync(files.map, b, 0, 1, offset) !== 1) return false;
    return (b[0]! & mask) !== 0;
  }

  private open(index: number, blob: BlobInfo): BlobFiles {
    let f = this.files.get(index);
    if (!f) {
      if (!isBlobId(blob.blobId)) throw new ChunkIntegrityError(blob.blobId, 0, 'invalid blob id');
      // the main thread opened (created) both files before any worker started
      const data = openSync(join(this.dir, blob.blobId + CHUNK_DATA_SUFFIX), 'r');
      const map = openSync(chunkMapPath(this.dir, blob.blobId), 'r');
      const header = Buffer.alloc(16);
      const n = readSync(map, header, 0, 16, 0);
      f = { data, map, allReady: n === 16 && header.readUInt32LE(12) === CHUNK_MAP_ALL_READY, verified: new Set() };
      this.files.set(index, f);
    }
    return f;
  }

  private closeFiles(index: number): void {
    const f = this.files.get(index);
    if (!f) return;
    closeSync(f.data);
    closeSync(f.map);
    this.files.delete(index);
  }

  close(): void {
    for (const index of [...this.files.keys()]) this.closeFiles(index);
    this.cache.clear();
  }
}
