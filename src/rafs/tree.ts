// The in-memory filesystem tree that builders produce, the bootstrap writer lays out, and the
// reader can materialise. Names are *byte strings*: each byte of the on-disk name is one char
// code (latin1), so arbitrary non-UTF-8 names survive and JS string order equals memcmp order.
// Convert with `Buffer.from(name, 'latin1')` at the edges; never with 'utf8'.

export type Compressor = 'none' | 'lz4_block' | 'gzip' | 'zstd';
export type Digester = 'blake3' | 'sha256';

/** The most components a path may have: what the reader walks and the writer lays out. */
export const MAX_TREE_DEPTH = 2048;

/** Seconds either side of the epoch a Date can show (±275,760 years): the reader clamps stored times to it. */
export const MAX_TIME = 8.64e12;

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** One chunk of a regular file's data, as stored in a data blob. */
export interface ChunkRef {
  /** Index into the bootstrap's blob table. */
  blobIndex: number;
  /** Ordinal of the chunk in its blob's chunk-info (CI) array. */
  ciIndex: number;
  /** 32-byte digest of the uncompressed chunk. */
  digest: Buffer;
  compressedOffset: number;
  compressedSize: number;
  /** 4 KiB-aligned offset in the blob's uncompressed space. */
  uncompressedOffset: number;
  uncompressedSize: number;
  /** False when the chunk is stored raw (compression did not make it smaller). */
  compressed: boolean;
  /** CRC-32C of the uncompressed chunk, when known. */
  crc32?: number;
  /** Offset of this chunk in the file that first produced it. */
  fileOffset: number;
  /**
   * Blobs with BlobFeature.MEMBERS (stargz-family layers): uncompressed bytes to skip in the decoded
   * member before the chunk starts (eStargz `innerOffset`); with BlobFeature.CHECKPOINTS (gzip
   * layers): in the output decoded from the chunk's checkpoint. Stored in the file_offset field.
   */
  innerOffset?: number;
  /** Blobs with BlobFeature.CHECKPOINTS only: the index of the blob's checkpoint decoding starts at. */
  checkpoint?: number;
}

/** What an on-disk inode holds. Hardlinked paths share one Inode object. */
export interface Inode {
  /** Full st_mode: type bits and permission bits (incl. setuid/setgid/sticky). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch (within ±MAX_TIME when read from a bootstrap). */
  mtime: number;
  mtimeNsec: number;
  /** Regular files: data length. Ignored for other types (derived when laid out). */
  size: number;
  /** Char/block devices: Linux dev_t (major, minor). */
  rdevMajor: number;
  rdevMinor: number;
  /** Symlink target as a byte string. */
  symlinkTarget?: string;
  /** Full xattr names (e.g. 'user.foo', 'security.capability') to raw values. */
  xattrs: Map<string, Buffer>;
  /** Regular files: one entry per chunk-size slice, in file order. */
  chunks: ChunkRef[];
  /** sha256 (hex) of a regular file's data, when a reader computed it (image comparisons). */
  contentDigest?: string;
}

/** A directory entry: a name bound to an inode; directories own their children. */
export interface TreeNode {
  name: string;
  inode: Inode;
  /** Present exactly for directories. Keyed by byte-string name. */
  children?: Map<string, TreeNode>;
}

/** Data blob as recorded in a bootstrap's blob table (see docs/rafs-v6.md §1.5). */
export interface BlobInfo {
  /** 64 lowercase hex chars. */
  blobId: string;
  chunkCount: number;
  chunkSize: number;
  compressor: Compressor;
  digester: Digester;
  /** BlobFeatures bits. */
  features: number;
  compressedSize: number;
  uncompressedSize: number;
  ciCompressor: Compressor;
  ciOffset: number;
  ciCompressedSize: number;
  ciUncompressedSize: number;
  tocSize: number;
  /** 32 bytes or all zero. */
  tocDigest: Buffer;
  /** BlobFeature.CHECKPOINTS blobs: where decoding the gzip stream may start, in stream order. */
  checkpoints?: readonly Checkpoint[];
}

/** Where a gzip stream's decoding may start again (native GzipCheckpoint, as stored). */
export interface Checkpoint {
  /** Bytes of the stream before the checkpoint (the byte holding its first `bits` bits among them). */
  input: number;
  /** Bytes of output before it. */
  output: number;
  /** Bits (0–7) of the byte before `input` that decoding takes first. */
  bits: number;
  /**
   * The output's last min(output, 32 KiB) bytes before it (what back-references may reach), those
   * no decoding from here uses set to zero, as one zstd frame: decoded when a chunk is.
   */
  window: Buffer;
  /** BlobFeature.SPANS blobs: the sha256 of the span's stored bytes (from here to the next checkpoint's input, or the blob's end). */
  spanDigest?: Buffer;
}

/** A whole image's metadata: what a bootstrap encodes. */
export interface Bootstrap {
  root: TreeNode;
  blobs: BlobInfo[];
  chunkSize: number;
  compressor: Compressor;
  digester: Digester;
  /** Absolute paths (byte strings) to prefetch, in order. */
  prefetch: string[];
}

export function fileType(mode: number): number {
  return mode & S_IFMT;
}

export function isDir(node: TreeNode): boolean {
  return fileType(node.inode.mode) === S_IFDIR;
}

export function newInode(mode: number, init: Partial<Inode> = {}): Inode {
  return { mode, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, size: 0, rdevMajor: 0, rdevMinor: 0, xattrs: new Map(), chunks: [], ...init };
}

export function newDir(name: string, init: Partial<Inode> = {}): TreeNode {
  return { name, inode: newInode(S_IFDIR | 0o755, init), children: new Map() };
}

/** The node an absolute byte-string path names, if any (no symlink is followed). */
export function nodeAt(root: TreeNode, path: string): TreeNode | undefined {
  let node: TreeNode | undefined = root;
  for (const name of path.split('/').filter((part) => part !== '')) node = node?.children?.get(name);
  return node;
}

/**
 * The directory under `root` that holds `parts`' last component, with directories (0755, root-owned)
 * made where missing, or where a non-directory stood (a layer's later entry replaces it).
 */
export function parentDir(root: TreeNode, parts: readonly string[]): TreeNode {
  let dir = root;
  for (const part of parts.slice(0, -1)) {
    let next = dir.children!.get(part);
    if (!next || !isDir(next)) {
      next = newDir(part);
      dir.children!.set(part, next);
    }
    dir = next;
  }
  return dir;
}
