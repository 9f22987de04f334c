// Real samples the fuzz targets mutate: bootstraps written by our writer (with their blob) and by
// upstream nydus-image (when the upstream fixtures are here: see UPSTREAM_SAMPLE), and the offsets
// of their fields worth hitting.
import { RafsImage } from '../../src/rafs/reader.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { fixturesAvailable, lazyFixture } from '../helpers/fixtures.js';
import { sampleImage } from '../rafs/helpers.js';

/** The sample name of upstream's bootstrap; the fuzz files check it is there (itFixtures). */
export const UPSTREAM_SAMPLE = 'upstream rafs-v6-2.2.boot';
const upstreamBoot = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');

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
 * blocks (`bigDir` entries), with its blob; and upstream's v6 bootstrap when the fixtures are here.
 */
export function bootstrapSamples(bigDir = 120): BootstrapSample[] {
  const blobId = 'c'.repeat(64);
  const ours = sampleImage(blobId, bigDir);
  const boot = writeBootstrap(ours.bootstrap);
  const samples: BootstrapSample[] = [{ name: 'sample', boot, blob: { id: blobId, data: ours.blobData }, hot: hotOffsets(boot), nodes: nodesOf(boot, ours.contents) }];
  if (fixturesAvailable) {
    const upstream = upstreamBoot();
    samples.push({ name: UPSTREAM_SAMPLE, boot: upstream, hot: hotOffsets(upstream), nodes: nodesOf(upstream, new Map()) });
  }
  return samples;
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
