// Real samples the fuzz targets mutate: bootstraps written by our writer (with their blob) and by
// upstream nydus-image, and the offsets of their fields worth hitting.
import { readFileSync } from 'node:fs';
import { RafsImage } from '../../src/rafs/reader.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { fixture, sampleImage } from '../rafs/helpers.js';

export interface BootstrapSample {
  name: string;
  boot: Buffer;
  /** The uncompressed blob the bootstrap's chunks point into (our samples only). */
  blob?: { id: string; data: Buffer };
  /** Offsets of superblock, table and inode fields. */
  hot: number[];
  /** Every nid of the unmutated image with its path, and the data of its regular files. */
  nodes: { nid: number; path: string; name: string; data?: Buffer }[];
}

/**
 * Every file type, xattrs, hardlinks, multi-chunk files, long symlinks and a directory of a few
 * blocks (`bigDir` entries), with its blob; and upstream's v6 bootstrap.
 */
export function bootstrapSamples(bigDir = 120): BootstrapSample[] {
  const blobId = 'c'.repeat(64);
  const ours = sampleImage(blobId, bigDir);
  const boot = writeBootstrap(ours.bootstrap);
  const upstream = readFileSync(fixture('bootstrap', 'rafs-v6-2.2.boot'));
  return [
    { name: 'sample', boot, blob: { id: blobId, data: ours.blobData }, hot: hotOffsets(boot), nodes: nodesOf(boot, ours.contents) },
    { name: 'upstream rafs-v6-2.2.boot', boot: upstream, hot: hotOffsets(upstream), nodes: nodesOf(upstream, new Map()) },
  ];
}

/** Superblocks, blob/chunk/prefetch tables, and the first bytes of every inode. */
function hotOffsets(buf: Buffer): number[] {
  const image = RafsImage.open(buf);
  const meta = image.superblock.metaBlkaddr * image.blockSize;
  const offsets = [...Array.from({ length: 128 }, (_, i) => 1024 + i), ...Array.from({ length: 64 }, (_, i) => 1152 + i), 1408, 1412];
  const { blobTableOffset, chunkTableOffset, prefetchTableOffset } = image.extSuperblock;
  for (let i = 0; i < 256; i += 4) offsets.push(blobTableOffset + i);
  for (let i = 0; i < 160; i += 4) offsets.push(chunkTableOffset + i);
  if (prefetchTableOffset) offsets.push(prefetchTableOffset, prefetchTableOffset + 4);
  for (const e of image.walk()) {
    const at = meta + e.nid * 32;
    for (let i = 0; i < 96; i += 2) offsets.push(at + i);
  }
  return [...new Set(offsets)];
}

function nodesOf(buf: Buffer, contents: Map<string, Buffer>): BootstrapSample['nodes'] {
  return [...RafsImage.open(buf).walk()].map((e) => ({ nid: e.nid, path: e.path, name: e.name, data: contents.get(e.path) }));
}
