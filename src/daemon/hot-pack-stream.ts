// The startup fetch of an optimized image whose hot region comes as a hot pack (rafs/hot-pack.ts):
// frame after frame as the pack's bytes arrive (one request, read ahead since the manifest came),
// each decoded, cut into its chunks, every chunk checked against the bootstrap's digest and stored
// like a fetched one. A miss on a chunk whose frame is still coming waits for that frame rather
// than fetching the chunk again over the same link. A frame that does not arrive, does not decode
// or holds a chunk that does not verify costs only time: those chunks are handed back, to be
// fetched from the hot blob itself.
import { chunkKey } from '../rafs/chunk.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import { decompressBatch, digestBatch } from '../native/index.js';
import { log } from '../util/log.js';

/** Longest a reader waits for the frame of a chunk it wants. */
export const PACK_WAIT_MS = 5_000;

export interface PackFrame {
  offset: number;
  compressedSize: number;
  refs: ChunkRef[];
}

export interface HotPackHooks {
  /** `length` bytes of the pack at `offset`. */
  read(offset: number, length: number): Promise<Buffer>;
  /** A verified chunk: into the cache (and the page cache, and the trace). `askedAt`: performance.now() when the stream began. */
  deliver(ref: ChunkRef, data: Buffer, askedAt: number): Promise<void>;
  /** Chunks of a frame that did not verify. */
  corrupt(count: number): void;
}

export class HotPackStream {
  /** The arrival of the frame of each chunk still coming, by chunkKey. */
  private readonly pending = new Map<number, Promise<void>>();
  private stopped = false;
  private readonly arrivals: (() => void)[];

  constructor(private readonly blob: BlobInfo, private readonly frames: readonly PackFrame[], private readonly hooks: HotPackHooks) {
    this.arrivals = frames.map((f) => {
      let arrived!: () => void;
      const p = new Promise<void>((resolve) => (arrived = resolve));
      for (const ref of f.refs) this.pending.set(chunkKey(ref.blobIndex, ref.ciIndex), p);
      return arrived;
    });
  }

  /**
   * Resolves once the frame holding chunk `key` is handled, or after `maxMs` (a stalled pack must not
   * hold a reader: it then fetches the chunk itself); at once when the chunk is not coming.
   */
  async waitFor(key: number, maxMs = PACK_WAIT_MS): Promise<void> {
    const arrival = this.pending.get(key);
    if (!arrival) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([arrival, new Promise<void>((resolve) => (timer = setTimeout(resolve, maxMs)))]);
    clearTimeout(timer);
  }

  /** Streams every frame; resolves with the chunks it did not deliver. */
  async run(): Promise<ChunkRef[]> {
    const began = performance.now();
    const missed: ChunkRef[] = [];
    for (const [i, frame] of this.frames.entries()) {
      try {
        if (this.stopped) throw new Error('stopped');
        missed.push(...(await this.frame(frame, began)));
      } catch (err) {
        if (!this.stopped) log.warn('a hot pack frame was not had: its chunks are fetched from the hot blob', { blobId: this.blob.blobId, offset: frame.offset, error: (err as Error).message });
        missed.push(...frame.refs);
      } finally {
        for (const ref of frame.refs) this.pending.delete(chunkKey(ref.blobIndex, ref.ciIndex));
        this.arrivals[i]!();
      }
    }
    return missed;
  }

  /** One frame's chunks delivered; returns those that did not verify. */
  private async frame(frame: PackFrame, began: number): Promise<ChunkRef[]> {
    const size = frame.refs.reduce((n, r) => n + r.uncompressedSize, 0);
    const stored = await this.hooks.read(frame.offset, frame.compressedSize);
    const [data] = (await decompressBatch('zstd', [stored], [size], size)) as [Buffer];
    if (data.length !== size) throw new Error(`frame decodes to ${data.length} bytes, not ${size}`);
    const pieces: Buffer[] = [];
    let at = 0;
    for (const ref of frame.refs) {
      pieces.push(data.subarray(at, at + ref.uncompressedSize));
      at += ref.uncompressedSize;
    }
    const digests = await digestBatch(this.blob.digester, pieces);
    const bad = frame.refs.filter((ref, j) => !digests[j]!.equals(ref.digest));
    if (bad.length > 0) {
      log.warn('hot pack chunks did not verify: fetched from the hot blob', { blobId: this.blob.blobId, chunks: bad.length });
      this.hooks.corrupt(bad.length);
    }
    await Promise.all(frame.refs.map((ref, j) => (digests[j]!.equals(ref.digest) ? this.hooks.deliver(ref, pieces[j]!, began) : undefined)));
    return bad;
  }

  /** Stops after the frame being handled (the mount is going away). */
  stop(): void {
    this.stopped = true;
  }
}
