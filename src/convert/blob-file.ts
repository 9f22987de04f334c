// One Nydus data blob file: chunk data added through a BlobBuilder, then its tail (CI, chunk
// digests, optionally an inlined bootstrap, TOC) appended, the file named by its sha256. A layer
// build (create.ts) and a hot blob build (hot-blob.ts) differ only in what they feed the builder.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Hasher } from '../native/index.js';
import { encodeBlobTail, type BlobTailFields } from '../rafs/blob.js';
import type { BlobInfo, ChunkRef, Compressor, Digester } from '../rafs/tree.js';
import { BlobBuilder, type BlobBuildResult } from './blob-builder.js';
import type { ChunkBufferPool } from './chunker.js';

export interface BlobFileOptions {
  blobDir: string;
  /** The blob's index in the bootstrap that will refer to it (chunk references carry it). */
  blobIndex: number;
  chunkSize: number;
  compressor: Compressor;
  /** The codec's level (default: its usual one). */
  level?: number;
  digester: Digester;
  /** Gets chunk buffers back once written (see BlobBuilder). */
  pool?: ChunkBufferPool;
  /** Chunks referred to where they are rather than stored (see BlobBuilder). */
  known?: ReadonlyMap<string, ChunkRef>;
  /** Chunks at their aligned uncompressed offsets: a blob the kernel's EROFS reads as a device (see BlobBuilder). */
  aligned?: boolean;
}

export interface BlobFile<T> {
  /** What `fill` returned. */
  filled: T;
  built: BlobBuildResult;
  blobId: string;
  blobPath: string;
  blobSize: number;
  /** The blob's entry for a bootstrap's blob table. */
  info: BlobInfo;
}

/**
 * Builds a blob in `blobDir`: `fill` adds every chunk, then the tail is written. `inline`, when
 * given, makes the bootstrap to inline from the blob-table fields known at that point (the blob id
 * still BLOB_ID_PLACEHOLDER). A failure leaves no file behind.
 */
export async function writeBlobFile<T>(
  opts: BlobFileOptions,
  fill: (blob: BlobBuilder) => Promise<T>,
  inline?: (filled: T, built: BlobBuildResult) => (fields: BlobTailFields) => Buffer,
): Promise<BlobFile<T>> {
  await mkdir(opts.blobDir, { recursive: true });
  const tmpPath = join(opts.blobDir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const out = await open(tmpPath, 'w+');
  try {
    const blobHash = new Hasher('sha256');
    const { blobIndex, chunkSize, compressor, level, digester, pool, known, aligned } = opts;
    const blob = new BlobBuilder({ out, blobIndex, chunkSize, compressor, level, digester, pool, known, aligned }, blobHash);
    const filled = await fill(blob);
    const built = await blob.finish();
    const tail = encodeBlobTail({
      chunkDataSize: built.compressedSize,
      chunkDataDigest: blobHash.clone().digest(),
      chunks: built.chunks,
      digests: built.chunks.map((c) => c.digest),
      bootstrap: inline?.(filled, built),
      compressor,
    });
    let pos = built.compressedSize;
    for (const section of tail.sections) {
      await out.write(section, 0, section.length, pos);
      blobHash.update(section);
      pos += section.length;
    }
    await out.close();
    const blobId = blobHash.hexDigest();
    const blobPath = join(opts.blobDir, blobId);
    await rename(tmpPath, blobPath);
    return { filled, built, blobId, blobPath, blobSize: pos, info: blobInfo(opts, tail.fields, blobId) };
  } catch (err) {
    await out.close().catch(() => {});
    await rm(tmpPath, { force: true });
    throw err;
  }
}

/** A blob-table entry from the tail's fields. */
export function blobInfo(opts: Pick<BlobFileOptions, 'chunkSize' | 'compressor' | 'digester'>, f: BlobTailFields, blobId: string): BlobInfo {
  return { ...f, blobId, chunkSize: opts.chunkSize, compressor: opts.compressor, digester: opts.digester };
}
