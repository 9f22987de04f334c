// The startup fetch of an optimized image whose hot region comes as a hot pack (rafs/hot-pack.ts):
// frame after frame as the pack's bytes arrive (one request, read ahead since the manifest came),
// each decoded, cut into its chunks, every chunk checked against the bootstrap's digest and stored
// like a fetched one. A miss on a chunk whose frame is still coming waits for that frame rather
// than fetching the chunk again over the same link. A frame that does not arrive, does not decode
// or holds a chunk that does not verify costs only time: those chunks are handed back, to be
// fetched from the hot blob itself.
import { chunkKey } from '../rafs/chunk.js';
import type { PackFrame } from '../rafs/hot-pack.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import { decompressBatch, digestBatch } from '../native/index.js';
import { log } from '../util/log.js';

/** Longest a reader waits for the frame of a chunk it wants. */
export const PACK_WAIT_MS = 5_000;

export interface HotPackHooks {
  /** `length` bytes of the pack at `offset`. */
  read(offset: number, length: number): Promise<Buffer>;
  /** A verified chunk, as it comes (into the page cache, the trace); `askedAt`: performance.now() when the stream began. */
  arrived(ref: ChunkRef, data: Buffer, askedAt: number): void;
  /** A verified chunk into the cache (readers waiting for its frame read it there). */
  store(ref: ChunkRef, data: Buffer): Promise<void>;
  /** Chunks of a frame that did not verify. */
  corrupt(count: number): void;
}

/** Frames whose chunks may be being stored while the next ones are decoded. */
const FRAMES_STORING = 3;

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
   * Resolves once the frame holding chunk `key` is stored, or after `maxMs` (a stalled pack must not
   * hold a reader: it then fetches the chunk itself); at once when the chunk is not coming.
   */
  async waitFor(key: number, maxMs = PACK_WAIT_MS): Promise<void> {
    const arrival = this.pending.get(key);
    if (!arrival) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([arrival, new Promise<void>((resolve) => (timer = setTimeout(resolve, maxMs)))]);
    clearTimeout(timer);
  }

  /**
   * Streams every frame: each decoded and checked while the ones before it are stored; resolves with
   * the chunks it did not deliver.
   */
  async run(): Promise<ChunkRef[]> {
    const began = performance.now();
    const missed: ChunkRef[] = [];
    const storing: Promise<void>[] = [];
    for (const [i, frame] of this.frames.entries()) {
      let lost: Promise<ChunkRef[]>;
      try {
        if (this.stopped) throw new Error('stopped');
        lost = this.deliver(await this.verified(frame), began);
      } catch (err) {
        if (!this.stopped) log.warn('a hot pack frame was not had: its chunks are fetched from the hot blob', { blobId: this.blob.blobId, offset: frame.offset, error: (err as Error).message });
        lost = Promise.resolve(frame.refs);
      }
      storing.push(lost.then((refs) => {
        missed.push(...refs);
        for (const ref of frame.refs) this.pending.delete(chunkKey(ref.blobIndex, ref.ciIndex));
        this.arrivals[i]!();
      }));
      if (storing.length >= FRAMES_STORING) await storing.shift();
    }
    await Promise.all(storing);
    return missed;
  }

  /** The frame's chunks decoded, each with whether it matches its digest. */
  private async verified(frame: PackFrame): Promise<{ ref: ChunkRef; data: Buffer; ok: boolean }[]> {
    const size = frame.refs.reduce((n, r) => n + r.uncompressedSize, 0);
    const stored = await this.hooks.read(frame.offset, frame.compressedSize);
    const [data] = (await decompressBatch('zstd', [stored], [size], size)) as [Buffer];
    if (data.length !== size) throw new Error(`frame decodes to ${data.length} bytes, not ${size}`);
    let at = 0;
    const pieces = frame.refs.map((ref) => data.subarray(at, (at += ref.uncompressedSize)));
    const digests = await digestBatch(this.blob.digester, pieces);
    return frame.refs.map((ref, j) => ({ ref, data: pieces[j]!, ok: digests[j]!.equals(ref.digest) }));
  }

  /** Hands the verified chunks over and stores them; resolves with those not delivered (never rejects). */
  private async deliver(chunks: { ref: ChunkRef; data: Buffer; ok: boolean }[], began: number): Promise<ChunkRef[]> {
    const bad = chunks.filter((c) => !c.ok).map((c) => c.ref);
    if (bad.length > 0) {
      log.warn('hot pack chunks did not verify: fetched from the hot blob', { blobId: this.blob.blobId, chunks: bad.length });
      this.hooks.corrupt(bad.length);
    }
    const good = chunks.filter((c) => c.ok);
    for (const c of good) this.hooks.arrived(c.ref, c.data, began);
    const stored = await Promise.all(good.map((c) => this.hooks.store(c.ref, c.data).then(() => true, () => false)));
    return [...bad, ...good.filter((_, j) => !stored[j]).map((c) => c.ref)];
  }

  /** Stops after the frame being handled (the mount is going away). */
  stop(): void {
    this.stopped = true;
  }
}
