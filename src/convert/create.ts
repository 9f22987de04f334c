// One layer: a (compressed) tar stream in, a RAFS v6 layer bootstrap and one Nydus data blob out,
// without unpacking anything to disk. The blob carries its chunk table, digests, the layer
// bootstrap and a TOC (docs/rafs-v6.md §3.3 variant c) and is named by its sha256.
import type { Readable } from 'node:stream';
import { BLOB_ID_PLACEHOLDER } from '../rafs/blob.js';
import { replaceBlobTable, writeBootstrap } from '../rafs/writer.js';
import type { BlobInfo, Bootstrap, Compressor, Digester } from '../rafs/tree.js';
import type { BlobBuilder, BlobBuildResult } from './blob-builder.js';
import { blobInfo, writeBlobFile } from './blob-file.js';
import { ChunkBufferPool, fixedSizeChunks } from './chunker.js';
import type { ChunkDict } from './chunk-dict.js';
import { writeAtomically } from '../util/files.js';
import { LayerTree } from './layer-tree.js';
import { toOverlayWhiteouts } from './overlay-whiteouts.js';
import { openLayerStream } from './tar/decompress.js';
import { parseTar } from './tar/parse.js';

export interface CreateOptions {
  /** The layer tar, plain, gzip or zstd (sniffed). */
  source: AsyncIterable<Uint8Array> | Readable;
  bootstrapPath: string;
  blobDir: string;
  compressor: Compressor;
  digester: Digester;
  chunkSize: number;
  /** Absolute paths (byte strings) for the prefetch table. */
  prefetch?: string[];
  /** Chunks the dictionary has are referred to in its blobs, not stored again. */
  chunkDict?: ChunkDict;
  /**
   * A layer for the kernel to mount as an overlayfs lower layer: whiteouts as overlayfs's
   * (overlay-whiteouts.ts), and (with compressor none) the blob laid out as an EROFS blob device.
   */
  overlayLayer?: boolean;
}

export interface CreateResult {
  blobId: string;
  blobPath: string;
  blobSize: number;
  bootstrapSize: number;
  /** Files, data bytes, chunks referenced, chunks saved by dedup, and chunks found in the chunk dictionary. */
  stats: { entries: number; fileBytes: number; chunkRefs: number; distinctChunks: number; dedupedChunks: number; dictChunks: number };
  /** Directories the layer holds that no entry of it describes (LayerTree.implicitDirs). */
  implicitDirs: string[][];
}

export async function createLayer(opts: CreateOptions): Promise<CreateResult> {
  const pool = new ChunkBufferPool(opts.chunkSize);
  const layer = (tree: LayerTree): Bootstrap => ({
    root: tree.root, blobs: [], chunkSize: opts.chunkSize, compressor: opts.compressor, digester: opts.digester, prefetch: opts.prefetch ?? [],
  });
  // a chunk dictionary's blobs come first (chunk-dict.ts), the layer's own blob after them, if it has chunks
  const dictBlobs = opts.chunkDict?.blobs ?? [];
  const withBlob = (tree: LayerTree, built: BlobBuildResult, info: BlobInfo): Bootstrap => ({
    ...layer(tree), blobs: [...(built.stats.knownChunks > 0 ? dictBlobs : []), ...(built.chunks.length > 0 ? [info] : [])],
  });
  let inline: Buffer | undefined;
  const file = await writeBlobFile(
    {
      blobDir: opts.blobDir, blobIndex: dictBlobs.length, chunkSize: opts.chunkSize, compressor: opts.compressor, digester: opts.digester, pool, known: opts.chunkDict?.chunks,
      aligned: opts.overlayLayer === true && opts.compressor === 'none',
    },
    (blob) => readLayer(opts, blob, pool),
    ({ tree }, built) => (fields) => {
      if (opts.overlayLayer) toOverlayWhiteouts(tree.root);
      return (inline = writeBootstrap(withBlob(tree, built, blobInfo(opts, fields, BLOB_ID_PLACEHOLDER))));
    },
  );
  const bootstrap = replaceBlobTable(inline!, withBlob(file.filled.tree, file.built, file.info).blobs);
  await writeAtomically(opts.bootstrapPath, bootstrap);
  return {
    blobId: file.blobId, blobPath: file.blobPath, blobSize: file.blobSize, bootstrapSize: bootstrap.length, stats: summarize(file.filled.entries, file.built),
    implicitDirs: file.filled.tree.implicitDirs(),
  };
}

async function readLayer(opts: CreateOptions, blob: BlobBuilder, pool: ChunkBufferPool): Promise<{ tree: LayerTree; entries: number }> {
  const tree = new LayerTree();
  let entries = 0;
  for await (const entry of parseTar(openLayerStream(opts.source))) {
    entries++;
    const inode = tree.add(entry);
    if (!inode || entry.size === 0) continue;
    if (entry.size <= opts.chunkSize) {
      // one chunk, read whole (most files): a copy, as a view would pin the stream's buffer while its batch waits
      await blob.addChunk(inode, 0, Buffer.from(await entry.readAll(opts.chunkSize)));
      continue;
    }
    let index = 0;
    for await (const chunk of fixedSizeChunks(entry.body, opts.chunkSize, pool)) await blob.addChunk(inode, index++, chunk);
  }
  return { tree, entries };
}

function summarize(entries: number, built: BlobBuildResult): CreateResult['stats'] {
  const { fileBytes, chunkRefs, dedupedChunks, knownChunks } = built.stats;
  return { entries, fileBytes, chunkRefs, distinctChunks: built.chunks.length, dedupedChunks, dictChunks: knownChunks };
}
