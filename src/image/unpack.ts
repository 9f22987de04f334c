// `unpack`: an image's tree back into a tar stream (GNU tar compatible, PAX where needed).
import type { Writable } from 'node:stream';
import { TarWriter } from '../convert/tar/write.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, type Inode, type TreeNode } from '../rafs/tree.js';
import { log } from '../util/log.js';
import type { LocalImage } from './local.js';

export interface UnpackResult {
  entries: number;
  bytes: number;
}

export async function unpackToTar(image: LocalImage, out: Writable): Promise<UnpackResult> {
  const tar = new TarWriter(out);
  const firstPath = new Map<Inode, string>();
  const result: UnpackResult = { entries: 0, bytes: 0 };
  const { root } = image.rafs.toBootstrap();
  await tar.dir({ path: './', ...attrs(root.inode) });
  const visit = async (dir: TreeNode, prefix: string): Promise<void> => {
    for (const name of [...dir.children!.keys()].sort()) {
      const node = dir.children!.get(name)!;
      const path = `${prefix}${name}`;
      await writeEntry(image, tar, node, path, firstPath, result);
      if (node.children) await visit(node, `${path}/`);
    }
  };
  await visit(root, './');
  await tar.finish();
  return result;
}

async function writeEntry(image: LocalImage, tar: TarWriter, node: TreeNode, path: string, firstPath: Map<Inode, string>, result: UnpackResult): Promise<void> {
  const { inode } = node;
  const meta = { path, ...attrs(inode) };
  const type = inode.mode & S_IFMT;
  const linkedTo = type !== S_IFDIR ? firstPath.get(inode) : undefined;
  result.entries++;
  if (linkedTo !== undefined) return tar.hardlink(meta, linkedTo);
  if (type !== S_IFDIR) firstPath.set(inode, path);
  switch (type) {
    case S_IFDIR: return tar.dir(meta);
    case S_IFLNK: return tar.symlink(meta, inode.symlinkTarget ?? '');
    case S_IFCHR: return tar.charDevice(meta, inode.rdevMajor, inode.rdevMinor);
    case S_IFBLK: return tar.blockDevice(meta, inode.rdevMajor, inode.rdevMinor);
    case S_IFIFO: return tar.fifo(meta);
    case S_IFREG:
      result.bytes += inode.size;
      return tar.file({ ...meta, size: inode.size }, fileData(image, inode));
    default:
      log.warn('tar has no entry type for this file: skipped', { path: Buffer.from(path, 'latin1').toString('utf8'), mode: inode.mode.toString(8) });
      result.entries--;
  }
}

async function* fileData(image: LocalImage, inode: Inode): AsyncGenerator<Buffer> {
  if (inode.chunks.length > 0 && !image.chunks) throw new Error('unpack needs the blob directory for file data');
  for (const ref of inode.chunks) yield await image.chunks!.read(ref);
}

function attrs(inode: Inode) {
  return { mode: inode.mode & 0o7777, uid: inode.uid, gid: inode.gid, mtime: inode.mtime, mtimeNsec: inode.mtimeNsec, xattrs: inode.xattrs };
}
