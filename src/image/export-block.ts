// `export --block`: one flat EROFS disk image — the bootstrap at block 0 and each blob's
// uncompressed data at its device slot's mapped_blkaddr — that the kernel mounts with no
// extra devices (docs/rafs-v6.md §3.10).
import { open, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { RafsFormatError } from '../rafs/errors.js';
import type { Inode, TreeNode } from '../rafs/tree.js';
import { forEachLimited } from '../util/concurrency.js';
import { distinctChunks, type LocalImage } from './local.js';

export interface ExportResult {
  size: number;
  chunks: number;
}

export async function exportBlockImage(image: LocalImage, bootstrap: Buffer, output: string): Promise<ExportResult> {
  const { rafs, chunks } = image;
  if (!chunks && rafs.blobs.length > 0) throw new Error('export --block needs the blob directory');
  const bs = rafs.blockSize;
  const regions = rafs.devices.map((d, i) => {
    const start = d.mappedBlkaddr * bs;
    if (start < bootstrap.length) {
      throw new RafsFormatError('device table', 0, `blob ${i} is mapped at block ${d.mappedBlkaddr}, inside the bootstrap: not a flat-image bootstrap`);
    }
    return { start, end: start + d.blocks * bs };
  });
  const size = Math.max(bootstrap.length, ...regions.map((r) => r.end));
  const tmp = `${output}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const out = await open(tmp, 'w');
  try {
    await out.write(bootstrap, 0, bootstrap.length, 0);
    await out.truncate(size);
    const refs = distinctChunks(inodesOf(rafs.toBootstrap().root));
    await forEachLimited(refs, 8, async (ref) => {
      const data = await chunks!.read(ref);
      const at = regions[ref.blobIndex]!.start + ref.uncompressedOffset;
      if (at + data.length > regions[ref.blobIndex]!.end) {
        throw new RafsFormatError('chunk', ref.uncompressedOffset, `chunk ${ref.ciIndex} of blob ${ref.blobIndex} ends past the blob's ${rafs.devices[ref.blobIndex]!.blocks} blocks`);
      }
      await out.write(data, 0, data.length, at);
    });
    await out.close();
    await rename(tmp, output);
    return { size, chunks: refs.length };
  } catch (err) {
    await out.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Every inode of a tree (hardlinks once). */
export function* inodesOf(root: TreeNode): Generator<Inode> {
  const seen = new Set<Inode>();
  const stack = [root];
  while (stack.length) {
    const n = stack.pop()!;
    if (!seen.has(n.inode)) {
      seen.add(n.inode);
      yield n.inode;
    }
    // one push per child: a spread of a 200k-entry directory overflows the call stack
    if (n.children) for (const c of n.children.values()) stack.push(c);
  }
}
