// Where the chunks of an optimized image go, planned from an access trace (pure: a model and a
// trace in, values out). The files the trace read ("hot" files) are cut again at the hot chunk size
// into one new blob: first every chunk any read touched, in the order the reads first touched them
// (the hot region, contiguous, so a mount streams it in a few sequential reads), then the rest of
// the hot files' chunks. Every other file keeps its chunk references into the source's blobs;
// blobs that no file refers to any more are dropped.
import { type AccessTrace } from '../trace/access-trace.js';
import { chunkKey } from '../rafs/chunk.js';
import { type Bootstrap, type ChunkRef, fileType, type Inode, nodeAt, S_IFREG, type TreeNode } from '../rafs/tree.js';
import { KiB, MiB } from '../util/bytes.js';

const MIN_HOT_CHUNK_SIZE = 4 * KiB;
const MAX_HOT_CHUNK_SIZE = MiB;

/** The trace does not fit the image, or the options are wrong: nothing is built. */
export class OptimizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OptimizeError';
  }
}

export function assertHotChunkSize(size: number): void {
  const powerOfTwo = Number.isSafeInteger(size) && size > 0 && (size & (size - 1)) === 0;
  if (!powerOfTwo || size < MIN_HOT_CHUNK_SIZE || size > MAX_HOT_CHUNK_SIZE) {
    throw new OptimizeError(`hot chunk size must be a power of two from ${MIN_HOT_CHUNK_SIZE} to ${MAX_HOT_CHUNK_SIZE}, got ${size}`);
  }
}

export interface HotFile {
  /** Its path as the trace first read it (byte string). */
  path: string;
  /** The source image's inode (shared by its hard links). */
  inode: Inode;
  /** Its chunks at the hot chunk size. */
  chunkCount: number;
}

/** Chunk `index` (at the hot chunk size) of hot file `file`. */
export interface HotChunk {
  file: number;
  index: number;
}

export interface HotLayout {
  hotChunkSize: number;
  /** The hot files, in the order the trace first read them: the prefetch table's order too. */
  files: HotFile[];
  /** Every chunk of the hot files in blob order: the hot region (`hotRegionChunks` of them) first. */
  chunks: HotChunk[];
  hotRegionChunks: number;
  /** Uncompressed bytes of the hot region's chunks. */
  touchedBytes: number;
  /**
   * Compressed bytes of the source chunks the hot region's chunks overlap: the least a mount of
   * the source fetches to serve the trace's reads.
   */
  sourceTouchedBytes: number;
  /** Source blob indexes other files still refer to, in source order. */
  keptBlobs: number[];
  /** Source blob indexes no file refers to any more. */
  droppedBlobs: number[];
}

/**
 * The layout for `source` (whose bootstrap's sha256 is `sourceDigest`) from `trace`. Refuses a
 * trace of another bootstrap, a trace path that is not a regular file of the image (or whose size
 * differs), and a read past a file's end.
 */
export function planHotLayout(source: Bootstrap, sourceDigest: string, trace: AccessTrace, hotChunkSize: number): HotLayout {
  assertHotChunkSize(hotChunkSize);
  if (trace.bootstrap !== sourceDigest) {
    throw new OptimizeError(`the trace was taken on bootstrap sha256:${trace.bootstrap}, the source image's bootstrap is sha256:${sourceDigest}`);
  }
  const inodes = trace.files.map((f) => regularFileAt(source.root, f.path, f.size));
  const touches = new FirstTouches(hotChunkSize);
  // stable: reads of the same millisecond keep the recorder's order
  for (const read of trace.reads.filter((r) => r.length > 0).sort((a, b) => a.t - b.t)) {
    const inode = inodes[read.file]!;
    const end = read.offset + read.length;
    if (end > inode.size) throw new OptimizeError(`the trace reads ${trace.files[read.file]!.path} at [${read.offset}, ${end}), past its end (${inode.size} bytes)`);
    touches.touch(inode, trace.files[read.file]!.path, read.offset, end);
  }
  const { files, chunks, touchedBytes } = touches;
  if (files.length === 0) throw new OptimizeError('the trace read no file data: there is nothing to lay out');
  const hotRegionChunks = chunks.length;
  touches.appendUntouched();
  const sourceTouchedBytes = storedBytesOf(source, files, chunks.slice(0, hotRegionChunks), hotChunkSize);
  const referenced = blobsReferenced(source.root, new Set(files.map((f) => f.inode)));
  const keptBlobs = source.blobs.map((_, i) => i).filter((i) => referenced.has(i));
  const droppedBlobs = source.blobs.map((_, i) => i).filter((i) => !referenced.has(i));
  return { hotChunkSize, files, chunks, hotRegionChunks, touchedBytes, sourceTouchedBytes, keptBlobs, droppedBlobs };
}

/** The hot files and their chunks, in the order reads first touched them; each chunk placed once. */
class FirstTouches {
  readonly files: HotFile[] = [];
  readonly chunks: HotChunk[] = [];
  touchedBytes = 0;
  private readonly fileOf = new Map<Inode, number>();
  /**
   * Per hot file, by chunk index i: the smallest index at or after i not placed yet (i itself while
   * unplaced), path-halved as it is followed: a read costs the chunks it places, not its length.
   */
  private readonly unplaced: Float64Array[] = [];

  constructor(private readonly hotChunkSize: number) {}

  /** A read of bytes [offset, end) of `inode` (named `path` in the trace: UTF-8 text). */
  touch(inode: Inode, path: string, offset: number, end: number): void {
    let file = this.fileOf.get(inode);
    if (file === undefined) {
      file = this.files.length;
      const chunkCount = Math.ceil(inode.size / this.hotChunkSize);
      this.files.push({ path: byteString(path), inode, chunkCount });
      this.fileOf.set(inode, file);
      const next = new Float64Array(chunkCount + 1);
      for (let i = 0; i <= chunkCount; i++) next[i] = i;
      this.unplaced.push(next);
    }
    const next = this.unplaced[file]!;
    const last = Math.floor((end - 1) / this.hotChunkSize);
    for (let i = firstUnplaced(next, Math.floor(offset / this.hotChunkSize)); i <= last; i = firstUnplaced(next, i + 1)) {
      next[i] = i + 1;
      this.chunks.push({ file, index: i });
      this.touchedBytes += Math.min(this.hotChunkSize, inode.size - i * this.hotChunkSize);
    }
  }

  /** Appends the chunks no read touched, file by file in file order. */
  appendUntouched(): void {
    this.files.forEach((f, file) => {
      const next = this.unplaced[file]!;
      for (let index = 0; index < f.chunkCount; index++) if (next[index] === index) this.chunks.push({ file, index });
    });
  }
}

function firstUnplaced(next: Float64Array, i: number): number {
  while (next[i] !== i) {
    next[i] = next[next[i]!]!;
    i = next[i]!;
  }
  return i;
}

/** Compressed bytes of the distinct source chunks that `chunks` (at `hotChunkSize`) overlap. */
function storedBytesOf(source: Bootstrap, files: readonly HotFile[], chunks: readonly HotChunk[], hotChunkSize: number): number {
  const seen = new Set<number>();
  let bytes = 0;
  for (const { file, index } of chunks) {
    const { inode } = files[file]!;
    const stored = storedChunkSize(source, inode);
    const start = index * hotChunkSize;
    const end = Math.min(start + hotChunkSize, inode.size);
    for (let j = Math.floor(start / stored); j <= Math.floor((end - 1) / stored); j++) {
      const c = inode.chunks[j]!;
      const key = chunkKey(c.blobIndex, c.ciIndex);
      if (seen.has(key)) continue;
      seen.add(key);
      bytes += c.compressedSize;
    }
  }
  return bytes;
}

/** The chunk size a source file (with data) is stored at: its blobs'. */
export function storedChunkSize(source: Bootstrap, inode: Inode): number {
  return source.blobs[inode.chunks[0]!.blobIndex]!.chunkSize;
}

/** A trace path (UTF-8 text of the image's path bytes) as the model's byte string. */
const byteString = (path: string): string => Buffer.from(path, 'utf8').toString('latin1');

function regularFileAt(root: TreeNode, path: string, size: number): Inode {
  const node = nodeAt(root, byteString(path));
  if (!node) throw new OptimizeError(`the trace names ${path}, which is not in the image`);
  if (fileType(node.inode.mode) !== S_IFREG) throw new OptimizeError(`the trace names ${path}, which is not a regular file of the image`);
  if (node.inode.size !== size) throw new OptimizeError(`the trace says ${path} has ${size} bytes, the image's has ${node.inode.size}`);
  return node.inode;
}

/** Blob indexes the chunks of regular files other than `except` refer to. */
function blobsReferenced(root: TreeNode, except: ReadonlySet<Inode>): Set<number> {
  const blobs = new Set<number>();
  forEachInode(root, (inode) => {
    if (fileType(inode.mode) !== S_IFREG || except.has(inode)) return;
    for (const c of inode.chunks) blobs.add(c.blobIndex);
  });
  return blobs;
}

/** Visits the inode of every node below and including `root` (a hard-linked inode once per link). */
function forEachInode(root: TreeNode, visit: (inode: Inode) => void): void {
  const stack = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    visit(node.inode);
    if (node.children) for (const child of node.children.values()) stack.push(child);
  }
}

export interface OptimizedTree {
  /**
   * The optimized image but for its hot blob's blob-table entry (appended once the blob is built):
   * the source tree, kept blobs renumbered, hot files' inodes new, prefetch = the hot files in order.
   */
  bootstrap: Bootstrap;
  /** The hot files' new inodes, one per layout file: the hot blob build fills their chunk lists. */
  hotInodes: Inode[];
  /** Index of the hot blob in the blob table. */
  hotBlobIndex: number;
}

/** The optimized image's tree for `layout` (the source model is left as it is). */
export function optimizedTree(source: Bootstrap, layout: HotLayout): OptimizedTree {
  const renumbered = new Map(layout.keptBlobs.map((old, i) => [old, i]));
  const hotInodes = layout.files.map((f) => ({ ...f.inode, chunks: new Array<ChunkRef>(f.chunkCount) }));
  const replaced = new Map<Inode, Inode>(layout.files.map((f, i) => [f.inode, hotInodes[i]!]));
  const inodeFor = (inode: Inode): Inode => {
    let out = replaced.get(inode);
    if (out === undefined) {
      out = { ...inode, chunks: inode.chunks.map((c) => ({ ...c, blobIndex: renumbered.get(c.blobIndex)! })) };
      replaced.set(inode, out);
    }
    return out;
  };
  const root = copyTree(source.root, inodeFor);
  const bootstrap: Bootstrap = {
    root,
    blobs: layout.keptBlobs.map((i) => ({ ...source.blobs[i]! })),
    // the superblock's chunk size is the largest of its blobs'
    chunkSize: Math.max(source.chunkSize, layout.hotChunkSize),
    compressor: source.compressor,
    digester: source.digester,
    prefetch: layout.files.map((f) => f.path),
  };
  return { bootstrap, hotInodes, hotBlobIndex: layout.keptBlobs.length };
}

/** A copy of the tree with each inode replaced by `inodeFor`'s (called once per node). */
function copyTree(root: TreeNode, inodeFor: (inode: Inode) => Inode): TreeNode {
  const copy = (node: TreeNode): TreeNode => (node.children ? { name: node.name, inode: inodeFor(node.inode), children: new Map() } : { name: node.name, inode: inodeFor(node.inode) });
  const out = copy(root);
  const stack: Array<[TreeNode, TreeNode]> = [[root, out]];
  while (stack.length > 0) {
    const [from, to] = stack.pop()!;
    for (const [name, child] of from.children!) {
      const made = copy(child);
      to.children!.set(name, made);
      if (child.children) stack.push([child, made]);
    }
  }
  return out;
}

/**
 * Compressed bytes at the start of the hot blob that hold the hot region, once the hot blob build
 * has filled `hotInodes`: the hot region's chunks were added first, so they end where its last one does.
 */
export function hotRegionSize(layout: HotLayout, hotInodes: readonly Inode[]): number {
  let end = 0;
  for (let i = 0; i < layout.hotRegionChunks; i++) {
    const { file, index } = layout.chunks[i]!;
    const ref = hotInodes[file]!.chunks[index]!;
    end = Math.max(end, ref.compressedOffset + ref.compressedSize);
  }
  return end;
}
