// Reads verified chunks of an image's blobs straight from a backend (no cache): what check,
// unpack and export need. The lazy daemon puts a cache and request merging in front of this.
import { storedBlobId } from '../rafs/span-blob.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import type { BlobBackend } from './backend.js';
import { decodeChunk } from './chunk-decoder.js';

export class ChunkReader {
  constructor(private readonly backend: BlobBackend, private readonly blobs: readonly BlobInfo[]) {}

  async read(ref: ChunkRef): Promise<Buffer> {
    const blob = this.blobs[ref.blobIndex];
    if (!blob) throw new RangeError(`chunk refers to blob index ${ref.blobIndex}, the image has ${this.blobs.length} blobs`);
    const stored = await this.backend.readRange(storedBlobId(blob), ref.compressedOffset, ref.compressedSize);
    return decodeChunk(blob, ref, stored);
  }
}
