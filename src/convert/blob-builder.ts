// Turns file contents into a Nydus data blob: fixed-size chunks, digested and deduplicated within
// the blob (and against chunks known to be elsewhere: a chunk dictionary's), compressed (kept raw
// when compression does not shrink them), appended back to back.
// Digest and compression run in batches on the libuv pool so both cores work while the tar
// parser keeps reading; at most `maxInFlight` batches are held, which bounds memory.
import type { FileHandle } from 'node:fs/promises';
import { compressBatch, digestBatch, type Codec, type Hasher } from '../native/index.js';
import type { ChunkRef, Compressor, Digester, Inode } from '../rafs/tree.js';
import type { ChunkBufferPool } from './chunker.js';

export interface BlobBuilderOptions {
  out: FileHandle;
  blobIndex: number;
  chunkSize: number;
  compressor: Compressor;
  /** The codec's level (default: its usual one, see DEFAULT_LEVEL). */
  level?: number;
  digester: Digester;
  /** Raw bytes gathered before a batch is handed to the pool. */
  batchBytes?: number;
  maxInFlight?: number;
  /** Gets every chunk buffer back once its data is written. */
  pool?: ChunkBufferPool;
  /** Chunks stored elsewhere (a chunk dictionary's), by digest (hex): referred to, never stored again. */
  known?: ReadonlyMap<string, ChunkRef>;
  /**
   * Compressor none only: each chunk stored at its 4 KiB-aligned uncompressed offset (zeros
   * between), so the blob's data is laid out as the kernel's EROFS reads a blob device (`-o device=`).
   */
  aligned?: boolean;
}

export interface BlobBuildResult {
  /** Distinct chunks in CI order. */
  chunks: ChunkRef[];
  /** Bytes of compressed chunk data at the start of the blob. */
  compressedSize: number;
  /** End of the 4 KiB-aligned uncompressed chunk space. */
  uncompressedSize: number;

  stats: { fileBytes: number; chunkRefs: number; dedupedChunks: number; knownChunks: number };
}

interface PendingChunk {
  inode: Inode;
  index: number;
  fileOffset: number;
  data: Buffer;
}

const ALIGN = 4096;
const MAX_BATCH_CHUNKS = 1024;
const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

export class BlobBuilder {
  private readonly byDigest = new Map<string, ChunkRef>();
  private readonly distinct: ChunkRef[] = [];
  private batch: PendingChunk[] = [];
  private batchSize = 0;
  private inFlight: Promise<void>[] = [];
  private writeChain: Promise<void> = Promise.resolve();
  private compressedOffset = 0;
  private uncompressedOffset = 0;
  private readonly stats = { fileBytes: 0, chunkRefs: 0, dedupedChunks: 0, knownChunks: 0 };

  /** `hasher`, when given, is fed every byte written, in blob order. */
  constructor(private readonly opts: BlobBuilderOptions, private readonly hasher?: Hasher) {
    if (opts.aligned && opts.compressor !== 'none') throw new RangeError(`an aligned blob stores chunks uncompressed, not ${opts.compressor}`);
  }

  /**
   * Queues one chunk of `inode`'s data (chunk `index`, at most chunkSize bytes, owned by the
   * builder from now on). Resolves when the caller may send more (back-pressure).
   */
  async addChunk(inode: Inode, index: number, data: Buffer): Promise<void> {
    if (data.length === 0 || data.length > this.opts.chunkSize) {
      throw new RangeError(`chunk of ${data.length} bytes (chunk size ${this.opts.chunkSize})`);
    }
    this.batch.push({ inode, index, fileOffset: index * this.opts.chunkSize, data });
    this.batchSize += data.length;
    this.stats.fileBytes += data.length;
    // small files: a count limit keeps batches (and the pipeline) moving
    if (this.batchSize >= (this.opts.batchBytes ?? 8 << 20) || this.batch.length >= MAX_BATCH_CHUNKS) await this.flush();
  }

  async finish(): Promise<BlobBuildResult> {
    await this.flush();
    await this.writeChain;
    return {
      chunks: this.distinct,
      compressedSize: this.compressedOffset,
      uncompressedSize: this.uncompressedOffset,
      stats: { ...this.stats },
    };
  }

  private async flush(): Promise<void> {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchSize = 0;
    const computed = this.compute(batch);
    // writes are chained in batch order so the blob is the same whatever finishes first
    const prev = this.writeChain;
    const job = (async () => {
      const { digests, keys, bodies } = await computed;
      await prev;
      const start = this.compressedOffset;
      const stored = batch.flatMap((chunk, i) => this.place(chunk, digests[i]!, keys[i]!, bodies.get(i)));
      // one gathered write per batch: a pool round trip per chunk would serialise the pipeline
      if (stored.length > 0) await this.opts.out.writev(stored, start);
      for (const chunk of batch) this.opts.pool?.give(chunk.data);
    })();
    this.writeChain = job;
    this.inFlight.push(job);
    job.catch(() => {}).finally(() => (this.inFlight = this.inFlight.filter((j) => j !== job)));
    if (this.inFlight.length >= (this.opts.maxInFlight ?? 3)) await Promise.race(this.inFlight);
  }

  /** Digests every chunk, and compresses those not already known to be in the blob. */
  private async compute(batch: PendingChunk[]): Promise<{ digests: Buffer[]; keys: string[]; bodies: Map<number, Buffer> }> {
    const digests = await digestBatch(this.opts.digester, batch.map((c) => c.data));
    // hex keys made once per chunk: a layer of small files has one per file
    const keys = digests.map((d) => d.toString('hex'));
    const fresh = batch.map((_c, i) => i).filter((i) => !this.has(keys[i]!));
    const compressed = await this.compress(fresh.map((i) => batch[i]!.data));
    return { digests, keys, bodies: new Map(fresh.map((i, k) => [i, compressed[k]!])) };
  }

  private has(key: string): boolean {
    return this.byDigest.has(key) || (this.opts.known?.has(key) ?? false);
  }

  private async compress(datas: Buffer[]): Promise<Buffer[]> {
    if (this.opts.compressor === 'none' || datas.length === 0) return datas;
    return compressBatch(this.opts.compressor as Codec, datas, this.opts.level);
  }

  /**
   * Binds a chunk to the file; returns the bytes to store (none when an identical chunk is already
   * in the blob), an aligned blob's padding after them.
   */
  private place(chunk: PendingChunk, digest: Buffer, key: string, body: Buffer | undefined): Buffer[] {
    let ref = this.byDigest.get(key);
    const known = ref ? undefined : this.opts.known?.get(key);
    let stored: Buffer | undefined;
    if (ref) {
      this.stats.dedupedChunks++;
    } else if (known) {
      ref = known;
      this.stats.knownChunks++;
    } else {
      // `body` is absent only for chunks deduplicated at digest time; a later duplicate inside the
      // same batch falls here with a body and is written once
      const raw = chunk.data;
      stored = body && body.length < raw.length ? body : raw;
      ref = {
        blobIndex: this.opts.blobIndex,
        ciIndex: this.distinct.length,
        digest,
        compressedOffset: this.compressedOffset,
        compressedSize: stored.length,
        uncompressedOffset: this.uncompressedOffset,
        uncompressedSize: raw.length,
        compressed: stored !== raw,
        fileOffset: chunk.fileOffset,
      };
      this.hasher?.update(stored);
      this.compressedOffset += stored.length;
      this.uncompressedOffset += alignUp(raw.length, ALIGN);
      this.byDigest.set(key, ref);
      this.distinct.push(ref);
    }
    chunk.inode.chunks[chunk.index] = ref;
    this.stats.chunkRefs++;
    if (!stored) return [];
    const padding = this.opts.aligned ? this.uncompressedOffset - this.compressedOffset : 0;
    if (padding === 0) return [stored];
    const zeros = Buffer.alloc(padding);
    this.hasher?.update(zeros);
    this.compressedOffset += padding;
    return [stored, zeros];
  }
}
