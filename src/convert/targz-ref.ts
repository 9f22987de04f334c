// An unmodified gzip layer (a plain OCI image's) as a RAFS layer that serves it as it is, nydus's
// zran idea (`create --type targz-ref`): one pass over the layer decodes it, parses its tar and
// records checkpoints of the gzip stream (native GzipIndexStream); each file piece becomes a chunk
// that names the checkpoint before it, the stored bytes from there to past its end, and its sha256.
// The bootstrap carries the checkpoints (rafs/checkpoints.ts); the layer file is the blob.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { compress, digest, GzipIndexStream } from '../native/index.js';
import { BlobFeature, layerAsIsBlob, nextSlot } from '../rafs/blob-table.js';
import { type Checkpoint, checkpointAt, checkpointStart } from '../rafs/checkpoints.js';
import { MAX_INNER_OFFSET, maxStoredMemberSize } from '../rafs/chunk.js';
import type { Bootstrap, ChunkRef, Inode } from '../rafs/tree.js';
import { writeBootstrap } from '../rafs/writer.js';
import { writeAtomically } from '../util/files.js';
import { assertChunkSize, ChunkBufferPool, fixedSizeChunks } from './chunker.js';
import { LayerTree } from './layer-tree.js';
import { placeBlob } from './stargz-ref.js';
import { parseTar } from './tar/parse.js';

/**
 * Output between checkpoints by default: a read decodes (and fetches) at most this much before its
 * chunk. Cold `node -e 1` of debian-ml through our snapshotter on the shaped link (bench/containerd-
 * lazy, ours-gzidx): 256 KiB spans with 64 KiB chunks start in 2.29 s fetching 27.7 MB (index 2.3 %
 * of the layers); 128 KiB / 16 KiB 3.16 s (more requests, each a round trip), 1 MiB / 64 KiB 2.61 s
 * but 30.2 MB. Finer than a deflate block (64 KiB from Go's gzip) gains nothing.
 */
export const DEFAULT_SPAN = 256 << 10;
/** Chunk size by default: a miss brings the chunks decoded from its checkpoint, small chunks keep that near the reads. */
export const DEFAULT_GZIP_CHUNK_SIZE = 64 << 10;
/** The most a span may be: a chunk's inner offset (span + the block that ends it) must stay encodable. */
export const MAX_SPAN = 8 << 20;

export interface GzipLayerOptions {
  /** The gzip layer, in pieces. */
  source: AsyncIterable<Uint8Array>;
  /** The layer's size in bytes (the blob's compressed size). */
  blobSize: number;
  /** The layer's sha256 (64 hex), when known: the stream is checked against it. */
  blobId?: string;
  chunkSize: number;
  span?: number;
}

export interface GzipLayerModel {
  model: Bootstrap;
  blobId: string;
  stats: { entries: number; chunks: number; checkpoints: number; uncompressedBytes: number };
}

/** A file piece met in the tar stream, not yet placed against the checkpoints. */
interface Piece {
  inode: Inode;
  index: number;
  /** Where it is in the decoded stream. */
  offset: number;
  size: number;
  digest: Buffer;
}

/** One pass over a gzip layer → its layer model, whose one blob is the layer with its checkpoints. */
export async function gzipLayerModel(opts: GzipLayerOptions): Promise<GzipLayerModel> {
  assertChunkSize(opts.chunkSize);
  const span = opts.span ?? DEFAULT_SPAN;
  if (!Number.isInteger(span) || span < 32 << 10 || span > MAX_SPAN) throw new RangeError(`span ${span} is not from 32 KiB to ${MAX_SPAN} bytes`);
  const stream = new IndexedGunzip(opts.source, span);
  const tree = new LayerTree();
  const pieces: Piece[] = [];
  const pool = new ChunkBufferPool(opts.chunkSize);
  let entries = 0;
  for await (const entry of parseTar(stream.output())) {
    entries++;
    const inode = tree.add(entry);
    if (!inode || entry.size === 0) continue;
    let index = 0;
    for await (const data of fixedSizeChunks(entry.body, opts.chunkSize, pool)) {
      pieces.push({ inode, index, offset: entry.dataOffset + index * opts.chunkSize, size: data.length, digest: digest('sha256', data) });
      pool.give(data);
      index++;
    }
  }
  const { blobId, checkpoints, marks, outputSize } = await stream.finish();
  if (opts.blobId !== undefined && opts.blobId !== blobId) throw new Error(`the layer's sha256 is ${blobId}, not the expected ${opts.blobId}`);
  const chunks = placePieces(pieces, checkpoints, marks);
  const blob = layerAsIsBlob({
    blobId, chunkCount: chunks.length, chunkSize: opts.chunkSize, compressor: 'gzip', compressedSize: opts.blobSize,
    uncompressedSize: chunks.reduce((end, c) => Math.max(end, nextSlot(c)), 0), checkpoints,
  }, BlobFeature.CHECKPOINTS);
  const model: Bootstrap = { root: tree.root, blobs: chunks.length > 0 ? [blob] : [], chunkSize: opts.chunkSize, compressor: 'gzip', digester: 'sha256', prefetch: [] };
  return { model, blobId, stats: { entries, chunks: chunks.length, checkpoints: checkpoints.length, uncompressedBytes: outputSize } };
}

/**
 * Each piece as a chunk (the same bytes twice, one chunk): decoded from the last checkpoint at or
 * before it, its stored bytes running to the first mark at or past its end.
 */
function placePieces(pieces: readonly Piece[], checkpoints: readonly Checkpoint[], marks: Float64Array): ChunkRef[] {
  const chunks: ChunkRef[] = [];
  const byDigest = new Map<string, ChunkRef>();
  let slot = 0;
  for (const p of pieces) {
    const key = p.digest.toString('hex');
    let ref = byDigest.get(key);
    if (!ref) {
      const cp = checkpointAt(checkpoints, p.offset);
      const c = checkpoints[cp]!;
      const innerOffset = p.offset - c.output;
      if (innerOffset > MAX_INNER_OFFSET) throw new Error(`gzip layer: ${innerOffset} bytes from a checkpoint to the data at ${p.offset}, over ${MAX_INNER_OFFSET} (a smaller --span helps)`);
      const start = checkpointStart(c);
      const end = storedEnd(marks, p.offset + p.size);
      if (end - start > maxStoredMemberSize(innerOffset, p.size, 'gzip')) throw new Error(`gzip layer: the data at ${p.offset} takes ${end - start} stored bytes, more than deflate can need`);
      ref = {
        blobIndex: 0, ciIndex: chunks.length, digest: p.digest, compressedOffset: start, compressedSize: end - start,
        uncompressedOffset: slot, uncompressedSize: p.size, compressed: true, fileOffset: 0, innerOffset, checkpoint: cp,
      };
      slot = nextSlot(ref);
      chunks.push(ref);
      byDigest.set(key, ref);
    }
    p.inode.chunks[p.index] = ref;
  }
  return chunks;
}

/** The input offset of the first mark (a block boundary, or input that makes all output before it) at or past output offset `end`. */
function storedEnd(marks: Float64Array, end: number): number {
  let lo = 0;
  let hi = marks.length / 2 - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (marks[mid * 2 + 1]! >= end) hi = mid;
    else lo = mid + 1;
  }
  if (marks[lo * 2 + 1]! < end) throw new Error(`gzip layer: no mark at or past output offset ${end}`);
  return marks[lo * 2]!;
}

/**
 * The layer decoded as it streams, with its sha256, checkpoints and block boundaries taken as they
 * come. The tar parser may stop reading at the archive's end: `finish` decodes the rest (the
 * stream must end whole) without the source being closed under it.
 */
class IndexedGunzip {
  private readonly index: GzipIndexStream;
  private readonly hash = createHash('sha256');
  private readonly source: AsyncIterator<Uint8Array>;
  private readonly checkpoints: Checkpoint[] = [];
  private readonly marks: Float64Array[] = [];
  private outputSize = 0;
  private done = false;

  constructor(source: AsyncIterable<Uint8Array>, span: number) {
    this.index = new GzipIndexStream(span);
    this.source = source[Symbol.asyncIterator]();
  }

  /** The decoded stream (an early return by its reader leaves the source open for finish). */
  async *output(): AsyncGenerator<Buffer> {
    for (let piece = await this.feed(); piece; piece = await this.feed()) {
      for (let out = this.index.pull(); out.length > 0; out = this.index.pull()) {
        this.outputSize += out.length;
        yield out;
      }
      this.collect();
    }
  }

  async finish(): Promise<{ blobId: string; checkpoints: Checkpoint[]; marks: Float64Array; outputSize: number }> {
    for await (const out of this.output()) void out;
    this.index.end();
    this.collect(); // the last checkpoints are final once the stream has ended
    const marks = new Float64Array(this.marks.reduce((n, m) => n + m.length, 0));
    let at = 0;
    for (const m of this.marks) {
      marks.set(m, at);
      at += m.length;
    }
    return { blobId: this.hash.digest('hex'), checkpoints: this.checkpoints, marks, outputSize: this.outputSize };
  }

  /** Pushes the next input piece; false at the source's end. */
  private async feed(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.source.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    this.hash.update(next.value);
    this.index.push(next.value);
    return true;
  }

  private collect(): void {
    const { marks, checkpoints } = this.index.take();
    if (marks.length > 0) this.marks.push(marks);
    for (const c of checkpoints) this.checkpoints.push({ ...c, window: compress('zstd', c.window, 9) });
  }
}

export interface TargzRefOptions {
  /** The gzip layer file. */
  layerPath: string;
  bootstrapPath: string;
  /** Where the layer goes, as `<sha256 hex>`. */
  blobDir: string;
  chunkSize: number;
  span?: number;
}

export interface TargzRefResult extends Omit<GzipLayerModel, 'model'> {
  blobPath?: string;
  blobSize: number;
  bootstrapSize: number;
}

/** `create --type targz-ref`: the layer file → its bootstrap + the layer itself in the blob directory. */
export async function createTargzRef(opts: TargzRefOptions): Promise<TargzRefResult> {
  const { size: blobSize } = await stat(opts.layerPath);
  const source = createReadStream(opts.layerPath, { highWaterMark: 1 << 20 });
  const { model, blobId, stats } = await gzipLayerModel({ source, blobSize, chunkSize: opts.chunkSize, span: opts.span });
  const bootstrap = writeBootstrap(model);
  await writeAtomically(opts.bootstrapPath, bootstrap);
  const blobPath = stats.chunks > 0 ? await placeBlob(opts.layerPath, opts.blobDir, blobId) : undefined;
  return { blobId, blobPath, blobSize, bootstrapSize: bootstrap.length, stats };
}
