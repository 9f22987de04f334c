// A RAFS image on local disk: a bootstrap file plus a directory of blobs named by their ids.
import { readFile } from 'node:fs/promises';
import { ChunkReader } from '../blobcache/chunk-reader.js';
import { LocalDirBackend } from '../blobcache/local-backend.js';
import { RafsImage } from '../rafs/reader.js';
import type { ChunkRef, Inode } from '../rafs/tree.js';

export interface LocalImage {
  rafs: RafsImage;
  /** Present when a blob directory was given. */
  chunks?: ChunkReader;
  close(): Promise<void>;
}

export async function openLocalImage(bootstrapPath: string, blobDir?: string): Promise<LocalImage> {
  const rafs = RafsImage.open(await readFile(bootstrapPath));
  if (!blobDir) return { rafs, close: async () => {} };
  const backend = new LocalDirBackend(blobDir);
  return { rafs, chunks: new ChunkReader(backend, rafs.blobs), close: () => backend.close() };
}

/** Every distinct chunk the tree references, each once, in tree order. */
export function distinctChunks(inodes: Iterable<Inode>): ChunkRef[] {
  const seen = new Set<string>();
  const out: ChunkRef[] = [];
  for (const inode of inodes) {
    for (const c of inode.chunks) {
      const key = `${c.blobIndex}:${c.ciIndex}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(c);
    }
  }
  return out;
}

/**
 * Runs `fn` over `items` with at most `limit` in flight. After the first failure no new item is
 * started; the call rejects with that failure once the running ones have settled, so nothing is
 * left writing behind the caller's back (e.g. into a directory it is about to remove).
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failure) {
      try {
        await fn(items[next++]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}
