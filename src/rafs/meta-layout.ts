// Places every inode of a tree in a bootstrap's meta area (docs/rafs-v6.md §1.7, §1.10, §1.11, §1.15):
// inodes 32-byte aligned from (meta_blkaddr + 1) * bs — so the root gets nid 128 — each inode with
// its xattrs and inline tail or chunk indexes kept inside one block, then the directory and symlink
// blocks that did not fit inline. Depth-first like nydus-image: a directory, its non-directory
// children, then its subdirectories.
import { alignUp } from './bytes.js';
import { CHUNK_INDEX_SIZE } from './chunk.js';
import { type Dirent, FileType, fileTypeOfMode, packedDirentsSize, packSortedDirents, sortDirents } from './dirent.js';
import { RafsEncodeError } from './errors.js';
import { EXTENDED_INODE_SIZE, INODE_SLOT_SIZE, Layout } from './inode.js';
import { encodeXattrs } from './xattr.js';
import { type Inode, MAX_TREE_DEPTH, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type TreeNode } from './tree.js';

/** PATH_MAX - 1: the kernel reads a symlink target from a single page. */
export const MAX_SYMLINK_LENGTH = 4095;

/** One on-disk inode and where it goes. Hardlinked paths share a slot. */
export interface InodeSlot {
  inode: Inode;
  /** First path that reached this inode (for error messages and the prefetch table). */
  path: string;
  type: number;
  ino: number;
  nlink: number;
  /** Directories: the parent (the root is its own). */
  parent: InodeSlot | undefined;
  /** Directories: every dirent, `.` and `..` included; in block order once sized, nids filled in once placed. */
  dirents: SlotDirent[];
  xattrs: Buffer;
  layout: Layout;
  /** Directory dirents or symlink target: the i_size bytes of data. */
  data: Buffer;
  /** Bytes right after inode + xattrs: the inline tail, or alignment + chunk indexes. */
  inlineSize: number;
  /** Data blocks stored outside the inode area, at rawBlkaddr. */
  blocks: number;
  offset: number;
  nid: number;
  rawBlkaddr: number;
}

/** A dirent and the slot it names, whose nid it takes once inodes are placed. */
interface SlotDirent extends Dirent {
  target: InodeSlot;
}

export interface MetaLayout {
  /** In placement order; slots[0] is the root. */
  slots: InodeSlot[];
  /** The slots of the nodes asked for. */
  slotOf: Map<TreeNode, InodeSlot>;
  /** Block-aligned end of everything placed. */
  end: number;
}

/** Lays out the tree under `root`; the layout's slotOf gives the slots of the `wanted` nodes. */
export function layoutMeta(root: TreeNode, metaBlkaddr: number, blockSize: number, wanted: ReadonlySet<TreeNode> = new Set()): MetaLayout {
  if ((root.inode.mode & S_IFMT) !== S_IFDIR) throw new RafsEncodeError('bootstrap', 'the root is not a directory');
  const slotOf = new Map<TreeNode, InodeSlot>();
  const slots = collectSlots(root, (node, slot) => {
    if (wanted.has(node)) slotOf.set(node, slot);
  });
  // indexed loops: this runs cold, once per inode (for-of's iterator protocol costs more than the work)
  for (let i = 0; i < slots.length; i++) sizeSlot(slots[i]!, blockSize);
  const metaStart = metaBlkaddr * blockSize;
  const inodesEnd = placeInodes(slots, metaStart + blockSize, blockSize);
  let block = alignUp(inodesEnd, blockSize) / blockSize;
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i]!;
    slot.nid = (slot.offset - metaStart) / INODE_SLOT_SIZE;
    if (slot.blocks === 0) continue;
    slot.rawBlkaddr = block;
    block += slot.blocks;
  }
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i]!;
    if (slot.type !== S_IFDIR) continue;
    const dirents = slot.dirents;
    for (let d = 0; d < dirents.length; d++) dirents[d]!.nid = dirents[d]!.target.nid;
    slot.data = packSortedDirents(dirents, blockSize);
  }
  return { slots, slotOf, end: block * blockSize };
}

/** What a slot without xattrs or data holds (empty, so never written to). */
const EMPTY = Buffer.alloc(0);

function newSlot(inode: Inode, path: string, parent?: InodeSlot): InodeSlot {
  const type = inode.mode & S_IFMT;
  if (fileTypeOfMode(inode.mode) === FileType.UNKNOWN) throw new RafsEncodeError('inode', `${path}: unknown file type in mode 0o${inode.mode.toString(8)}`);
  return {
    inode, path, type, ino: 0, nlink: type === S_IFDIR ? 2 : 0, parent, dirents: [], xattrs: EMPTY,
    layout: Layout.FLAT_PLAIN, data: EMPTY, inlineSize: 0, blocks: 0, offset: 0, nid: 0, rawBlkaddr: 0,
  };
}

/** Walks the tree (iteratively) into slots in placement order; refuses a tree the reader would not walk. */
function collectSlots(root: TreeNode, reached: (node: TreeNode, slot: InodeSlot) => void): InodeSlot[] {
  const rootSlot = newSlot(root.inode, '/');
  rootSlot.parent = rootSlot;
  reached(root, rootSlot);
  const order: InodeSlot[] = [];
  const linked = new Map<Inode, InodeSlot>();
  const seenDirs = new Set<TreeNode>();
  const pending: [InodeSlot, TreeNode, number][] = [[rootSlot, root, 0]];
  while (pending.length > 0) {
    const [dir, node, depth] = pending.pop()!;
    if (seenDirs.has(node)) throw new RafsEncodeError('bootstrap', `directory ${dir.path} appears twice in the tree`);
    seenDirs.add(node);
    order.push(dir);
    dir.dirents.push(direntOf('.', dir), direntOf('..', dir.parent!));
    if (node.children?.size && depth >= MAX_TREE_DEPTH) throw new RafsEncodeError('bootstrap', `${dir.path.slice(0, 64)}... has entries deeper than ${MAX_TREE_DEPTH} components`);
    const subdirs: [InodeSlot, TreeNode, number][] = [];
    // the default sort compares UTF-16 code units: the byte order of byte-string names
    const names = node.children ? [...node.children.keys()].sort() : [];
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const child = node.children!.get(name)!;
      const path = dir.path === '/' ? `/${name}` : `${dir.path}/${name}`;
      const slot = childSlot(child, path, dir, linked, order);
      reached(child, slot);
      if (slot.type === S_IFDIR) {
        dir.nlink++;
        subdirs.push([slot, child, depth + 1]);
      }
      dir.dirents.push(direntOf(name, slot));
    }
    // one at a time: spreading a directory of 200k subdirectories as arguments overflows the stack
    for (let i = subdirs.length - 1; i >= 0; i--) pending.push(subdirs[i]!);
  }
  for (let i = 0; i < order.length; i++) order[i]!.ino = i + 1;
  return order;
}

/**
 * Non-directories reached through the same Inode object are one slot: a hardlink, with one nid
 * behind several dirents. (nydus-image splits hardlinked symlinks and devices into separate
 * inodes; EROFS allows sharing any of them, and sharing keeps what tar extracts.)
 */
function childSlot(child: TreeNode, path: string, dir: InodeSlot, linked: Map<Inode, InodeSlot>, order: InodeSlot[]): InodeSlot {
  const type = child.inode.mode & S_IFMT;
  if ((type === S_IFDIR) !== (child.children !== undefined)) throw new RafsEncodeError('bootstrap', `${path}: children must be present exactly for directories`);
  if (type === S_IFDIR) return newSlot(child.inode, path, dir);
  let slot = linked.get(child.inode);
  if (slot === undefined) {
    slot = newSlot(child.inode, path);
    linked.set(child.inode, slot);
    order.push(slot);
  }
  slot.nlink++;
  return slot;
}

function direntOf(name: string, target: InodeSlot): SlotDirent {
  return { name, nid: 0, fileType: fileTypeOfMode(target.inode.mode), target };
}

/** Chooses the layout and sizes; a directory's dirents are sorted and sized here, encoded once placed. */
function sizeSlot(slot: InodeSlot, blockSize: number): void {
  slot.xattrs = encodeXattrs(slot.inode.xattrs);
  const head = EXTENDED_INODE_SIZE + slot.xattrs.length;
  if (slot.type === S_IFREG) {
    slot.layout = Layout.CHUNK_BASED;
    slot.inlineSize = alignUp(head, CHUNK_INDEX_SIZE) - head + slot.inode.chunks.length * CHUNK_INDEX_SIZE;
    return;
  }
  let size: number;
  if (slot.type === S_IFDIR) {
    slot.dirents = sortDirents(slot.dirents);
    size = packedDirentsSize(slot.dirents, blockSize);
  } else if (slot.type === S_IFLNK) {
    slot.data = symlinkTarget(slot);
    size = slot.data.length;
  } else return;
  const tail = size % blockSize;
  if (tail > 0 && head + tail <= blockSize) {
    slot.layout = Layout.FLAT_INLINE;
    slot.inlineSize = tail;
    slot.blocks = Math.floor(size / blockSize);
  } else {
    slot.blocks = Math.ceil(size / blockSize);
  }
}

function symlinkTarget(slot: InodeSlot): Buffer {
  const target = slot.inode.symlinkTarget ?? '';
  if (target.length === 0 || target.length > MAX_SYMLINK_LENGTH || /[^\x01-\xff]/.test(target)) {
    throw new RafsEncodeError('symlink', `${slot.path}: the target must be 1..${MAX_SYMLINK_LENGTH} bytes without NUL`);
  }
  return Buffer.from(target, 'latin1');
}

/**
 * Assigns 32-byte aligned offsets from `start`. An inode with its xattrs and inline data never
 * straddles a block (the kernel rejects inline data that does); a record larger than a block
 * starts a block and only its inode + xattrs are kept together.
 */
function placeInodes(slots: InodeSlot[], start: number, blockSize: number): number {
  let cursor = start;
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i]!;
    const head = EXTENDED_INODE_SIZE + slot.xattrs.length;
    const record = head + slot.inlineSize;
    const together = record <= blockSize ? record : head;
    cursor = alignUp(cursor, INODE_SLOT_SIZE);
    const blockEnd = (Math.floor(cursor / blockSize) + 1) * blockSize;
    if (cursor % blockSize !== 0 && cursor + together > blockEnd) cursor = blockEnd;
    slot.offset = cursor;
    cursor += record;
  }
  return cursor;
}
