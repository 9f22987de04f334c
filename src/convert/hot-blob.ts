// The hot blob of an optimized image (hot-layout.ts): the hot files' data cut at the hot chunk
// size, hot region first, read chunk by chunk from the source image's blobs and compressed as the
// source's are, with blob meta like any blob convert writes; and the optimized image's model with it.
import type { BlobInfo, Bootstrap, ChunkRef, Compressor } from '../rafs/tree.js';
import { writeBlobFile } from './blob-file.js';
import { hotRegionSize, type HotLayout, type OptimizedTree, storedChunkSize } from './hot-layout.js';
import { rechunkedData, type ReadChunk } from './rechunked-data.js';

export interface HotBlobOptions {
  source: Bootstrap;
  layout: HotLayout;
  tree: OptimizedTree;
  blobDir: string;
  /** Reads one verified chunk of the source image (its blob index is the source's). */
  read: ReadChunk;
}

export interface HotBlob {
  blobId: string;
  blobPath: string;
  blobSize: number;
  info: BlobInfo;
  /** Compressed bytes at the blob's start that hold the hot region. */
  hotRegionSize: number;
  /** Chunks stored (after dedup inside the blob). */
  storedChunks: number;
  /** Those chunks (CI order). */
  chunks: ChunkRef[];
  /** The optimized image: `tree`'s bootstrap with the hot blob in its blob table. */
  bootstrap: Bootstrap;
}

/**
 * The hot blob's codec levels: its hot region crosses the link on every cold start, its chunks are
 * small (they compress worse), and it is built once, so it takes the strongest level that still
 * decodes as fast (zstd 19: some 8 % fewer bytes than 3 on debian-ml's `node -e 1` region).
 */
const HOT_LEVEL: Partial<Record<Compressor, number>> = { zstd: 19, gzip: 12 };

export async function buildHotBlob(opts: HotBlobOptions): Promise<HotBlob> {
  const { source, layout, tree } = opts;
  const files = layout.files.map((f) => ({ inode: f.inode, chunkSize: storedChunkSize(source, f.inode) }));
  const file = await writeBlobFile(
    { blobDir: opts.blobDir, blobIndex: tree.hotBlobIndex, chunkSize: layout.hotChunkSize, compressor: source.compressor, level: HOT_LEVEL[source.compressor], digester: source.digester },
    async (blob) => {
      let n = 0;
      for await (const data of rechunkedData(files, layout.chunks, layout.hotChunkSize, opts.read)) {
        const { file: f, index } = layout.chunks[n++]!;
        await blob.addChunk(tree.hotInodes[f]!, index, data);
      }
    },
  );
  return {
    blobId: file.blobId,
    blobPath: file.blobPath,
    blobSize: file.blobSize,
    info: file.info,
    hotRegionSize: hotRegionSize(layout, tree.hotInodes),
    storedChunks: file.built.chunks.length,
    chunks: file.built.chunks,
    bootstrap: { ...tree.bootstrap, blobs: [...tree.bootstrap.blobs, file.info] },
  };
}
