// The layout of an optimized image planned from an access trace (pure): which chunks make the hot
// region and in what order, what follows it, which source blobs stay, and the refusals.
import { describe, expect, it } from 'vitest';
import {
  hotRegionSize, OptimizeError, optimizedTree, planHotLayout,
} from '../../src/convert/hot-layout.js';
import { BlobFeature } from '../../src/rafs/blob-table.js';
import { type BlobInfo, type Bootstrap, type ChunkRef, type Inode, newDir, newInode, nodeAt, parentDir, S_IFLNK, S_IFREG } from '../../src/rafs/tree.js';
import type { AccessTrace, TraceRead } from '../../src/trace/access-trace.js';

const KiB = 1024;
// the layout at 64 KiB hot chunks (the default is smaller; these numbers are worked out for this size)
const H = 64 << 10;
const DIGEST = 'd'.repeat(64);

/** A model whose blobs store chunks of `chunkSize` bytes, each compressing to a third (rounded up). */
class Model {
  readonly root = newDir('');
  readonly blobs: BlobInfo[] = [];

  constructor(readonly chunkSize = 1024 * KiB) {}

  blob(chunkSize = this.chunkSize): number {
    this.blobs.push({
      blobId: String(this.blobs.length + 1).repeat(64), chunkCount: 0, chunkSize, compressor: 'zstd', digester: 'blake3', features: BlobFeature.ALIGNED,
      compressedSize: 0, uncompressedSize: 0, ciCompressor: 'none', ciOffset: 0, ciCompressedSize: 0, ciUncompressedSize: 0, tocSize: 0, tocDigest: Buffer.alloc(32),
    });
    return this.blobs.length - 1;
  }

  file(path: string, size: number, blobIndex: number): Inode {
    const blob = this.blobs[blobIndex]!;
    const chunks: ChunkRef[] = [];
    for (let at = 0; at < size; at += blob.chunkSize) {
      const length = Math.min(blob.chunkSize, size - at);
      const compressedSize = Math.ceil(length / 3);
      chunks.push({
        blobIndex, ciIndex: blob.chunkCount++, digest: Buffer.alloc(32, blob.chunkCount), compressedOffset: blob.compressedSize, compressedSize,
        uncompressedOffset: blob.uncompressedSize, uncompressedSize: length, compressed: true, fileOffset: at,
      });
      blob.compressedSize += compressedSize;
      blob.uncompressedSize += Math.ceil(length / 4096) * 4096;
    }
    const inode = newInode(S_IFREG | 0o644, { size, chunks });
    this.link(path, inode);
    return inode;
  }

  link(path: string, inode: Inode): void {
    const parts = path.split('/').filter(Boolean);
    parentDir(this.root, parts).children!.set(parts.at(-1)!, { name: parts.at(-1)!, inode });
  }

  bootstrap(): Bootstrap {
    return { root: this.root, blobs: this.blobs, chunkSize: this.chunkSize, compressor: 'zstd', digester: 'blake3', prefetch: [] };
  }
}

function traceOf(files: Array<[string, number]>, reads: Array<[t: number, file: number, offset: number, length: number]>, bootstrap = DIGEST): AccessTrace {
  return {
    format: 'nydusify-ts access trace', version: 1, image: 'test', bootstrap, started: '2026-01-01T00:00:00.000Z', duration: 100,
    blobs: [], files: files.map(([path, size]) => ({ path, size })),
    reads: reads.map(([t, file, offset, length]): TraceRead => ({ t, file, offset, length, miss: true })),
    fetches: [], truncated: false,
  };
}

/**
 * blob 0: /bin/app (300 KiB), /lib/x (200 KiB), /etc/cfg (5 KiB), /usr/keep-a (not read);
 * blob 1: /data/only-hot (100 KiB, read: the blob is left unreferenced);
 * blob 2: /usr/other (not read). /bin/app-link is a hard link of /bin/app.
 */
function sample(): { model: Model; files: Array<[string, number]> } {
  const model = new Model();
  const [b0, b1, b2] = [model.blob(), model.blob(), model.blob()];
  const app = model.file('/bin/app', 300 * KiB, b0);
  model.link('/bin/app-link', app);
  model.file('/lib/x', 200 * KiB, b0);
  model.file('/etc/cfg', 5 * KiB, b0);
  model.file('/usr/keep-a', 50 * KiB, b0);
  model.file('/data/only-hot', 100 * KiB, b1);
  model.file('/usr/other', 70 * KiB, b2);
  model.link('/usr/sym', newInode(S_IFLNK | 0o777, { symlinkTarget: 'other' }));
  return { model, files: [['/bin/app', 300 * KiB], ['/lib/x', 200 * KiB], ['/etc/cfg', 5 * KiB], ['/data/only-hot', 100 * KiB], ['/bin/app-link', 300 * KiB]] };
}

const plan = (reads: Array<[number, number, number, number]>) => {
  const { model, files } = sample();
  const source = model.bootstrap();
  return { source, layout: planHotLayout(source, DIGEST, traceOf(files, reads), H) };
};

const names = (layout: ReturnType<typeof planHotLayout>) => layout.chunks.map(({ file, index }) => `${layout.files[file]!.path}#${index}`);

describe('hot layout', () => {
  // reads deliberately out of time order in the list: the plan goes by t
  const reads: Array<[number, number, number, number]> = [
    [3, 0, 130_000, 10_000], // app chunks 1 and 2
    [1, 0, 0, 10], // app chunk 0 (first touch of all)
    [2, 1, 70_000, 10], // x chunk 1
    [4, 4, 0, 65_537], // app via its hard link: chunks 0 and 1, both placed already
    [5, 2, 0, 5 * KiB], // cfg chunk 0 (its only one)
    [5, 0, 131_072, 0], // an empty read touches nothing
    [6, 3, 65_536, 1], // only-hot chunk 1
  ];

  it('puts exactly the touched chunks, at the hot chunk size, first, in first-touch order; the hot files\' other chunks after', () => {
    const { layout } = plan(reads);
    expect(layout.files.map((f) => f.path)).toEqual(['/bin/app', '/lib/x', '/etc/cfg', '/data/only-hot']);
    expect(layout.files.map((f) => f.chunkCount)).toEqual([5, 4, 1, 2]);
    expect(layout.hotRegionChunks).toBe(6);
    expect(names(layout)).toEqual([
      '/bin/app#0', '/lib/x#1', '/bin/app#1', '/bin/app#2', '/etc/cfg#0', '/data/only-hot#1',
      '/bin/app#3', '/bin/app#4', '/lib/x#0', '/lib/x#2', '/lib/x#3', '/data/only-hot#0',
    ]);
    // app: three full chunks; x: one; cfg: 5 KiB; only-hot chunk 1: 100 KiB - 64 KiB
    expect(layout.touchedBytes).toBe(3 * H + H + 5 * KiB + (100 * KiB - H));
  });

  it('keeps only the source blobs other files still use; counts the source chunks the hot region overlaps', () => {
    const { layout, source } = plan(reads);
    expect(layout.keptBlobs).toEqual([0, 2]);
    expect(layout.droppedBlobs).toEqual([1]);
    // 1 MiB source chunks: app's, x's, cfg's and only-hot's one chunk each
    const first = (path: string) => nodeAt(source.root, path)!.inode.chunks[0]!.compressedSize;
    expect(layout.sourceTouchedBytes).toBe(first('/bin/app') + first('/lib/x') + first('/etc/cfg') + first('/data/only-hot'));
  });

  it('builds the optimized tree: hot inodes new, other files renumbered into the kept blobs, hard links shared, prefetch in first-touch order', () => {
    const { layout, source } = plan(reads);
    const before = JSON.stringify([...source.blobs.map((b) => b.blobId)]);
    const { bootstrap, hotInodes, hotBlobIndex } = optimizedTree(source, layout);
    expect(hotBlobIndex).toBe(2);
    expect(bootstrap.blobs.map((b) => b.blobId)).toEqual([source.blobs[0]!.blobId, source.blobs[2]!.blobId]);
    expect(bootstrap.prefetch).toEqual(['/bin/app', '/lib/x', '/etc/cfg', '/data/only-hot']);
    expect(bootstrap.chunkSize).toBe(source.chunkSize);
    const at = (path: string) => nodeAt(bootstrap.root, path)!.inode;
    expect(at('/bin/app')).toBe(hotInodes[0]);
    expect(at('/bin/app-link')).toBe(hotInodes[0]);
    expect(hotInodes.map((i) => i.chunks.length)).toEqual([5, 4, 1, 2]);
    expect(hotInodes[0]!.size).toBe(300 * KiB);
    const other = nodeAt(source.root, '/usr/other')!.inode.chunks;
    expect(at('/usr/other').chunks).toEqual(other.map((c) => ({ ...c, blobIndex: 1 })));
    expect(at('/usr/keep-a').chunks).toEqual(nodeAt(source.root, '/usr/keep-a')!.inode.chunks);
    expect(at('/usr/sym').symlinkTarget).toBe('other');
    // the source model is left as it was
    expect(other[0]!.blobIndex).toBe(2);
    expect(nodeAt(source.root, '/bin/app')!.inode.chunks).toHaveLength(1);
    expect(JSON.stringify(source.blobs.map((b) => b.blobId))).toBe(before);
  });

  it('measures the hot region as where its last chunk ends in the hot blob', () => {
    const { layout, source } = plan(reads);
    const { hotInodes } = optimizedTree(source, layout);
    layout.chunks.forEach(({ file, index }, n) => {
      hotInodes[file]!.chunks[index] = { compressedOffset: n * 100, compressedSize: 90 } as ChunkRef;
    });
    expect(hotRegionSize(layout, hotInodes)).toBe(5 * 100 + 90);
  });

  it('takes the superblock chunk size from the hot chunks when they are larger, and counts each overlapped source chunk once', () => {
    const model = new Model(16 * KiB);
    const b = model.blob();
    model.file('/big', 200 * KiB, b);
    const source = model.bootstrap();
    const layout = planHotLayout(source, DIGEST, traceOf([['/big', 200 * KiB]], [[1, 0, 70 * KiB, 1], [2, 0, 10, 20]]), H);
    expect(names(layout)).toEqual(['/big#1', '/big#0', '/big#2', '/big#3']);
    // hot chunks 1 and 0 span source chunks 0..7
    const chunks = nodeAt(source.root, '/big')!.inode.chunks;
    expect(layout.sourceTouchedBytes).toBe(chunks.slice(0, 8).reduce((s, c) => s + c.compressedSize, 0));
    expect(optimizedTree(source, layout).bootstrap.chunkSize).toBe(H);
  });

  it('places each chunk once however many reads cover it', () => {
    const many: Array<[number, number, number, number]> = Array.from({ length: 10_000 }, (_, i) => [i, 0, 0, 300 * KiB]);
    const { layout } = plan(many);
    expect(layout.hotRegionChunks).toBe(5);
    expect(layout.chunks).toHaveLength(5);
  });
});

describe('hot layout refusals', () => {
  const { model, files } = sample();
  const source = model.bootstrap();
  const refuse = (trace: AccessTrace, message: RegExp, hot = H) => {
    expect(() => planHotLayout(source, DIGEST, trace, hot)).toThrow(OptimizeError);
    expect(() => planHotLayout(source, DIGEST, trace, hot)).toThrow(message);
  };

  it('refuses a trace of another bootstrap, naming both digests', () => {
    refuse(traceOf(files, [[1, 0, 0, 1]], 'e'.repeat(64)), new RegExp(`sha256:${'e'.repeat(64)}.*sha256:${DIGEST}`));
  });

  it('refuses a path that is not in the image, or not a regular file of it', () => {
    refuse(traceOf([['/bin/nothing', 5]], [[1, 0, 0, 1]]), /\/bin\/nothing, which is not in the image/);
    refuse(traceOf([['/usr', 0]], []), /\/usr, which is not a regular file/);
    refuse(traceOf([['/usr/sym', 5]], []), /\/usr\/sym, which is not a regular file/);
  });

  it('refuses a read past a file\'s end, and a size that is not the image\'s', () => {
    refuse(traceOf([['/etc/cfg', 5 * KiB]], [[1, 0, 5 * KiB - 10, 11]]), /reads \/etc\/cfg at \[5110, 5121\), past its end \(5120 bytes\)/);
    refuse(traceOf([['/etc/cfg', 5 * KiB]], [[1, 0, 2 ** 40, 1]]), /past its end/);
    refuse(traceOf([['/etc/cfg', 4 * KiB]], []), /says \/etc\/cfg has 4096 bytes, the image's has 5120/);
  });

  it('refuses a trace that read nothing', () => {
    refuse(traceOf(files, [[1, 0, 10, 0]]), /read no file data/);
  });

  it.each([0, 3000, 2 * KiB, 65_537, 2 * 1024 * KiB, Number.NaN])('refuses hot chunk size %s', (size) => {
    refuse(traceOf(files, [[1, 0, 0, 1]]), /hot chunk size must be a power of two from 4096 to 1048576/, size);
  });
});
