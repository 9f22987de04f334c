// Checks a blob cache directory against an image: every chunk the chunk map of one of the image's
// blobs marks ready is read from the blob's data file and its digest compared with the bootstrap's.
// What a crash (or a disk that filled up) may leave is fewer ready chunks, never a ready chunk
// whose bytes are wrong; this is how that is checked from outside the daemon. Read-only: it opens
// nothing for writing, so it may run next to a daemon using the directory.
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { digestBatch } from '../native/index.js';
import { isBlobId } from '../rafs/blob.js';
import type { RafsImage } from '../rafs/reader.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import { CHUNK_DATA_SUFFIX, ChunkMap } from './chunk-map.js';
import { isSpansBlob } from '../rafs/span-blob.js';
import { blobChunkTables } from './fetcher.js';

/** Chunks read and digested at once (bounds memory: a chunk is at most 16 MiB). */
const BATCH_CHUNKS = 16;

export interface BlobVerification {
  blobId: string;
  /**
   * absent: no data file; discarded: a data file of the wrong size (the cache starts it over on
   * open, so none of its chunks is served); checked: its ready chunks were verified; spans: a
   * SPANS blob, whose chunks have no digests of their own (their spans are checked as they are
   * fetched): its ready chunks are counted, not checked.
   */
  state: 'absent' | 'discarded' | 'checked' | 'spans';
  /** Distinct chunks the image has in this blob. */
  chunks: number;
  /** Of those, the ones the chunk map marks ready. */
  ready: number;
  verified: number;
  /** CI indexes of ready chunks whose bytes do not match their digest (or could not be read). */
  corrupt: number[];
}

export interface CacheVerification {
  blobs: BlobVerification[];
  ready: number;
  verified: number;
  corrupt: number;
}

/** Verifies every ready chunk of every blob of `rafs` in cache directory `dir`. */
export async function verifyCache(dir: string, rafs: RafsImage): Promise<CacheVerification> {
  const tables = await blobChunkTables(rafs);
  const blobs: BlobVerification[] = [];
  for (const blob of rafs.blobs) blobs.push(await verifyBlob(dir, blob, tables.get(blob.blobId) ?? []));
  const sum = (f: (b: BlobVerification) => number): number => blobs.reduce((n, b) => n + f(b), 0);
  return { blobs, ready: sum((b) => b.ready), verified: sum((b) => b.verified), corrupt: sum((b) => b.corrupt.length) };
}

async function verifyBlob(dir: string, blob: BlobInfo, refs: readonly ChunkRef[]): Promise<BlobVerification> {
  const result: BlobVerification = { blobId: blob.blobId, state: 'absent', chunks: refs.length, ready: 0, verified: 0, corrupt: [] };
  if (!isBlobId(blob.blobId)) throw new Error(`not a blob id: ${JSON.stringify(blob.blobId)}`);
  let data: FileHandle;
  try {
    data = await open(join(dir, blob.blobId + CHUNK_DATA_SUFFIX), 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return result;
    throw err;
  }
  try {
    if ((await data.stat()).size !== blob.uncompressedSize) return { ...result, state: 'discarded' };
    const map = await ChunkMap.open(dir, blob.blobId, blob.chunkCount, { readOnly: true });
    const ready = refs.filter((r) => map.isReady(r.ciIndex));
    if (isSpansBlob(blob)) return { ...result, state: 'spans', ready: ready.length };
    for (let i = 0; i < ready.length; i += BATCH_CHUNKS) {
      const batch = ready.slice(i, i + BATCH_CHUNKS);
      const bytes = await Promise.all(batch.map((r) => readChunk(data, r)));
      const digests = await digestBatch(blob.digester, bytes.map((b) => b ?? Buffer.alloc(0)));
      batch.forEach((r, k) => {
        if (bytes[k] !== undefined && digests[k]!.equals(r.digest)) result.verified++;
        else result.corrupt.push(r.ciIndex);
      });
    }
    return { ...result, state: 'checked', ready: ready.length };
  } finally {
    await data.close();
  }
}

/** The chunk's bytes in the data file; undefined when the file is too short to hold them. */
async function readChunk(data: FileHandle, ref: ChunkRef): Promise<Buffer | undefined> {
  const buf = Buffer.alloc(ref.uncompressedSize);
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await data.read(buf, done, buf.length - done, ref.uncompressedOffset + done);
    if (bytesRead === 0) return undefined;
    done += bytesRead;
  }
  return buf;
}
