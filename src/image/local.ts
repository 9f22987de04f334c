// A RAFS image on local disk: a bootstrap file plus a directory of blobs named by their ids.
import { readFile } from 'node:fs/promises';
import { ChunkReader } from '../blobcache/chunk-reader.js';
import { LocalDirBackend } from '../blobcache/local-backend.js';
import { RafsImage } from '../rafs/reader.js';

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
