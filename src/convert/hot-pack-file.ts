// Writes an optimized image's hot pack (rafs/hot-pack.ts) from its hot blob: the region's chunks
// read back from the blob file, decoded (and so verified), concatenated in region order and
// compressed frame by frame at zstd's strongest level (the pack crosses the link on every cold
// start, and is built once).
import { createHash } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Codec, compressBatch, decompressBatch, digestBatch } from '../native/index.js';
import { type HotPackIndex, hotRegionOf, planFrames } from '../rafs/hot-pack.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';

const PACK_LEVEL = 19;

export interface HotPackFile {
  /** sha256 hex of the pack (its layer's digest). */
  id: string;
  path: string;
  size: number;
  index: HotPackIndex;
}

/** The pack of the hot blob at `blobPath` (`chunks`: its distinct chunks; `regionBytes`: its hot region's compressed size), written into `dir`. */
export async function writeHotPack(blob: BlobInfo, blobPath: string, chunks: readonly ChunkRef[], regionBytes: number, dir: string): Promise<HotPackFile | undefined> {
  const region = hotRegionOf(chunks, regionBytes);
  if (region.length === 0) return undefined;
  const stored = Buffer.alloc(regionBytes);
  const fh = await open(blobPath, 'r');
  try {
    const { bytesRead } = await fh.read(stored, 0, regionBytes, 0);
    if (bytesRead !== regionBytes) throw new Error(`hot blob ${blobPath}: ${bytesRead} of ${regionBytes} region bytes read`);
  } finally {
    await fh.close();
  }
  const data = await decodeRegion(blob, region, stored);
  const counts = planFrames(region.map((r) => r.uncompressedSize));
  const frames: Buffer[] = [];
  let at = 0;
  for (const n of counts) {
    frames.push(Buffer.concat(data.slice(at, at + n)));
    at += n;
  }
  const packed = await compressBatch('zstd', frames, PACK_LEVEL);
  const pack = Buffer.concat(packed);
  const id = createHash('sha256').update(pack).digest('hex');
  const path = join(dir, `hot-pack-${id}`);
  await writeFile(path, pack);
  return {
    id,
    path,
    size: pack.length,
    index: { blobId: blob.blobId, frames: packed.map((p, i) => ({ compressedSize: p.length, chunks: counts[i]! })) },
  };
}

/** The region's chunks decoded from the blob's bytes `stored`, each checked against its digest (the pack carries nothing unverified). */
async function decodeRegion(blob: BlobInfo, region: readonly ChunkRef[], stored: Buffer): Promise<Buffer[]> {
  const raw = region.map((r) => stored.subarray(r.compressedOffset, r.compressedOffset + r.compressedSize));
  const packed = region.flatMap((r, i) => (r.compressed && blob.compressor !== 'none' ? [i] : []));
  const decoded = await decompressBatch(blob.compressor as Codec, packed.map((i) => raw[i]!), packed.map((i) => region[i]!.uncompressedSize));
  const data = [...raw];
  packed.forEach((i, j) => (data[i] = decoded[j]!));
  const digests = await digestBatch(blob.digester, data);
  region.forEach((r, i) => {
    if (data[i]!.length !== r.uncompressedSize || !digests[i]!.equals(r.digest)) throw new Error(`hot blob chunk ${r.ciIndex} does not verify`);
  });
  return data;
}
