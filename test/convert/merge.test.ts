import { describe, expect, it } from 'vitest';
import { mergeLayers, MergeError } from '../../src/convert/merge.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { S_IFLNK, S_IFREG, newDir, newInode, type BlobInfo, type Bootstrap, type ChunkRef, type TreeNode } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';

const blob = (id: string): BlobInfo => ({
  blobId: id.repeat(64).slice(0, 64), chunkCount: 1, chunkSize: 1 << 20, compressor: 'zstd', digester: 'blake3',
  features: 0x70000023, compressedSize: 10, uncompressedSize: 4096, ciCompressor: 'none', ciOffset: 0,
  ciCompressedSize: 16, ciUncompressedSize: 16, tocSize: 0, tocDigest: Buffer.alloc(32),
});

const chunk = (blobIndex: number, tag: number): ChunkRef => ({
  blobIndex, ciIndex: 0, digest: Buffer.alloc(32, tag), compressedOffset: 0, compressedSize: 10,
  uncompressedOffset: 0, uncompressedSize: 100, compressed: true, fileOffset: 0,
});

type Spec = { [name: string]: Spec | string | ChunkRef | null };

/** Builds a tree: objects are dirs, strings symlinks, ChunkRefs one-chunk files, null empty files. */
function tree(spec: Spec, name = '/'): TreeNode {
  const dir = newDir(name);
  for (const [k, v] of Object.entries(spec)) {
    if (v === null) dir.children!.set(k, { name: k, inode: newInode(S_IFREG | 0o644) });
    else if (typeof v === 'string') dir.children!.set(k, { name: k, inode: newInode(S_IFLNK | 0o777, { symlinkTarget: v }) });
    else if ('digest' in v) dir.children!.set(k, { name: k, inode: newInode(S_IFREG | 0o644, { size: 100, chunks: [v as ChunkRef] }) });
    else dir.children!.set(k, tree(v as Spec, k));
  }
  return dir;
}

const layer = (spec: Spec, blobs: BlobInfo[] = []): Bootstrap => ({
  root: tree(spec), blobs, chunkSize: 1 << 20, compressor: 'zstd', digester: 'blake3', prefetch: [],
});

function listing(node: TreeNode, prefix = ''): string[] {
  const out: string[] = [];
  for (const k of [...node.children!.keys()].sort()) {
    const c = node.children!.get(k)!;
    out.push(prefix + k + (c.children ? '/' : ''));
    if (c.children) out.push(...listing(c, prefix + k + '/'));
  }
  return out;
}

describe('mergeLayers', () => {
  it('applies whiteouts, opaque directories and replacements', () => {
    const l0 = layer({ etc: { a: null, b: null, sub: { x: null } }, opq: { old: null }, f: { inner: null }, keep: null });
    const l1 = layer({
      etc: { '.wh.a': null, '.wh.sub': null, c: null },
      opq: { '.wh..wh..opq': null, fresh: null },
      f: 'symlink-now',
      '.wh.nothing-here': null,
    });
    const merged = mergeLayers([l0, l1]);
    expect(listing(merged.root)).toEqual(['etc/', 'etc/b', 'etc/c', 'f', 'keep', 'opq/', 'opq/fresh']);
    expect(merged.root.children!.get('f')!.inode.symlinkTarget).toBe('symlink-now');
  });

  it('lets the upper directory attributes win and merges children', () => {
    const l0 = layer({ d: { a: null } });
    const l1 = layer({ d: { b: null } });
    l1.root.children!.get('d')!.inode.mode = 0o040700;
    const merged = mergeLayers([l0, l1]);
    expect(merged.root.children!.get('d')!.inode.mode).toBe(0o040700);
    expect(listing(merged.root)).toEqual(['d/', 'd/a', 'd/b']);
  });

  it('drops whiteouts even in the lowest layer and in new directories', () => {
    const merged = mergeLayers([layer({ '.wh.x': null, n: { '.wh.y': null, z: null } })]);
    expect(listing(merged.root)).toEqual(['n/', 'n/z']);
  });

  it('renumbers blobs by first reference and drops unreferenced ones', () => {
    const l0 = layer({ gone: chunk(0, 1) }, [blob('a')]);
    const l1 = layer({ '.wh.gone': null, b: chunk(0, 2) }, [blob('b')]);
    const l2 = layer({ a: chunk(0, 3) }, [blob('c')]);
    const merged = mergeLayers([l0, l1, l2]);
    expect(merged.blobs.map((b) => b.blobId[0])).toEqual(['c', 'b']);
    expect(merged.root.children!.get('a')!.inode.chunks[0]!.blobIndex).toBe(0);
    expect(merged.root.children!.get('b')!.inode.chunks[0]!.blobIndex).toBe(1);
    expect(merged.blobs[0]!.features & 0x2).toBe(0);
    // the input layers are not modified
    expect(l2.root.children!.get('a')!.inode.chunks[0]!.blobIndex).toBe(0);
    expect(l1.root.children!.get('b')!.inode.chunks[0]!.blobIndex).toBe(0);
  });

  it('renumbers the files of a layer merged as it is (its blobs keep their indexes) on copies, hardlinks still shared', () => {
    const l0 = layer({ z: chunk(0, 1), d: { y: { ...chunk(0, 2), ciIndex: 1 } } }, [{ ...blob('a'), chunkCount: 2, ciCompressedSize: 32, ciUncompressedSize: 32 }]);
    l0.root.children!.set('x', { name: 'x', inode: l0.root.children!.get('z')!.inode });
    const l1 = layer({ a: chunk(0, 3) }, [blob('b')]);
    const merged = mergeLayers([l0, l1]);
    expect(merged.blobs.map((b) => b.blobId[0])).toEqual(['b', 'a']);
    const files = merged.root.children!;
    expect([files.get('a'), files.get('z'), files.get('x'), files.get('d')!.children!.get('y')].map((n) => n!.inode.chunks[0]!.blobIndex)).toEqual([0, 1, 1, 1]);
    expect(files.get('x')!.inode).toBe(files.get('z')!.inode);
    expect(RafsImage.open(writeBootstrap(merged)).blobs.map((b) => b.blobId[0])).toEqual(['b', 'a']);
    // the input layers are not modified
    for (const node of [l0.root.children!.get('z')!, l0.root.children!.get('x')!, l0.root.children!.get('d')!.children!.get('y')!]) expect(node.inode.chunks[0]!.blobIndex).toBe(0);
  });

  it('keeps hardlinks within a layer shared', () => {
    const l0 = layer({ a: chunk(0, 1) }, [blob('a')]);
    const shared = l0.root.children!.get('a')!;
    l0.root.children!.set('b', { name: 'b', inode: shared.inode });
    const merged = mergeLayers([l0]);
    expect(merged.root.children!.get('a')!.inode).toBe(merged.root.children!.get('b')!.inode);
  });

  it('merges a 4 MiB-chunk layer under a 1 MiB one: the largest chunk size, each file keeping its own', () => {
    const MiB = 1 << 20;
    const esgz: BlobInfo = { ...blob('e'), chunkSize: 4 * MiB, chunkCount: 2, ciCompressedSize: 32, ciUncompressedSize: 32, uncompressedSize: 4 * MiB + 4096, compressor: 'gzip' };
    const big = [chunk(0, 1), chunk(0, 2)].map((c, i) => ({ ...c, ciIndex: i, uncompressedOffset: i * 4 * MiB, uncompressedSize: i === 0 ? 4 * MiB : 100 }));
    const lower: Bootstrap = { ...layer({ small: big[1]! }, [esgz]), chunkSize: 4 * MiB, compressor: 'gzip' };
    lower.root.children!.set('big', { name: 'big', inode: newInode(S_IFREG | 0o644, { size: 4 * MiB + 100, chunks: big }) });
    const upper = layer({ upper: chunk(0, 4) }, [blob('n')]);
    const merged = mergeLayers([lower, upper]);
    expect(merged.chunkSize).toBe(4 * MiB);
    expect(merged.blobs.map((b) => b.chunkSize)).toEqual([4 * MiB, MiB]);
    const image = RafsImage.open(writeBootstrap(merged));
    const chunkSizeOf = (name: string): number => image.fileChunkSize(image.lookup(image.root, name)!);
    expect([chunkSizeOf('big'), chunkSizeOf('small'), chunkSizeOf('upper')]).toEqual([4 * MiB, 4 * MiB, MiB]);
    expect(image.chunks(image.lookup(image.root, 'big')!).map((c) => c.uncompressedSize)).toEqual([4 * MiB, 100]);
  });

  it('refuses layers with different digesters', () => {
    expect(() => mergeLayers([layer({}), { ...layer({}), digester: 'sha256' }])).toThrow(MergeError);
  });
});
