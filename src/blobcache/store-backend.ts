// The registry (or an OCI layout) as a blob backend: blob ranges by digest, from any image store.
import type { ImageStore } from '../registry/image-store.js';
import type { BlobBackend } from './backend.js';

/** Serves blob ranges from an image store, so the chunk reader and the cache can use it. */
export class StoreBackend implements BlobBackend {
  constructor(private readonly store: ImageStore) {}

  readRange(blobId: string, offset: number, length: number, progress?: (buf: Buffer, filled: number) => void, signal?: AbortSignal): Promise<Buffer> {
    return this.store.getBlobRange(`sha256:${blobId}`, offset, length, progress, signal);
  }

  size(blobId: string): Promise<number> {
    return this.store.blobSize(`sha256:${blobId}`);
  }

  async close(): Promise<void> {}
}
