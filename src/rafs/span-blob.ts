// A SPANS blob (a gzip layer indexed by a SOCI zTOC) has digests of its spans' stored bytes only,
// not of what its chunks decode to: a cached chunk cannot be checked against the reader's digest as
// every other chunk is. So its blob id, which names its cache files, is a digest of everything that
// decides what its chunks decode to (the layer, its checkpoints and windows, the chunks of it the
// bootstrap holds): two bootstraps share a SPANS blob's cache files only when they would decode
// every chunk the same, and the reader refuses a SPANS blob whose id is not that digest. The writer
// names the blob as it writes the chunk table (a merged chain keeps only the chunks its tree reads).
// The layer itself is named by the blob's tocDigest field.
import { createHash } from 'node:crypto';
import { BlobFeature } from './blob-table.js';
import { checkpointStart, spanEnd } from './checkpoints.js';
import type { BlobInfo, ChunkRef } from './tree.js';

const DOMAIN = 'nydusify-ts SPANS blob 1\n';

export const isSpansBlob = (blob: Pick<BlobInfo, 'features'>): boolean => (blob.features & BlobFeature.SPANS) !== 0;

/** Whether span `k` of SPANS blob `blob` matches its checkpoint's digest in `stored`, the blob's stored bytes from offset `base`. */
export function spanMatches(blob: Pick<BlobInfo, 'checkpoints' | 'compressedSize'>, k: number, stored: Buffer, base: number): boolean {
  const checkpoints = blob.checkpoints!;
  const c = checkpoints[k]!;
  const span = stored.subarray(checkpointStart(c) - base, spanEnd(checkpoints, k, blob.compressedSize) - base);
  return createHash('sha256').update(span).digest().equals(c.spanDigest!);
}

/** The blob a blob's stored bytes are read from: a SPANS blob's layer, else the blob itself. */
export const storedBlobId = (blob: Pick<BlobInfo, 'blobId' | 'features' | 'tocDigest'>): string => (isSpansBlob(blob) ? blob.tocDigest.toString('hex') : blob.blobId);

/** The id a SPANS blob must have: over its layer, size, checkpoints and `chunks` (all of its chunks). */
export function spanBlobId(blob: Pick<BlobInfo, 'tocDigest' | 'compressedSize' | 'uncompressedSize' | 'checkpoints'>, chunks: readonly ChunkRef[]): string {
  const hash = createHash('sha256').update(DOMAIN).update(blob.tocDigest);
  const n = Buffer.alloc(8);
  const u64 = (v: number): void => {
    n.writeBigUInt64LE(BigInt(v));
    hash.update(n);
  };
  u64(blob.compressedSize);
  u64(blob.uncompressedSize);
  const checkpoints = blob.checkpoints ?? [];
  u64(checkpoints.length);
  for (const c of checkpoints) {
    for (const v of [c.input, c.output, c.bits, c.window.length]) u64(v);
    hash.update(c.spanDigest ?? Buffer.alloc(0)).update(c.window);
  }
  u64(chunks.length);
  for (const r of [...chunks].sort((a, b) => a.ciIndex - b.ciIndex)) {
    for (const v of [r.ciIndex, r.compressedOffset, r.compressedSize, r.uncompressedOffset, r.uncompressedSize, r.checkpoint ?? 0, r.innerOffset ?? 0, r.compressed ? 1 : 0]) u64(v);
    hash.update(r.digest);
  }
  return hash.digest('hex');
}
