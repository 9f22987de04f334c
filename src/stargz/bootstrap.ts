// One stargz-family layer as a RAFS model (rafs/tree.ts) whose single blob is the layer blob itself,
// unmodified: each file piece becomes a chunk that names its gzip member / zstd frame by stored
// offset and length (BlobFeature.MEMBERS), verified by the piece's sha256. Unlike upstream nydus we
// keep mtimes, devices, fifos and innerOffset pieces.
import { BlobFeature, layerAsIsBlob, nextSlot } from '../rafs/blob-table.js';
import { isPowerOfTwo } from '../rafs/bytes.js';
import { maxStoredMemberSize } from '../rafs/chunk.js';
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from '../rafs/superblock.js';
import {
  type Bootstrap, type ChunkRef, type Inode, isDir, newDir, newInode, parentDir,
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, type TreeNode,
} from '../rafs/tree.js';
import { StargzFormatError } from './errors.js';
import type { StargzToc } from './toc.js';
import type { TocEntry, TocEntryType } from './toc-entry.js';
import { TOC_TAR_NAME } from './toc-bytes.js';

export const PREFETCH_LANDMARK = '.prefetch.landmark';
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';
/** Root entries that are the format's, not the image's: never shown. */
const HIDDEN = new Set([TOC_TAR_NAME, PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK]);

const TYPE_BITS: Record<Exclude<TocEntryType, 'hardlink' | 'chunk'>, number> = {
  dir: S_IFDIR, reg: S_IFREG, symlink: S_IFLNK, char: S_IFCHR, block: S_IFBLK, fifo: S_IFIFO,
};

export interface StargzBootstrapOptions {
  /** The layer's digest, 64 lowercase hex: the blob id. */
  blobId: string;
  /** The layer blob's size in bytes. */
  blobSize: number;
  /**
   * The RAFS chunk size to use (e.g. one shared by every layer of an image); refused when the
   * layer's pieces do not fit it. Default: the smallest that fits (stargzChunkSize).
   */
  chunkSize?: number;
}

/** Whether an entry is shown in the tree: landmarks and the TOC's own entry are not. */
function isHidden(entry: TocEntry): boolean {
  return HIDDEN.has(entry.name);
}

function isPiece(entry: TocEntry): boolean {
  return entry.type === 'chunk' || (entry.type === 'reg' && entry.size > 0);
}

/**
 * The smallest RAFS chunk size (a power of two, 4 KiB … 16 MiB) that the layer's pieces fit: RAFS
 * files are cut in equal chunks, so every piece but a file's last must be exactly that size.
 */
export function stargzChunkSize(toc: StargzToc): number {
  let largest = 0;
  // indexed loops over the entries: this runs cold, and for-of's iterator protocol costs more than the work
  for (let i = 0; i < toc.entries.length; i++) {
    const entry = toc.entries[i]!;
    if (isPiece(entry) && !isHidden(entry)) largest = Math.max(largest, entry.chunkSize);
  }
  let size = MIN_CHUNK_SIZE;
  while (size < largest && size < MAX_CHUNK_SIZE) size *= 2;
  if (largest > size) throw new StargzFormatError(`stargz layer: a ${largest}-byte piece, larger than the largest RAFS chunk (${MAX_CHUNK_SIZE} bytes)`);
  return size;
}

/** The layer as a Bootstrap whose one blob (index 0) is the layer blob; no blob when no file has data. */
export function stargzBootstrap(toc: StargzToc, opts: StargzBootstrapOptions): Bootstrap {
  if (!/^[0-9a-f]{64}$/.test(opts.blobId)) throw new StargzFormatError(`stargz layer: blob id ${JSON.stringify(opts.blobId)} is not 64 lowercase hex`);
  const chunkSize = opts.chunkSize ?? stargzChunkSize(toc);
  if (!isPowerOfTwo(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new StargzFormatError(`stargz layer: chunk size ${chunkSize} is not a power of two of 4 KiB to 16 MiB`);
  }
  const compressor = toc.footer.kind === 'zstd:chunked' ? 'zstd' : 'gzip';
  const builder = new TreeBuilder(chunkSize, compressor);
  for (let i = 0; i < toc.entries.length; i++) builder.add(toc.entries[i]!);
  const blob = layerAsIsBlob({
    blobId: opts.blobId, chunkCount: builder.chunks.length, chunkSize, compressor, compressedSize: opts.blobSize, uncompressedSize: builder.uncompressedSize,
  }, BlobFeature.MEMBERS);

  return {
    root: builder.root,
    blobs: builder.chunks.length > 0 ? [blob] : [],
    chunkSize,
    compressor,
    digester: 'sha256',
    prefetch: prefetchList(toc),
  };
}

/**
 * The prioritized files: the regular files before `.prefetch.landmark` in blob order, which the
 * layer's builder moved to its front. None when the layer has `.no.prefetch.landmark` or neither.
 */
export function prefetchList(toc: StargzToc): string[] {
  const landmark = toc.entries.findIndex((e) => e.name === PREFETCH_LANDMARK && e.type === 'reg');
  if (landmark < 0) return [];
  const files = toc.entries.slice(0, landmark).filter((e) => e.type === 'reg' && !isHidden(e));
  return [...new Set(files.map((e) => `/${e.name}`))];
}

/** Assembles the tree entry by entry, in blob order, and the blob's chunks as pieces arrive. */
class TreeBuilder {
  readonly root: TreeNode = newDir('/');
  readonly chunks: ChunkRef[] = [];
  uncompressedSize = 0;
  private readonly byPiece = new Map<string, ChunkRef>();
  /** The file that `chunk` entries continue, and its entry; undefined for hidden files. */
  private file: { inode: Inode; entry: TocEntry } | undefined;
  /**
   * Directories by path, as met: entries come directory by directory, so most find their parent
   * here without a walk from the root. Emptied whenever an entry replaces a directory.
   */
  private readonly dirs = new Map<string, TreeNode>();

  constructor(private readonly chunkSize: number, private readonly compressor: 'gzip' | 'zstd') {}

  add(entry: TocEntry): void {
    if (entry.type === 'chunk') {
      if (this.file) this.addPiece(this.file, entry);
      return;
    }
    this.file = undefined;
    if (isHidden(entry)) return;
    if (entry.name === '') {
      if (entry.type !== 'dir') throw new StargzFormatError(`stargz TOC: the root entry is a ${entry.type}, not a dir`);
      this.root.inode = inodeOf(entry);
      return;
    }
    const slash = entry.name.lastIndexOf('/');
    const parent = slash < 0 ? this.root : this.dirAt(entry.name.slice(0, slash));
    const name = entry.name.slice(slash + 1);
    const existing = parent.children!.get(name);
    if (existing && isDir(existing) && entry.type !== 'dir') this.dirs.clear();
    if (entry.type === 'hardlink') {
      parent.children!.set(name, { name, inode: this.linkTarget(entry).inode });
      return;
    }
    const inode = inodeOf(entry);
    if (entry.type === 'dir') {
      // a directory entry after its contents (or repeated) updates attributes and keeps children
      if (existing && isDir(existing)) existing.inode = inode;
      else parent.children!.set(name, { name, inode, children: new Map() });
      return;
    }
    parent.children!.set(name, { name, inode });
    if (isPiece(entry)) {
      this.file = { inode, entry };
      this.addPiece(this.file, entry);
    }
  }

  /** The directory at `path` (made where missing, as parentDir makes them: it is the parent of `path/`). */
  private dirAt(path: string): TreeNode {
    let dir = this.dirs.get(path);
    if (dir === undefined) {
      dir = parentDir(this.root, [...path.split('/'), '']);
      this.dirs.set(path, dir);
    }
    return dir;
  }

  /** One piece as the file's next chunk; the same stored piece twice is one chunk. */
  private addPiece(file: { inode: Inode; entry: TocEntry }, piece: TocEntry): void {
    const { inode, entry } = file;
    const index = inode.chunks.length;
    if (piece.chunkOffset !== index * this.chunkSize || piece.chunkSize !== Math.min(this.chunkSize, entry.size - piece.chunkOffset)) {
      throw new StargzFormatError(`${where(entry)}: a ${piece.chunkSize}-byte piece at file offset ${piece.chunkOffset} is not chunk ${index} of a ${this.chunkSize}-byte RAFS chunk grid (the layer's chunk size must be a power of two of 4 KiB to 16 MiB)`);
    }
    const digest = piece.chunkDigest || (piece.chunkSize === entry.size ? entry.digest : '');
    if (digest === '') throw new StargzFormatError(`${where(entry)}: the piece at file offset ${piece.chunkOffset} has no chunkDigest (and is not the whole file): it could not be verified`);
    const key = `${piece.offset}:${piece.innerOffset}:${piece.chunkSize}`;
    let chunk = this.byPiece.get(key);
    if (chunk === undefined) {
      chunk = {
        blobIndex: 0,
        ciIndex: this.chunks.length,
        digest: Buffer.from(digest, 'hex'),
        compressedOffset: piece.offset,
        // the range to the next piece also holds the tar headers that follow this file; decoding stops
        // before them, so the range is cut where this piece's bytes must end (what the reader allows)
        compressedSize: Math.min(piece.compressedSize, maxStoredMemberSize(piece.innerOffset, piece.chunkSize, this.compressor)),
        uncompressedOffset: this.uncompressedSize,
        uncompressedSize: piece.chunkSize,
        compressed: true,
        fileOffset: piece.chunkOffset,
        innerOffset: piece.innerOffset,
      };
      this.uncompressedSize = nextSlot(chunk);
      this.chunks.push(chunk);
      this.byPiece.set(key, chunk);
    } else if (chunk.digest.toString('hex') !== digest) {
      throw new StargzFormatError(`${where(entry)}: the piece at blob offset ${piece.offset} (inner ${piece.innerOffset}) has two different digests`);
    }
    inode.chunks.push(chunk);
  }

  private linkTarget(entry: TocEntry): TreeNode {
    let node: TreeNode | undefined = this.root;
    for (const part of entry.linkName === '' ? [] : entry.linkName.split('/')) node = node?.children?.get(part);
    if (!node) {
      throw new StargzFormatError(`${where(entry)}: hardlink target ${JSON.stringify(entry.linkName)} is not an earlier entry`);
    }
    if (isDir(node)) throw new StargzFormatError(`${where(entry)}: hardlink to a directory`);
    return node;
  }
}

/** An entry in messages (built only when thrown: pieces are many). */
const where = (entry: TocEntry): string => `stargz TOC entry ${JSON.stringify(entry.name)}`;

function inodeOf(e: TocEntry): Inode {
  const inode = newInode(TYPE_BITS[e.type as keyof typeof TYPE_BITS] | e.mode);
  inode.uid = e.uid;
  inode.gid = e.gid;
  inode.mtime = e.mtime;
  inode.mtimeNsec = e.mtimeNsec;
  if (e.xattrs) inode.xattrs = new Map(e.xattrs);
  if (e.type === 'reg') inode.size = e.size;
  if (e.type === 'symlink') inode.symlinkTarget = e.linkName;
  if (e.type === 'char' || e.type === 'block') {
    inode.rdevMajor = e.devMajor;
    inode.rdevMinor = e.devMinor;
  }
  return inode;
}
