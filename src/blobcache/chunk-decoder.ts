// Stored chunk bytes → verified uncompressed bytes. Nothing leaves here unless its digest matches:
// a corrupt chunk is an error, never data.
import { decompress, decompressInto, digest, type Codec } from '../native/index.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';

export class ChunkIntegrityError extends Error {
  constructor(readonly blobId: string, readonly ciIndex: number, reason: string) {
    super(`chunk ${ciIndex} of blob ${blobId}: ${reason}`);
  }
}

/**
 * The chunk's verified uncompressed bytes: in `into` (exactly the uncompressed size) when given,
 * else in a new buffer (or `stored` itself for an uncompressed chunk).
 */
export function decodeChunk(blob: BlobInfo, ref: ChunkRef, stored: Buffer, into?: Buffer): Buffer {
  if (stored.length !== ref.compressedSize) {
    throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `got ${stored.length} stored bytes, expected ${ref.compressedSize}`);
  }
  if (into && into.length !== ref.uncompressedSize) throw new RangeError(`decode buffer of ${into.length} bytes for a chunk of ${ref.uncompressedSize}`);
  let data: Buffer;
  if (!ref.compressed || blob.compressor === 'none') {
    data = into ? into.subarray(0, stored.copy(into)) : stored;
  } else {
    try {
      if (into) decompressInto(blob.compressor as Codec, stored, into);
      data = into ?? decompress(blob.compressor as Codec, stored, { size: ref.uncompressedSize });
    } catch (err) {
      throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `cannot decompress (${(err as Error).message})`);
    }
  }
  if (data.length !== ref.uncompressedSize) {
    throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `${data.length} bytes, expected ${ref.uncompressedSize}`);
  }
  if (!digest(blob.digester, data).equals(ref.digest)) {
    throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `${blob.digester} digest mismatch`);
  }
  return data;
}
