// `export --block`: the flat EROFS disk image (rafs/flat-image.ts) written out whole — the bootstrap
// at block 0 and each blob's uncompressed data at its device slot's mapped_blkaddr — for the kernel
// to mount with no extra devices (docs/rafs-v6.md §3.10).
import { open, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { FlatImageMap, imageChunks } from '../rafs/flat-image.js';
import { forEachLimited } from '../util/concurrency.js';
import type { LocalImage } from './local.js';

export interface ExportResult {
  size: number;
  chunks: number;
}

/** Writes the flat image of a local image (bootstrap file + blob directory) or of a registry image. */
export async function exportBlockImage(image: Pick<LocalImage, 'rafs' | 'chunks'>, bootstrap: Buffer, output: string): Promise<ExportResult> {
  const { rafs, chunks } = image;
  if (!chunks && rafs.blobs.length > 0) throw new Error('export --block needs the blob directory');
  const map = FlatImageMap.build(rafs, bootstrap.length, imageChunks(rafs));
  let at = 0;
  const placed = map.pieces(0, map.size).map((piece) => ({ piece, at: (at += piece.length) - piece.length }));
  const tmp = `${output}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const out = await open(tmp, 'w');
  try {
    await out.truncate(map.size);
    let count = 0;
    await forEachLimited(placed, 8, async ({ piece, at }) => {
      if (piece.kind === 'hole') return;
      if (piece.kind === 'meta') {
        await out.write(bootstrap, piece.offset, piece.length, at);
        return;
      }
      const data = await chunks!.read(piece.chunk);
      await out.write(data, piece.start, piece.length, at);
      count++;
    });
    await out.close();
    await rename(tmp, output);
    return { size: map.size, chunks: count };
  } catch (err) {
    await out.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}
