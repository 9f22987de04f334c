// Fixed-size chunking, the way RAFS stores file data: each file is cut into chunk-size pieces (the
// last one shorter) before BlobBuilder digests, deduplicates and compresses them. File data arrives
// from a tar stream or a file in pieces of any size, so the cutting works on streams.
import { KiB, MiB } from '../util/bytes.js';

export const DEFAULT_CHUNK_SIZE = MiB;
// the sizes nydus-image accepts: a power of two from 0x1000 up to RAFS_MAX_CHUNK_SIZE
const MIN_CHUNK_SIZE = 4 * KiB;
const MAX_CHUNK_SIZE = 16 * MiB;

export function assertChunkSize(size: number): void {
  const powerOfTwo = Number.isInteger(size) && size > 0 && (size & (size - 1)) === 0;
  if (!powerOfTwo || size < MIN_CHUNK_SIZE || size > MAX_CHUNK_SIZE) {
    throw new RangeError(`chunk size must be a power of two from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE}, got ${size}`);
  }
}

/**
 * Reuses full-size chunk buffers once their data is written: fresh 1 MiB allocations for every
 * chunk keep the garbage collector busy on the thread that parses the layer.
 */
export class ChunkBufferPool {
  private readonly free: Buffer[] = [];

  constructor(readonly chunkSize: number, private readonly maxKept = 32) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(this.chunkSize);
  }

  /** Hands a buffer back; only full-size ones are kept. */
  give(buf: Buffer): void {
    if (buf.length === this.chunkSize && buf.byteOffset === 0 && this.free.length < this.maxKept) this.free.push(buf);
  }
}

/**
 * Re-cuts `source` into `chunkSize` pieces, the last one shorter; empty input yields nothing.
 * The consumer owns every yielded Buffer (full-size ones come from `pool` when given, and may go
 * back to it once used).
 */
export async function* fixedSizeChunks(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  chunkSize = DEFAULT_CHUNK_SIZE,
  pool: ChunkBufferPool = new ChunkBufferPool(chunkSize, 0),
): AsyncGenerator<Buffer> {
  assertChunkSize(chunkSize);
  let chunk = pool.take();
  let filled = 0;
  for await (const piece of source) {
    for (let taken = 0; taken < piece.length; ) {
      const n = Math.min(chunkSize - filled, piece.length - taken);
      chunk.set(piece.subarray(taken, taken + n), filled);
      filled += n;
      taken += n;
      if (filled === chunkSize) {
        yield chunk;
        chunk = pool.take();
        filled = 0;
      }
    }
  }
  // a right-sized copy: a view would pin chunkSize bytes for every small file a batch holds
  const tail = filled > 0 ? Buffer.from(chunk.subarray(0, filled)) : undefined;
  pool.give(chunk);
  if (tail) yield tail;
}
