// The writer's output checked by real EROFS readers: erofs-utils' fsck.erofs extracting every file
// through the chunk indexes, and the Linux kernel mounting it (flat image and multi-device).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RafsImage } from '../../../src/rafs/reader.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../../../src/rafs/tree.js';
import { writeBootstrap } from '../../../src/rafs/writer.js';
import { flatImage, sampleImage, type SampleImage, type SnapshotEntry, snapshotTree, treePaths } from '../../rafs/helpers.js';

const isRoot = process.getuid?.() === 0;

interface Strictness {
  /** Permission bits compared (fsck.erofs drops setuid/setgid when it chowns). */
  modeMask: number;
  /** Only the kernel reports xattrs, link counts and inode identity. */
  kernel: boolean;
}

/** Compares a snapshot of an extracted or mounted tree with the sample it was built from. */
function expectSameTree(snapshot: Map<string, SnapshotEntry>, sample: SampleImage, strict: Strictness): void {
  const expected = treePaths(sample.bootstrap.root);
  expect([...snapshot.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [path, node] of expected) {
    const { inode } = node;
    const got = snapshot.get(path)!;
    const type = inode.mode & S_IFMT;
    const where = `${JSON.stringify(path)}`;
    expect(got.mode & S_IFMT, where).toBe(type);
    expect(got.mode & strict.modeMask, where).toBe(inode.mode & strict.modeMask);
    expect([got.uid, got.gid], where).toEqual([inode.uid, inode.gid]);
    if (type === S_IFREG) {
      expect(got.content, where).toEqual(sample.contents.get(path));
      expect(got.mtime, where).toBe(inode.mtime);
    }
    if (type === S_IFLNK) expect(got.target, where).toBe(inode.symlinkTarget);
    if (type === S_IFCHR || type === S_IFBLK) expect([got.rdevMajor, got.rdevMinor], where).toEqual([inode.rdevMajor, inode.rdevMinor]);
    if (!strict.kernel) continue;
    expect(got.mtime, where).toBe(inode.mtime);
    expect(got.xattrs, where).toEqual(Object.fromEntries([...inode.xattrs].map(([k, v]) => [k, v.toString('hex')])));
    const subdirs = [...(node.children?.values() ?? [])].filter((c) => (c.inode.mode & S_IFMT) === S_IFDIR).length;
    if (type === S_IFDIR) expect(got.nlink, where).toBe(2 + subdirs);
  }
  if (strict.kernel) {
    for (const [first, second] of [['/hardlink-a', '/sub/hardlink-b'], ['/link-short', '/sub/hardlink-to-symlink']] as const) {
      const [a, b] = [snapshot.get(first)!, snapshot.get(second)!];
      expect([a.ino, a.nlink], second).toEqual([b.ino, 2]);
    }
  }
}

describe('real EROFS readers accept the writer output', () => {
  const sample = sampleImage();
  const bootstrap = writeBootstrap(sample.bootstrap);
  const { mappedBlkaddr } = RafsImage.open(bootstrap).devices[0]!;
  let work = '';
  const path = (name: string): string => join(work, name);

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'rafs-erofs-'));
    writeFileSync(path('image.boot'), bootstrap);
    writeFileSync(path('blob.data'), sample.blobData);
    writeFileSync(path('flat.img'), flatImage(bootstrap, sample.blobData, mappedBlkaddr));
    mkdirSync(path('mnt'));
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('fsck.erofs --device=BLOB --extract reproduces every file', () => {
    execFileSync('fsck.erofs', [`--device=${path('blob.data')}`, `--extract=${path('out')}`, path('image.boot')], { stdio: 'pipe' });
    expectSameTree(snapshotTree(path('out')), sample, { modeMask: 0o777, kernel: false });
  });

  it.skipIf(!isRoot)('the kernel mounts the flat image (blob at mapped_blkaddr)', () => {
    execFileSync('mount', ['-t', 'erofs', '-o', 'ro,loop', path('flat.img'), path('mnt')]);
    try {
      expectSameTree(snapshotTree(path('mnt')), sample, { modeMask: 0o7777, kernel: true });
    } finally {
      execFileSync('umount', [path('mnt')]);
    }
  });

  it.skipIf(!isRoot)('the kernel mounts the bootstrap with the blob as an extra device', () => {
    const loop = execFileSync('losetup', ['-f', '--show', '-r', path('blob.data')]).toString().trim();
    try {
      execFileSync('mount', ['-t', 'erofs', '-o', `ro,loop,device=${loop}`, path('image.boot'), path('mnt')]);
      try {
        expectSameTree(snapshotTree(path('mnt')), sample, { modeMask: 0o7777, kernel: true });
      } finally {
        execFileSync('umount', [path('mnt')]);
      }
    } finally {
      execFileSync('losetup', ['-d', loop]);
    }
  });
});
