import { describe, expect, it } from 'vitest';
import { BlobFeature } from '../../src/rafs/blob-table.js';
import { RafsEncodeError } from '../../src/rafs/errors.js';
import { decodeInode, Layout } from '../../src/rafs/inode.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { decodeChunkInfo } from '../../src/rafs/chunk.js';
import { type Bootstrap, type Inode, newDir, newInode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type TreeNode } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { xattrAreaSize } from '../../src/rafs/xattr.js';
import { SAMPLE_CHUNK_SIZE, sampleImage, treePaths } from './helpers.js';

/** What the writer must preserve of an inode (size only matters for regular files). */
function comparable(inode: Inode): object {
  const type = inode.mode & S_IFMT;
  return {
    ...inode,
    size: type === S_IFREG ? inode.size : 0,
    symlinkTarget: type === S_IFLNK ? inode.symlinkTarget : undefined,
    xattrs: [...inode.xattrs].sort(),
    chunks: inode.chunks.map((c) => ({ ...c })),
  };
}

describe('writeBootstrap → RafsImage round trip', () => {
  const sample = sampleImage();
  const buf = writeBootstrap(sample.bootstrap);
  const image = RafsImage.open(buf);
  const back = image.toBootstrap();

  it('preserves every path and inode attribute', () => {
    const expected = treePaths(sample.bootstrap.root);
    const actual = treePaths(back.root);
    expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [path, node] of expected) expect(comparable(actual.get(path)!.inode), path).toEqual(comparable(node.inode));
    expect(back.blobs).toEqual(sample.bootstrap.blobs);
    expect([back.chunkSize, back.compressor, back.digester]).toEqual([SAMPLE_CHUNK_SIZE, 'none', 'blake3']);
    expect(back.prefetch).toEqual(['/one-chunk', '/sub']);
  });

  it('turns hardlinks (of files and of symlinks) into one shared inode with nlink 2', () => {
    const sub = image.lookup(image.root, 'sub')!;
    for (const [first, second] of [['hardlink-a', 'hardlink-b'], ['link-short', 'hardlink-to-symlink']]) {
      expect(back.root.children!.get(first)!.inode).toBe(back.root.children!.get('sub')!.children!.get(second)!.inode);
      const nid = image.lookup(image.root, first)!;
      expect(image.lookup(sub, second)).toBe(nid);
      expect(image.inode(nid).nlink).toBe(2);
    }
  });

  it('writes the nydus layout: root nid 128, meta_blkaddr 2, tables, flags', () => {
    expect(image.root).toBe(128);
    expect(image.superblock.metaBlkaddr).toBe(2);
    expect(image.superblock.inodeCount).toBe(new Set([...image.walk()].map((e) => e.nid)).size);
    expect(image.extSuperblock.blobTableOffset).toBe(0x1000);
    expect(image.extSuperblock.prefetchTableOffset).toBe(0x1100);
    expect(image.prefetchNids).toEqual([image.lookup(image.root, 'one-chunk'), image.lookup(image.root, 'sub')]);
    // zstd bit off (compressor none), blake3, explicit uid/gid, has xattr, encryption none
    expect(image.extSuperblock.flags).toBe(0x01000000 | 0x1 | 0x4 | 0x10 | 0x20);
    expect(image.extSuperblock.chunkTableOffset % 4096).toBe(0);
    expect(buf.length % 4096).toBe(0);
    expect(image.extSuperblock.chunkTableOffset + image.extSuperblock.chunkTableSize).toBeLessThanOrEqual(buf.length);
    const blocks = sample.blobData.length / 4096;
    expect(image.devices).toEqual([{ blobId: 'a'.repeat(64), blocks, mappedBlkaddr: Math.ceil(buf.length / 0x80000) * 0x80000 / 4096 }]);
    expect(image.superblock.blocks).toBe(blocks);
  });

  it('counts directory links as 2 + subdirectories and other links as the paths to the inode', () => {
    const pathsTo = new Map<number, number>();
    for (const e of image.walk()) pathsTo.set(e.nid, (pathsTo.get(e.nid) ?? 0) + 1);
    for (const e of image.walk()) {
      if ((e.inode.mode & S_IFMT) === S_IFDIR) {
        const subdirs = [...image.readdir(e.nid)].filter((d) => d.name !== '.' && d.name !== '..' && d.fileType === 2).length;
        expect(e.inode.nlink, e.path).toBe(2 + subdirs);
      } else {
        expect(e.inode.nlink, e.path).toBe(pathsTo.get(e.nid));
      }
    }
    expect(image.inode(image.root).nlink).toBe(4);
  });

  it('keeps every inode 32-byte aligned and inode + xattrs + inline data inside one block', () => {
    const meta = image.superblock.metaBlkaddr * 4096;
    for (const e of image.walk()) {
      const offset = meta + e.nid * 32;
      const disk = decodeInode(buf, offset);
      expect(disk.extended).toBe(true);
      const inline = disk.layout === Layout.FLAT_INLINE ? disk.size % 4096 : 0;
      const end = offset + 64 + xattrAreaSize(disk.xattrCount) + inline;
      if (disk.layout !== Layout.CHUNK_BASED || end - offset <= 4096) expect(Math.floor((end - 1) / 4096), e.path).toBe(Math.floor(offset / 4096));
    }
  });

  it('uses inline tails when they fit and plain blocks otherwise', () => {
    const layout = (path: string): number => {
      let nid = image.root;
      for (const name of path.split('/').slice(1)) nid = image.lookup(nid, name)!;
      return image.inode(nid).layout;
    };
    expect(layout('/link-short')).toBe(Layout.FLAT_INLINE);
    expect(layout('/link-long')).toBe(Layout.FLAT_INLINE);
    expect(layout('/link-max')).toBe(Layout.FLAT_PLAIN);
    expect(layout('/sub')).toBe(Layout.FLAT_INLINE);
    expect(layout('/chr')).toBe(Layout.FLAT_PLAIN);
    expect(layout('/one-chunk')).toBe(Layout.CHUNK_BASED);
    expect(image.inode(image.lookup(image.root, 'big')!).size).toBeGreaterThan(40 * 4096);
  });

  it('declares contiguous multi-chunk files as one power-of-two chunk', () => {
    const format = (name: string): number => buf.readUInt16LE(image.superblock.metaBlkaddr * 4096 + image.lookup(image.root, name)! * 32 + 16);
    expect(format('contiguous')).toBe(0x20 | 6); // next_power_of_two(196 KiB) = 256 KiB = 2^6 blocks
    expect(format('scattered')).toBe(0x20 | 4); // 64 KiB chunks = 2^4 blocks
    expect(format('one-chunk')).toBe(0x20 | 4);
    expect(image.chunks(image.lookup(image.root, 'contiguous')!)).toHaveLength(4);
  });

  it('writes one chunk table entry per distinct (blob, CI index), in that order', () => {
    const { chunkTableOffset, chunkTableSize } = image.extSuperblock;
    const entries = Array.from({ length: chunkTableSize / 80 }, (_, i) => decodeChunkInfo(buf, chunkTableOffset + i * 80));
    expect(entries.map((e) => e.ciIndex)).toEqual(entries.map((_, i) => i));
    expect(entries).toHaveLength(sample.bootstrap.blobs[0]!.chunkCount);
  });

  it('is deterministic', () => {
    expect(writeBootstrap(sampleImage().bootstrap).equals(buf)).toBe(true);
  });
});

describe('writeBootstrap edge cases', () => {
  const emptyImage = (): Bootstrap => ({ root: newDir(''), blobs: [], chunkSize: 0x100000, compressor: 'zstd', digester: 'blake3', prefetch: ['/'] });
  /** An image whose root holds a chain of `depth` directories. */
  const chainOfDirs = (depth: number): Bootstrap => {
    const b = emptyImage();
    let dir: TreeNode = b.root;
    for (let i = 0; i < depth; i++) {
      const child = newDir('d');
      dir.children!.set('d', child);
      dir = child;
    }
    return b;
  };

  it('writes an image without blobs: meta_blkaddr 0, root still nid 128, no prefetch table', () => {
    const b = emptyImage();
    b.root.children!.set('empty', { name: 'empty', inode: newInode(S_IFREG | 0o600) });
    const image = RafsImage.open(writeBootstrap(b));
    expect([image.superblock.metaBlkaddr, image.root, image.blobs.length, image.prefetchNids.length]).toEqual([0, 128, 0, 0]);
    expect(image.superblock.blocks).toBe(0);
    expect(image.chunks(image.lookup(128, 'empty')!)).toEqual([]);
    expect(image.extSuperblock.flags & 0x100).toBe(0);
  });

  it('sets INLINED_CHUNK_DIGEST only when every blob has the feature', () => {
    const sample = sampleImage();
    const withDigest = (features: number): number => {
      sample.bootstrap.blobs[0]!.features = features;
      return RafsImage.open(writeBootstrap(sample.bootstrap)).extSuperblock.flags & 0x100;
    };
    expect(withDigest(0x70000021)).toBe(0x100);
    expect(withDigest(0x70000001)).toBe(0);
  });

  it('clears EXPLICIT_UID_GID on request', () => {
    expect(RafsImage.open(writeBootstrap(emptyImage(), { explicitUidGid: false })).flags.explicitUidGid).toBe(false);
  });

  it('survives a deep tree', () => {
    const entries = [...RafsImage.open(writeBootstrap(chainOfDirs(1500))).walk()];
    expect(entries).toHaveLength(1501);
    expect(entries.at(-1)!.path.length).toBe(1500 * 2);
  });

  it('regression: refuses a tree deeper than the reader walks (2048 components)', () => {
    expect([...RafsImage.open(writeBootstrap(chainOfDirs(2048))).walk()]).toHaveLength(2049);
    expect(() => writeBootstrap(chainOfDirs(2049))).toThrow(/deeper than 2048 components/);
  });

  it('regression: writes a directory of 200k subdirectories (no argument spread of them)', () => {
    const b = emptyImage();
    for (let i = 0; i < 200_000; i++) b.root.children!.set(`d${i}`, newDir(`d${i}`));
    expect(RafsImage.open(writeBootstrap(b)).superblock.inodeCount).toBe(200_001);
  });

  it('refuses trees the format cannot hold', () => {
    const attempt = (edit: (b: Bootstrap) => void): (() => Buffer) => {
      const { bootstrap } = sampleImage();
      edit(bootstrap);
      return () => writeBootstrap(bootstrap);
    };
    const child = (b: Bootstrap, name: string): TreeNode => b.root.children!.get(name)!;
    expect(attempt((b) => child(b, 'capable').inode.xattrs.set('system.nfs4_acl', Buffer.alloc(1)))).toThrow(/unsupported name "system.nfs4_acl"/);
    expect(attempt((b) => b.root.children!.set('a/b', { name: 'a/b', inode: newInode(S_IFREG) }))).toThrow(/invalid entry name/);
    expect(attempt((b) => b.root.children!.set('.', { name: '.', inode: newInode(S_IFREG) }))).toThrow(/duplicate name "."/);
    expect(attempt((b) => (child(b, 'one-chunk').inode.size = 70000))).toThrow(/1 chunks for 70000 bytes/);
    expect(attempt((b) => (child(b, 'link-short').inode.symlinkTarget = 'x'.repeat(4096)))).toThrow(/target must be 1..4095 bytes/);
    expect(attempt((b) => (b.blobs[0]!.features = BlobFeature.HAS_TOC))).toThrow(/ALIGNED/);
    expect(attempt((b) => (b.chunkSize = 1000))).toThrow(/chunk size/);
    expect(attempt((b) => (child(b, 'one-chunk').inode.chunks[0]!.blobIndex = 3))).toThrow(/refers to blob 3/);
    expect(attempt((b) => (child(b, 'one-chunk').inode.chunks[0]!.ciIndex = 999))).toThrow(/CI index 999/);
    expect(attempt((b) => (child(b, 'chr').inode.mode = 0o170644))).toThrow(/unknown file type/);
    expect(attempt((b) => (child(b, 'sub').children = undefined))).toThrow(/children must be present exactly for directories/);
    expect(attempt((b) => b.root.children!.set('loop', b.root))).toThrow(/appears twice/);
    expect(attempt((b) => {
      const other = { ...child(b, 'shares-chunks').inode.chunks[0]!, compressedSize: 1 };
      child(b, 'shares-chunks').inode.chunks[0] = other;
    })).toThrow(/conflicting chunks/);
    expect(attempt(() => undefined)).not.toThrow();
    expect(attempt((b) => (child(b, 'one-chunk').inode.uid = -1))).toThrow(RafsEncodeError);
  });
});
