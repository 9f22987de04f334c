// Assembles a layer's file tree from tar entries, in archive order: later entries replace earlier
// ones at the same path, missing parent directories are created, hardlinks share the target's
// inode, whiteout files are kept as ordinary entries for merge to interpret.
import { TarPathError } from './tar/errors.js';
import type { TarEntry } from './tar/parse.js';
import { entryPathComponents } from './tar/path.js';
import {
  MAX_TREE_DEPTH, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, isDir, newDir, newInode, parentDir,
  type Inode, type TreeNode,
} from '../rafs/tree.js';

/** What the tree needs to know about one archive entry. */
export type LayerEntry = Pick<TarEntry, 'type' | 'path' | 'linkpath' | 'mode' | 'uid' | 'gid' | 'mtime' | 'mtimeNsec' | 'size' | 'devmajor' | 'devminor' | 'xattrs'>;

const TYPE_BITS: Record<LayerEntry['type'], number> = {
  file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, hardlink: S_IFREG, char: S_IFCHR, block: S_IFBLK, fifo: S_IFIFO,
};

export class LayerTree {
  readonly root: TreeNode = newDir('/');
  /** Directories an entry of the archive describes (the others were made for their contents). */
  private readonly listed = new Set<TreeNode>();

  /**
   * Adds an entry and returns the inode a regular file's data must be attached to (undefined for
   * every other type).
   */
  add(entry: LayerEntry): Inode | undefined {
    const parts = entryPathComponents(entry.path);
    // refused here, before its data is stored, rather than when the bootstrap is written
    if (parts.length > MAX_TREE_DEPTH) throw new TarPathError(`tar entry path has ${parts.length} components, more than the ${MAX_TREE_DEPTH} a RAFS tree may have`, entry.path);
    if (parts.length === 0) {
      if (entry.type !== 'dir') throw new TarPathError('the archive root must be a directory', entry.path);
      this.root.inode = this.inodeOf(entry);
      return undefined;
    }
    const parent = parentDir(this.root, parts);
    const name = parts[parts.length - 1]!;
    if (entry.type === 'hardlink') {
      parent.children!.set(name, { name, inode: this.linkTarget(entry).inode });
      return undefined;
    }
    const inode = this.inodeOf(entry);
    const existing = parent.children!.get(name);
    if (entry.type === 'dir') {
      // a directory entry after its contents (or repeated) updates attributes and keeps children
      if (existing && isDir(existing)) {
        existing.inode = inode;
        this.listed.add(existing);
      } else {
        const dir = { name, inode, children: new Map() };
        parent.children!.set(name, dir);
        this.listed.add(dir);
      }
      return undefined;
    }
    parent.children!.set(name, { name, inode });
    return entry.type === 'file' ? inode : undefined;
  }

  /** Paths (component lists) of the directories no entry describes: made, with default attributes, for what they hold. */
  implicitDirs(): string[][] {
    const out: string[][] = [];
    const walk = (dir: TreeNode, path: string[]): void => {
      for (const [name, child] of dir.children!) {
        if (!child.children) continue;
        const at = [...path, name];
        if (!this.listed.has(child)) out.push(at);
        walk(child, at);
      }
    };
    walk(this.root, []);
    return out;
  }

  private inodeOf(e: LayerEntry): Inode {
    const inode = newInode(TYPE_BITS[e.type] | (e.mode & 0o7777), {
      uid: e.uid, gid: e.gid, mtime: e.mtime, mtimeNsec: e.mtimeNsec, xattrs: new Map(e.xattrs),
    });
    if (e.type === 'file') inode.size = e.size;
    if (e.type === 'symlink') inode.symlinkTarget = e.linkpath;
    if (e.type === 'char' || e.type === 'block') {
      inode.rdevMajor = e.devmajor;
      inode.rdevMinor = e.devminor;
    }
    return inode;
  }

  private linkTarget(e: LayerEntry): TreeNode {
    const parts = entryPathComponents(e.linkpath);
    let node: TreeNode | undefined = this.root;
    for (const part of parts) node = node?.children?.get(part);
    if (!node) throw new TarPathError(`hardlink target does not exist (earlier) in the layer`, e.linkpath);
    if (isDir(node)) throw new TarPathError('hardlink to a directory', e.linkpath);
    return node;
  }
}
