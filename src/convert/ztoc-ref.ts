// A gzip layer indexed by a SOCI zTOC (soci-snapshotter's index, src/soci/) as a RAFS layer that
// serves the layer unmodified: the zTOC's tar TOC becomes the tree, its checkpoints the blob's
// checkpoints, and each file piece a chunk decoded from the checkpoint before it. A zTOC has no
// digest of any file's bytes, only of each span's stored bytes, so the blob is a SPANS blob: a
// chunk's stored bytes are the whole spans it decodes from, each checked against its digest before
// decoding (rafs/span-blob.ts says why its blob id is a digest of all this).
import { createHash } from 'node:crypto';
import { compress } from '../native/index.js';
import { BlobFeature, layerAsIsBlob, nextSlot } from '../rafs/blob-table.js';
import { type Checkpoint, checkpointAt, CHECKPOINT_WINDOW, checkpointStart, spanEnd } from '../rafs/checkpoints.js';
import { MAX_INNER_OFFSET } from '../rafs/chunk.js';
import { spanBlobId } from '../rafs/span-blob.js';
import type { Bootstrap, ChunkRef } from '../rafs/tree.js';
import { decodeZinfo } from '../soci/zinfo.js';
import { decodeZtoc, type ZtocEntry } from '../soci/ztoc.js';
import { assertChunkSize } from './chunker.js';
import { type LayerEntry, LayerTree } from './layer-tree.js';
import { decodePaxAttributes } from './tar/pax.js';

const ENTRY_TYPES: Record<ZtocEntry['type'], LayerEntry['type']> = {
  reg: 'file', dir: 'dir', symlink: 'symlink', hardlink: 'hardlink', char: 'char', block: 'block', fifo: 'fifo',
};

export interface ZtocLayerOptions {
  /** The zTOC, as fetched (its digest checked by the caller against the SOCI index). */
  ztoc: Buffer;
  /** The layer it indexes: `sha256:<hex>` and its size in bytes. */
  layerDigest: string;
  layerSize: number;
  chunkSize: number;
}

export interface ZtocLayerModel {
  model: Bootstrap;
  blobId: string;
  stats: { entries: number; chunks: number; spans: number; spanSize: number };
}

/** A zTOC → the layer model whose one blob is the layer, read through the zTOC's checkpoints. */
export function ztocLayerModel(opts: ZtocLayerOptions): ZtocLayerModel {
  assertChunkSize(opts.chunkSize);
  const ztoc = decodeZtoc(opts.ztoc);
  if (ztoc.algorithm !== 'gzip') throw new Error(`zTOC of layer ${opts.layerDigest}: a ${ztoc.algorithm} layer (only gzip layers are served through a zTOC)`);
  if (ztoc.compressedArchiveSize !== opts.layerSize) {
    throw new Error(`zTOC of layer ${opts.layerDigest}: it indexes ${ztoc.compressedArchiveSize} bytes, the layer has ${opts.layerSize}`);
  }
  const zinfo = decodeZinfo(ztoc.checkpoints, ztoc);
  const checkpoints: Checkpoint[] = zinfo.checkpoints.map((c, i) => ({
    input: c.input, output: c.output, bits: c.bits, spanDigest: ztoc.spanDigests[i]!,
    // soci keeps a whole 32 KiB; before that much output, only its last `output` bytes are the stream's
    window: compress('zstd', c.window.subarray(CHECKPOINT_WINDOW - Math.min(c.output, CHECKPOINT_WINDOW)), 9),
  }));
  const tree = new LayerTree();
  const chunks: ChunkRef[] = [];
  for (const entry of ztoc.entries) {
    const inode = tree.add(layerEntry(entry));
    if (!inode) continue;
    for (let at = 0, index = 0; at < entry.size; at += opts.chunkSize, index++) {
      const ref = spanChunk(checkpoints, opts.layerSize, entry.offset + at, Math.min(opts.chunkSize, entry.size - at), chunks);
      inode.chunks[index] = ref;
      chunks.push(ref);
    }
  }
  const blob = layerAsIsBlob({
    blobId: '', chunkCount: chunks.length, chunkSize: opts.chunkSize, compressor: 'gzip', compressedSize: opts.layerSize,
    uncompressedSize: chunks.reduce((end, c) => Math.max(end, nextSlot(c)), 0), checkpoints,
  }, BlobFeature.CHECKPOINTS | BlobFeature.SPANS);
  blob.tocDigest = Buffer.from(opts.layerDigest.slice('sha256:'.length), 'hex');
  blob.blobId = spanBlobId(blob, chunks);
  const model: Bootstrap = { root: tree.root, blobs: chunks.length > 0 ? [blob] : [], chunkSize: opts.chunkSize, compressor: 'gzip', digester: 'sha256', prefetch: [] };
  return { model, blobId: blob.blobId, stats: { entries: ztoc.entries.length, chunks: chunks.length, spans: checkpoints.length, spanSize: zinfo.spanSize } };
}

/** A zTOC entry as the tree takes a tar entry: its PAX records give the xattrs. */
function layerEntry(e: ZtocEntry): LayerEntry {
  return {
    type: ENTRY_TYPES[e.type], path: e.name, linkpath: e.linkname, mode: e.mode & 0o7777, uid: e.uid, gid: e.gid,
    mtime: e.mtime, mtimeNsec: e.mtimeNsec, size: e.type === 'reg' ? e.size : 0, devmajor: e.devmajor, devminor: e.devminor,
    xattrs: decodePaxAttributes(e.pax).xattrs,
  };
}

/**
 * The chunk of the `size` bytes at `offset` of the decoded stream: decoded from the last checkpoint
 * at or before it, its stored bytes the spans from there to the one holding its last byte. Its
 * digest field, which nothing checks (the spans are), tells chunks apart: the spans' digests and
 * where in them it lies.
 */
function spanChunk(checkpoints: readonly Checkpoint[], layerSize: number, offset: number, size: number, before: readonly ChunkRef[]): ChunkRef {
  const first = checkpointAt(checkpoints, offset);
  const last = checkpointAt(checkpoints, offset + size - 1);
  const c = checkpoints[first]!;
  const innerOffset = offset - c.output;
  if (innerOffset > MAX_INNER_OFFSET) throw new Error(`zTOC: ${innerOffset} bytes from a checkpoint to the data at ${offset}, over the ${MAX_INNER_OFFSET} a chunk may be decoded through`);
  const start = checkpointStart(c);
  const hash = createHash('sha256');
  for (let k = first; k <= last; k++) hash.update(checkpoints[k]!.spanDigest!);
  const prev = before.at(-1);
  return {
    blobIndex: 0, ciIndex: before.length, digest: hash.update(`${innerOffset}+${size}`).digest(),
    compressedOffset: start, compressedSize: spanEnd(checkpoints, last, layerSize) - start,
    uncompressedOffset: prev ? nextSlot(prev) : 0, uncompressedSize: size,
    compressed: true, fileOffset: 0, innerOffset, checkpoint: first,
  };
}
