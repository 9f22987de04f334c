// Stored chunk bytes → verified uncompressed bytes. Nothing leaves here unless its digest matches:
// a corrupt chunk is an error, never data.
import { decompress, digest, type Codec } from '../native/index.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';

export class ChunkIntegrityError extends Error {
  constructor(readonly blobId: string, readonly ciIndex: number, reason: string) {
    super(`chunk ${ciIndex} of blob ${blobId}: ${reason}`);
  }
}

export function decodeChunk(blob: BlobInfo, ref: ChunkRef, stored: Buffer): Buffer {
  if (stored.length !== ref.compressedSize) {
    throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `got ${stored.length} stored bytes, expected ${ref.compressedSize}`);
  }
  let data: Buffer;
  if (!ref.compressed || blob.compressor === 'none') {
    data = stored;
  } else {
    try {
      data = decompress(blob.compressor as Codec, stored, { size: ref.uncompressedSize });
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
