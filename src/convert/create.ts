// One layer: a (compressed) tar stream in, a RAFS v6 layer bootstrap and one Nydus data blob out,
// without unpacking anything to disk. The blob carries its chunk table, digests, the layer
// bootstrap and a TOC (docs/rafs-v6.md §3.3 variant c) and is named by its sha256.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Hasher } from '../native/index.js';
import { BLOB_ID_PLACEHOLDER, encodeBlobTail, type BlobTailFields } from '../rafs/blob.js';
import { replaceBlobTable, writeBootstrap } from '../rafs/writer.js';
import type { BlobInfo, Bootstrap, Compressor, Digester } from '../rafs/tree.js';
import { BlobBuilder, type BlobBuildResult } from './blob-builder.js';
import { ChunkBufferPool, fixedSizeChunks } from './chunker.js';
import { writeAtomically } from '../util/files.js';
import { LayerTree } from './layer-tree.js';
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
}

export interface CreateResult {
  blobId: string;
  blobPath: string;
  blobSize: number;
  bootstrapSize: number;
  /** Files, data bytes, chunks referenced and chunks saved by dedup. */
  stats: { entries: number; fileBytes: number; chunkRefs: number; distinctChunks: number; dedupedChunks: number };
}

export async function createLayer(opts: CreateOptions): Promise<CreateResult> {
  await mkdir(opts.blobDir, { recursive: true });
  const tmpPath = join(opts.blobDir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const out = await open(tmpPath, 'w+');
  try {
    const blobHash = new Hasher('sha256');
    const pool = new ChunkBufferPool(opts.chunkSize);
    const blob = new BlobBuilder(
      { out, blobIndex: 0, chunkSize: opts.chunkSize, compressor: opts.compressor, digester: opts.digester, pool },
      blobHash,
    );
    const { tree, entries } = await readLayer(opts, blob, pool);
    const built = await blob.finish();
    const layer: Bootstrap = {
      root: tree.root, blobs: [], chunkSize: opts.chunkSize, compressor: opts.compressor, digester: opts.digester, prefetch: opts.prefetch ?? [],
    };
    const withBlob = (fields: BlobTailFields, blobId: string): Bootstrap =>
      built.chunks.length > 0 ? { ...layer, blobs: [blobInfo(opts, fields, blobId)] } : layer;
    let inline: Buffer | undefined;
    const tail = encodeBlobTail({
      chunkDataSize: built.compressedSize,
      chunkDataDigest: blobHash.clone().digest(),
      chunks: built.chunks,
      digests: built.chunks.map((c) => c.digest),
      bootstrap: (fields) => (inline = writeBootstrap(withBlob(fields, BLOB_ID_PLACEHOLDER))),
      compressor: opts.compressor,
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
    const bootstrap = replaceBlobTable(inline!, withBlob(tail.fields, blobId).blobs);
    await writeAtomically(opts.bootstrapPath, bootstrap);
    return { blobId, blobPath, blobSize: pos, bootstrapSize: bootstrap.length, stats: summarize(entries, built) };
  } catch (err) {
    await out.close().catch(() => {});
    await rm(tmpPath, { force: true });
    throw err;
  }
}

async function readLayer(opts: CreateOptions, blob: BlobBuilder, pool: ChunkBufferPool): Promise<{ tree: LayerTree; entries: number }> {
  const tree = new LayerTree();
  let entries = 0;
  for await (const entry of parseTar(openLayerStream(opts.source))) {
    entries++;
    const inode = tree.add(entry);
    if (!inode || entry.size === 0) continue;
    let index = 0;
    for await (const chunk of fixedSizeChunks(entry.body, opts.chunkSize, pool)) await blob.addChunk(inode, index++, chunk);
  }
  return { tree, entries };
}

function blobInfo(opts: CreateOptions, f: BlobTailFields, blobId: string): BlobInfo {
  return { ...f, blobId, chunkSize: opts.chunkSize, compressor: opts.compressor, digester: opts.digester };
}

function summarize(entries: number, built: BlobBuildResult): CreateResult['stats'] {
  const { fileBytes, chunkRefs, dedupedChunks } = built.stats;
  return { entries, fileBytes, chunkRefs, distinctChunks: built.chunks.length, dedupedChunks };
}
