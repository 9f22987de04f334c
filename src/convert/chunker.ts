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
 * Re-cuts `source` into `chunkSize` pieces, the last one shorter; empty input yields nothing.
 * Every yielded Buffer is a fresh allocation the consumer owns (BlobBuilder keeps them until written).
 */
export async function* fixedSizeChunks(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  chunkSize = DEFAULT_CHUNK_SIZE,
): AsyncGenerator<Buffer> {
  assertChunkSize(chunkSize);
  let chunk = Buffer.allocUnsafe(chunkSize);
  let filled = 0;
  for await (const piece of source) {
    for (let taken = 0; taken < piece.length; ) {
      const n = Math.min(chunkSize - filled, piece.length - taken);
      chunk.set(piece.subarray(taken, taken + n), filled);
      filled += n;
      taken += n;
      if (filled === chunkSize) {
        yield chunk;
        chunk = Buffer.allocUnsafe(chunkSize);
        filled = 0;
      }
    }
  }
  // a right-sized copy: a view would pin chunkSize bytes for every small file a batch holds
  if (filled > 0) yield Buffer.from(chunk.subarray(0, filled));
}
