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
import { ChunkIntegrityError } from './chunk-decoder.js';
import { digest } from '../native/index.js';
import { CHUNK_DATA_SUFFIX, CHUNK_MAP_ALL_READY, chunkBit, chunkMapPath } from './chunk-map.js';
import { MAX_CHUNK_SIZE } from '../rafs/superblock.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import { ChunkLru, blobOf, largestChunk, preadExact, type ChunkCounters, type SyncChunkSource } from './sync-chunks.js';
import { isBlobId } from '../rafs/blob.js';
import { isSpansBlob } from '../rafs/span-blob.js';

/**
 * Int32 words of a worker's reply slot: [0] id of the last answered request, [1] its status, [2]
 * the last id the worker issued, [3] the length of the bytes handed over (STATUS_BYTES). The ids
 * live in the slot, not in a chunk source: a worker serves several images (a source each) through
 * its one slot, and two sources counting from 1 each would take an old answer to one for the new
 * request. After the words comes room for one chunk: a fetched, verified chunk the cache could not
 * store (a full disk) is handed over there, so the read is still served.
 */
export const SLOT_WORDS = 4;
export const STATUS_OK = 1;
export const STATUS_FAILED = 2;
/** The chunk's bytes are in the slot, not in the cache. */
export const STATUS_BYTES = 3;
const PAYLOAD_OFFSET = SLOT_WORDS * Int32Array.BYTES_PER_ELEMENT;
/** Bytes of a worker's reply slot. */
export const FETCH_SLOT_BYTES = PAYLOAD_OFFSET + MAX_CHUNK_SIZE;
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
  /** The file whose read wants it (-1: not a file's read), and where the chunk starts in that file. */
  nid: number;
  fileOffset: number;
}

/** A worker's notice that a read of file `nid` will want these chunks (blob index, CI index, where in the file): fetched together, nobody waits. */
export interface WantRequest {
  type: 'want';
  slot: number;
  nid: number;
  chunks: [number, number, number][];
}

/** What a worker's lazy source asks of the main thread (the worker adds the image's slot). */
export type WorkerAsk = Omit<FetchRequest, 'slot'> | Omit<WantRequest, 'slot'>;

/** A reply slot's words, over a SharedArrayBuffer of FETCH_SLOT_BYTES. */
export const slotWords = (sab: SharedArrayBuffer): Int32Array => new Int32Array(sab, 0, SLOT_WORDS);

/**
 * Main-thread side: answer request `id` in a worker's slot and wake the worker: the chunk is in
 * the cache (true), could not be had (false), or is `bytes` (verified, but not stored).
 */
export function answerFetch(slot: Int32Array, id: number, outcome: boolean | Buffer): void {
  if (Buffer.isBuffer(outcome)) {
    outcome.copy(Buffer.from(slot.buffer, PAYLOAD_OFFSET, outcome.length));
    Atomics.store(slot, 3, outcome.length);
  }
  Atomics.store(slot, 1, outcome === true ? STATUS_OK : outcome === false ? STATUS_FAILED : STATUS_BYTES);
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
  fetched = 0;

  constructor(
    private readonly dir: string,
    private readonly blobs: readonly BlobInfo[],
    slot: SharedArrayBuffer,
    private readonly ask: (req: WorkerAsk) => void,
    private readonly timeoutMs = DEFAULT_FETCH_TIMEOUT_MS,
    private readonly counters?: ChunkCounters,
    cacheChunks = 8,
  ) {
    this.cache = new ChunkLru(cacheChunks, largestChunk(blobs));
    this.slot = slotWords(slot);
  }

  read(ref: ChunkRef, nid = -1, fileOffset = 0): Buffer {
    return this.cache.getOrLoad(ref, (into) => {
      const blob = blobOf(this.blobs, ref);
      let files = this.openIfThere(ref.blobIndex, blob);
      const verified = files?.verified.has(ref.ciIndex) ?? false;
      if (files && (verified || this.isReady(files, ref.ciIndex))) this.counters?.chunkHit();
      else {
        this.counters?.chunkMiss();
        this.fetched++;
        if (this.fetch(blob, ref, into, nid, fileOffset)) return; // handed over, not stored: verified by the main thread
        // the main thread stored it; if the files this thread holds do not say so (or it held none),
        // they were removed or replaced (a cache cleaned under the daemon): read the current ones, and never a hole
        if (!files || !this.isReady(files, ref.ciIndex)) {
          this.closeFiles(ref.blobIndex);
          files = this.open(ref.blobIndex, blob);
          if (!this.isReady(files, ref.ciIndex)) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, 'fetched, but the cache files do not hold it');
        }
      }
      preadExact(files.data, into, ref.uncompressedOffset, blob, ref, 'cache data file');
      // a SPANS blob's id names all that decides its chunks (rafs/span-blob.ts): no digest of its own to check
      if (verified || isSpansBlob(blob)) return;
      if (!digest(blob.digester, into).equals(ref.digest)) {
        throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, 'the cached bytes do not match this image\'s chunk digest (another image described this chunk differently)');
      }
      files.verified.add(ref.ciIndex);
    });
  }

  want(refs: readonly ChunkRef[], nid: number, fileOffsets: readonly number[]): void {
    const missing: [number, number, number][] = [];
    refs.forEach((ref, i) => {
      const files = this.openIfThere(ref.blobIndex, blobOf(this.blobs, ref));
      if (!files || (!files.verified.has(ref.ciIndex) && !this.isReady(files, ref.ciIndex))) missing.push([ref.blobIndex, ref.ciIndex, fileOffsets[i]!]);
    });
    // one missing chunk is asked for by the read itself
    if (missing.length > 1) this.ask({ type: 'want', nid, chunks: missing });
  }

  recycle(): void {
    this.cache.recycle();
  }

  /**
   * Asks the main thread to bring the chunk into the cache; returns once it is there (false), or
   * once its bytes are in `into` because the cache could not keep them (true); throws otherwise.
   */
  private fetch(blob: BlobInfo, ref: ChunkRef, into: Buffer, nid: number, fileOffset: number): boolean {
    const id = Atomics.add(this.slot, 2, 1) + 1;
    this.ask({ type: 'fetch', id, blobIndex: ref.blobIndex, ciIndex: ref.ciIndex, nid, fileOffset });
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const seen = Atomics.load(this.slot, 0);
      if (seen === id) break;
      const left = deadline - Date.now();
      if (left <= 0) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `fetching the chunk timed out after ${this.timeoutMs} ms`);
      Atomics.wait(this.slot, 0, seen, left);
    }
    const status = Atomics.load(this.slot, 1);
    if (status === STATUS_OK) return false;
    if (status !== STATUS_BYTES) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, 'fetching the chunk failed (see the daemon log)');
    const length = Atomics.load(this.slot, 3);
    if (length !== into.length) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `handed ${length} bytes for a chunk of ${into.length}`);
    Buffer.from(this.slot.buffer, PAYLOAD_OFFSET, length).copy(into);
    return true;
  }

  private isReady(files: BlobFiles, ciIndex: number): boolean {
    if (files.allReady) return true;
    const { offset, mask } = chunkBit(ciIndex);
    const b = Buffer.alloc(1);
    if (readSync(files.map, b, 0, 1, offset) !== 1) return false;
    return (b[0]! & mask) !== 0;
  }

  /** The blob's cache files, or none when they are gone (removed under the daemon: the main thread makes them again on a fetch). */
  private openIfThere(index: number, blob: BlobInfo): BlobFiles | undefined {
    try {
      return this.open(index, blob);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private open(index: number, blob: BlobInfo): BlobFiles {
    let f = this.files.get(index);
    if (!f) {
      if (!isBlobId(blob.blobId)) throw new ChunkIntegrityError(blob.blobId, 0, 'invalid blob id');
      // the main thread opened (created) both files before any worker started (and makes them
      // again on a fetch, should a cache clean-up remove them meanwhile)
      const data = openSync(join(this.dir, blob.blobId + CHUNK_DATA_SUFFIX), 'r');
      let map: number;
      try {
        map = openSync(chunkMapPath(this.dir, blob.blobId), 'r');
      } catch (err) {
        closeSync(data);
        throw err;
      }
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
