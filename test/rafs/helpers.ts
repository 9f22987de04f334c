// Shared by the RAFS tests: upstream fixture names, a sample tree with every file type together
// with the uncompressed blob holding its data, and a snapshot of a mounted/extracted tree.
import { execFileSync } from 'node:child_process';
import { blake3Raw } from '../../src/native/index.js';
import { BlobFeature } from '../../src/rafs/blob-table.js';
import { Layout } from '../../src/rafs/inode.js';
import { RafsImage } from '../../src/rafs/reader.js';
import {
  type BlobInfo, type Bootstrap, type ChunkRef, type Inode, newDir, newInode,
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, type TreeNode,
} from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';

/** Names of the upstream blob fixtures (test/helpers/fixtures.ts): the TOC one and the blob.digest one. */
export const TOC_BLOB = '2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca';
export const DIGEST_BLOB = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';

/** Names are byte strings: this turns UTF-8 text into one. */
export const utf8Name = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

export const SAMPLE_CHUNK_SIZE = 0x10000;

/** A deterministic pseudo-random buffer. */
export function pseudoRandom(length: number, seed: number): Buffer {
  const buf = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}

/** Lays chunks out in an uncompressed blob (each at a 4 KiB-aligned offset), deduplicating by content. */
class BlobBuilder {
  private readonly parts: Buffer[] = [];
  private readonly byDigest = new Map<string, ChunkRef>();
  private size = 0;

  /** Chunks of `data`; `order` lets a test store them out of file order (non-contiguous). */
  file(data: Buffer, order?: number[]): ChunkRef[] {
    const slices = Array.from({ length: Math.ceil(data.length / SAMPLE_CHUNK_SIZE) }, (_, i) => data.subarray(i * SAMPLE_CHUNK_SIZE, (i + 1) * SAMPLE_CHUNK_SIZE));
    const refs = new Array<ChunkRef>(slices.length);
    for (const i of order ?? slices.keys()) refs[i] = this.chunk(slices[i]!, i * SAMPLE_CHUNK_SIZE);
    return refs;
  }

  private chunk(data: Buffer, fileOffset: number): ChunkRef {
    const digest = blake3Raw(data);
    const known = this.byDigest.get(digest.toString('hex'));
    if (known) return known;
    const ref: ChunkRef = {
      blobIndex: 0, ciIndex: this.byDigest.size, digest, compressedOffset: this.size, compressedSize: data.length,
      uncompressedOffset: this.size, uncompressedSize: data.length, compressed: false, fileOffset,
    };
    this.byDigest.set(digest.toString('hex'), ref);
    const padded = Buffer.alloc(Math.ceil(data.length / 4096) * 4096);
    data.copy(padded);
    this.parts.push(padded);
    this.size += padded.length;
    return ref;
  }

  finish(blobId: string): { blob: BlobInfo; data: Buffer } {
    const data = Buffer.concat(this.parts);
    const blob: BlobInfo = {
      blobId, chunkCount: this.byDigest.size, chunkSize: SAMPLE_CHUNK_SIZE, compressor: 'none', digester: 'blake3',
      features: BlobFeature.ALIGNED | BlobFeature.HAS_TAR_HEADER | BlobFeature.HAS_TOC | BlobFeature.CAP_TAR_TOC,
      compressedSize: data.length, uncompressedSize: data.length, ciCompressor: 'none', ciOffset: data.length + 512,
      ciCompressedSize: this.byDigest.size * 16, ciUncompressedSize: this.byDigest.size * 16, tocSize: 0, tocDigest: Buffer.alloc(32),
    };
    return { blob, data };
  }
}

function add(dir: TreeNode, name: string, inode: Inode): TreeNode {
  const node: TreeNode = (inode.mode & S_IFMT) === S_IFDIR ? { name, inode, children: new Map() } : { name, inode };
  dir.children!.set(name, node);
  return node;
}

export interface SampleImage {
  bootstrap: Bootstrap;
  /** The blob's uncompressed image: what `--device=` / flat mode read. */
  blobData: Buffer;
  /** Regular file contents by path (byte strings). */
  contents: Map<string, Buffer>;
}

const ACL = Buffer.from('02000000' + '0100' + '0700' + 'ffffffff' + '0400' + '0500' + 'ffffffff' + '2000' + '0500' + 'ffffffff', 'hex');

/**
 * Every kind of entry: nested dirs, files of 0/1/many chunks (contiguous and not, shared chunks),
 * hardlinks, short, 4000- and 4095-byte symlinks, devices, fifo, socket, xattrs, odd modes and
 * owners, 255-byte, UTF-8, non-UTF-8 and "< ." names, and a directory of `bigDirEntries` entries
 * (5000 span many blocks).
 */
export function sampleImage(blobId = 'a'.repeat(64), bigDirEntries = 5000): SampleImage {
  const blob = new BlobBuilder();
  const contents = new Map<string, Buffer>();
  const root = newDir('', { mtime: 1_700_000_000, mtimeNsec: 5 });
  const file = (dir: TreeNode, path: string, name: string, data: Buffer, init: Partial<Inode> = {}, order?: number[]): TreeNode => {
    contents.set(`${path}/${name}`, data);
    return add(dir, name, newInode(S_IFREG | 0o644, { size: data.length, chunks: blob.file(data, order), mtime: 1_600_000_000, ...init }));
  };
  file(root, '', 'empty', Buffer.alloc(0));
  file(root, '', 'one-chunk', pseudoRandom(5000, 1), { uid: 1000, gid: 1000 });
  file(root, '', 'contiguous', pseudoRandom(SAMPLE_CHUNK_SIZE * 3 + 777, 2), { mode: S_IFREG | 0o4755 });
  file(root, '', 'scattered', pseudoRandom(SAMPLE_CHUNK_SIZE * 2 + 5, 3), { mode: S_IFREG | 0o2711 }, [2, 0, 1]);
  file(root, '', 'shares-chunks', Buffer.concat([pseudoRandom(SAMPLE_CHUNK_SIZE, 2), pseudoRandom(100, 4)]));
  file(root, '', 'exactly-one-chunk', pseudoRandom(SAMPLE_CHUNK_SIZE, 5));
  const linked = file(root, '', 'hardlink-a', pseudoRandom(9000, 6), { uid: 4_000_000_000, gid: 3_999_999_999 });
  file(root, '', utf8Name('grüße-✓.txt'), Buffer.from('unicode\n'));
  file(root, '', 'bad\xff\xfename', Buffer.from('not utf-8\n'));
  file(root, '', '!a', Buffer.from('bang\n'));
  file(root, '', '#hash', Buffer.from('hash\n'));
  file(root, '', '-dash', Buffer.from('dash\n'));
  file(root, '', 'n'.repeat(255), Buffer.from('long name\n'));
  const capable = file(root, '', 'capable', Buffer.from('#!/bin/sh\n'), { mode: S_IFREG | 0o755 });
  capable.inode.xattrs.set('security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex'));
  capable.inode.xattrs.set('user.note', Buffer.from('hello'));
  capable.inode.xattrs.set('system.posix_acl_access', ACL);
  const shortLink = add(root, 'link-short', newInode(S_IFLNK | 0o777, { symlinkTarget: 'one-chunk' }));
  add(root, 'link-long', newInode(S_IFLNK | 0o777, { symlinkTarget: `${'d/'.repeat(1998)}end0` }));
  add(root, 'link-max', newInode(S_IFLNK | 0o777, { symlinkTarget: `${'m/'.repeat(2046)}end` }));
  add(root, 'chr', newInode(S_IFCHR | 0o600, { rdevMajor: 4, rdevMinor: 300 }));
  add(root, 'blk', newInode(S_IFBLK | 0o660, { rdevMajor: 7, rdevMinor: 1 }));
  add(root, 'whiteout', newInode(S_IFCHR | 0o000, { rdevMajor: 0, rdevMinor: 0 }));
  add(root, 'fifo', newInode(S_IFIFO | 0o644));
  add(root, 'sock', newInode(S_IFSOCK | 0o755));
  const sub = add(root, 'sub', newInode(S_IFDIR | 0o1777, { uid: 65534, gid: 65534 }));
  sub.inode.xattrs.set('trusted.overlay.opaque', Buffer.from('y'));
  sub.inode.xattrs.set('user.big', pseudoRandom(3000, 9));
  sub.children!.set('hardlink-b', { name: 'hardlink-b', inode: linked.inode });
  sub.children!.set('hardlink-to-symlink', { name: 'hardlink-to-symlink', inode: shortLink.inode });
  contents.set('/sub/hardlink-b', contents.get('/hardlink-a')!);
  const deep = add(add(sub, 'deeper', newInode(S_IFDIR | 0o2755)), 'deepest', newInode(S_IFDIR | 0o700));
  file(deep, '/sub/deeper/deepest', 'leaf', Buffer.from('leaf\n'));
  add(sub, 'empty-dir', newInode(S_IFDIR | 0o755));
  const big = add(root, 'big', newInode(S_IFDIR | 0o755));
  for (let i = 0; i < bigDirEntries; i++) {
    const name = `entry-${String(i).padStart(5, '0')}-${'x'.repeat(i % 40)}`;
    add(big, name, newInode(S_IFREG | 0o644, { mtime: i }));
    contents.set(`/big/${name}`, Buffer.alloc(0));
  }
  add(big, 'sub-in-big', newInode(S_IFDIR | 0o755));
  const { blob: info, data } = blob.finish(blobId);
  return {
    bootstrap: { root, blobs: [info], chunkSize: SAMPLE_CHUNK_SIZE, compressor: 'none', digester: 'blake3', prefetch: ['/one-chunk', '/sub', '/missing'] },
    blobData: data,
    contents,
  };
}

/** The flat block image: bootstrap, then each blob at its mapped_blkaddr (nydus-image export --block). */
export function flatImage(bootstrap: Buffer, blobData: Buffer, mappedBlkaddr: number): Buffer {
  const image = Buffer.alloc(mappedBlkaddr * 4096 + blobData.length);
  bootstrap.copy(image);
  blobData.copy(image, mappedBlkaddr * 4096);
  return image;
}

/** What a file system tree looks like, for comparing against a Bootstrap. Keys are byte strings. */
export interface SnapshotEntry {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  nlink: number;
  ino: number;
  rdevMajor: number;
  rdevMinor: number;
  target?: string;
  content?: Buffer;
  xattrs: Record<string, string>;
}

const SNAPSHOT_SCRIPT = String.raw`
import json, os, stat, sys
root = sys.argv[1].encode()
out = {}
def visit(rel):
    full = root + rel
    st = os.lstat(full)
    e = {'mode': st.st_mode, 'uid': st.st_uid, 'gid': st.st_gid, 'size': st.st_size, 'mtime': int(st.st_mtime),
         'nlink': st.st_nlink, 'ino': st.st_ino, 'rdevMajor': os.major(st.st_rdev), 'rdevMinor': os.minor(st.st_rdev), 'xattrs': {}}
    for name in os.listxattr(full, follow_symlinks=False):
        e['xattrs'][name] = os.getxattr(full, name, follow_symlinks=False).hex()
    if stat.S_ISLNK(st.st_mode):
        e['target'] = os.readlink(full).hex()
    elif stat.S_ISREG(st.st_mode):
        with open(full, 'rb') as f:
            e['content'] = f.read().hex()
    out[(rel or b'/').hex()] = e
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(os.listdir(full)):
            visit(rel + b'/' + name)
visit(b'')
json.dump(out, sys.stdout)
`;

/** lstat, xattrs, symlink targets and file contents of every path under `dir` (via python3). */
export function snapshotTree(dir: string): Map<string, SnapshotEntry> {
  const json = execFileSync('python3', ['-c', SNAPSHOT_SCRIPT, dir], { maxBuffer: 1 << 30 }).toString();
  const raw = JSON.parse(json) as Record<string, SnapshotEntry & { target?: string; content?: string }>;
  return new Map(Object.entries(raw).map(([hexPath, e]) => [
    Buffer.from(hexPath, 'hex').toString('latin1'),
    {
      ...e,
      target: e.target === undefined ? undefined : Buffer.from(e.target, 'hex').toString('latin1'),
      content: e.content === undefined ? undefined : Buffer.from(e.content as unknown as string, 'hex'),
    },
  ]));
}

/** Every path of a tree with its node, depth-first ('/' for the root). */
export function treePaths(root: TreeNode): Map<string, TreeNode> {
  const paths = new Map<string, TreeNode>([['/', root]]);
  const visit = (node: TreeNode, prefix: string): void => {
    for (const [name, child] of node.children ?? []) {
      paths.set(`${prefix}/${name}`, child);
      visit(child, `${prefix}/${name}`);
    }
  };
  visit(root, '');
  return paths;
}

/** The nid and the inode's offset of `path` (a byte string) in a bootstrap. */
export function inodeAt(image: RafsImage, path: string): { nid: number; offset: number } {
  let nid = image.root;
  for (const part of path.split('/').filter(Boolean)) nid = image.lookup(nid, part)!;
  return { nid, offset: image.superblock.metaBlkaddr * image.blockSize + nid * 32 };
}

/**
 * A hostile bootstrap of about `dirs` × 100 + `entries` × 18 bytes: `dirs` directory inodes that all
 * point at the dirent blocks of one directory of `entries` hardlinks (the walk the audit found
 * quadratic: dirs × entries paths from a bootstrap of a megabyte).
 */
export function sharedDirentBlocksBootstrap(dirs: number, entries: number, prefetch: string[] = []): Buffer {
  const root = newDir('');
  const big = newDir('big');
  root.children!.set('big', big);
  const file = newInode(S_IFREG | 0o644);
  for (let i = 0; i < entries; i++) big.children!.set(`f${i}`, { name: `f${i}`, inode: file });
  for (let i = 0; i < dirs; i++) root.children!.set(`d${i}`, newDir(`d${i}`));
  // a blob, so that the prefetch table is written
  const buf = writeBootstrap({ root, blobs: [plainBlob(0, SAMPLE_CHUNK_SIZE)], chunkSize: SAMPLE_CHUNK_SIZE, compressor: 'none', digester: 'blake3', prefetch });
  const image = RafsImage.open(buf);
  const shared = inodeAt(image, '/big').offset;
  const fullBlocks = Math.floor(Number(buf.readBigUInt64LE(shared + 8)) / image.blockSize) * image.blockSize;
  for (let i = 0; i < dirs; i++) {
    const { offset } = inodeAt(image, `/d${i}`);
    buf.writeUInt16LE(1 | (Layout.FLAT_PLAIN << 1), offset);
    buf.writeBigUInt64LE(BigInt(fullBlocks), offset + 8);
    buf.copy(buf, offset + 16, shared + 16, shared + 20);
  }
  return buf;
}

/**
 * A legitimate image of `files` files of `chunksPerFile` 4 KiB chunks each under /data (all in
 * one uncompressed blob, no data behind it): big enough that walking it or decoding its chunk
 * table takes a noticeable while.
 */
export function manyChunksBootstrap(files: number, chunksPerFile: number, prefetch: string[] = []): Buffer {
  const chunkSize = 0x1000;
  const root = newDir('');
  const data = newDir('data');
  root.children!.set('data', data);
  let ciIndex = 0;
  for (let f = 0; f < files; f++) {
    const chunks = Array.from({ length: chunksPerFile }, (_, i): ChunkRef => {
      const at = ciIndex * chunkSize;
      const digest = Buffer.alloc(32);
      digest.writeUInt32LE(ciIndex);
      return { blobIndex: 0, ciIndex: ciIndex++, digest, compressedOffset: at, compressedSize: chunkSize, uncompressedOffset: at, uncompressedSize: chunkSize, compressed: false, fileOffset: i * chunkSize };
    });
    data.children!.set(`f${f}`, { name: `f${f}`, inode: newInode(S_IFREG | 0o644, { size: chunksPerFile * chunkSize, chunks }) });
  }
  return writeBootstrap({ root, blobs: [plainBlob(ciIndex, chunkSize)], chunkSize, compressor: 'none', digester: 'blake3', prefetch });
}

/** Blob 'c'×64: `chunks` uncompressed chunks of `chunkSize` bytes, without a chunk info section. */
function plainBlob(chunks: number, chunkSize: number): BlobInfo {
  const size = Math.max(chunks * chunkSize, 4096);
  return {
    blobId: 'c'.repeat(64), chunkCount: chunks, chunkSize, compressor: 'none', digester: 'blake3', features: BlobFeature.ALIGNED,
    compressedSize: size, uncompressedSize: size, ciCompressor: 'none', ciOffset: 0, ciCompressedSize: 0, ciUncompressedSize: 0, tocSize: 0, tocDigest: Buffer.alloc(32),
  };
}

/** An image of one empty file /f whose stored mtime is `seconds` (any u64). */
export function fileWithMtime(seconds: bigint): Buffer {
  const root = newDir('');
  root.children!.set('f', { name: 'f', inode: newInode(S_IFREG | 0o644) });
  const buf = writeBootstrap({ root, blobs: [], chunkSize: SAMPLE_CHUNK_SIZE, compressor: 'none', digester: 'blake3', prefetch: [] });
  buf.writeBigUInt64LE(seconds, inodeAt(RafsImage.open(buf), '/f').offset + 32);
  return buf;
}
