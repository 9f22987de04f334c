// parseTar against archives GNU tar 1.34 writes: pax (with xattrs), gnu, ustar and v7 formats,
// every entry type, checked field by field against lstat of the tree they were made from.
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryPathComponents } from '../../../src/convert/tar/path.js';
import { chunked, isRoot, parseAll, sh, sha256, snapshotTree, latin1, type NodeSnapshot, type ReadEntry } from './helpers.js';
import { BIG_GID, BIG_UID, LONG_PATH, LONG_TARGET, UTF8_NAME, XATTRS, buildTree } from './tree.js';

const rel = (e: ReadEntry): string => entryPathComponents(e.path).join('/');

/** Checks every entry against the tree; returns the entries by relative path. */
function checkAgainstTree(entries: ReadEntry[], snap: Map<string, NodeSnapshot>, opts: { nsec: boolean; xattrs: boolean }): Map<string, ReadEntry> {
  const byPath = new Map<string, ReadEntry>();
  for (const e of entries) {
    const path = rel(e);
    if (path === '') continue; // the root directory "./"
    expect(byPath.has(path), `duplicate ${path}`).toBe(false);
    byPath.set(path, e);
    const s = snap.get(path);
    expect(s, `entry ${path} is in the tree`).toBeDefined();
    if (!s) continue;
    const where = `entry ${JSON.stringify(path)}`;
    expect(e.mode, where).toBe(s.mode);
    expect(e.uid, where).toBe(s.uid);
    expect(e.gid, where).toBe(s.gid);
    const ns = BigInt(s.mtimeNs!);
    expect(e.mtime, where).toBe(Number(ns / 1_000_000_000n));
    expect(e.mtimeNsec, where).toBe(opts.nsec ? Number(ns % 1_000_000_000n) : 0);
    if (e.type === 'hardlink') {
      const target = entryPathComponents(e.linkpath).join('/');
      expect(s.links, where).toContain(target);
      expect(byPath.has(target), `${where}: its target comes first`).toBe(true);
      expect(e.size).toBe(0);
      continue;
    }
    expect(e.type, where).toBe(s.type);
    expect(e.xattrs.size === 0 || opts.xattrs, where).toBe(true);
    const hexXattrs = Object.fromEntries([...e.xattrs].map(([k, v]) => [k, v.toString('hex')]));
    expect(hexXattrs, where).toEqual(opts.xattrs ? s.xattrs : {});
    switch (e.type) {
      case 'file':
        expect(e.size, where).toBe(s.size);
        expect(sha256(e.data), where).toBe(s.sha256);
        break;
      case 'symlink':
        expect(e.linkpath, where).toBe(s.target);
        expect(e.size).toBe(0);
        break;
      case 'char':
      case 'block':
        expect({ major: e.devmajor, minor: e.devminor }, where).toEqual(s.rdev);
        break;
      default:
        expect(e.size, where).toBe(0);
    }
  }
  // everything in the tree is in the archive
  expect([...byPath.keys()].sort()).toEqual([...snap.keys()].sort());
  return byPath;
}

describe.skipIf(!isRoot)('archives made by GNU tar', () => {
  let tmp: string;
  let root: string;
  let snap: Map<string, NodeSnapshot>;

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'tar-gnu-'));
    root = join(tmp, 'root');
    buildTree(root, { longTarget: true });
    snap = snapshotTree(root, { mtimeOf: () => true });
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  const create = (name: string, args: string[]): Buffer => {
    const out = join(tmp, name);
    sh('tar', ['-C', root, '--sort=name', ...args, '-cf', out, '.']);
    return readFileSync(out);
  };

  it('pax format with --xattrs: every type and field, xattrs, nanoseconds, big ids, long and UTF-8 names', async () => {
    const tar = create('pax.tar', ['--xattrs', "--xattrs-include=*", '--format=pax']);
    const entries = await parseAll(tar, 64 * 1024);
    const byPath = checkAgainstTree(entries, snap, { nsec: true, xattrs: true });

    expect(new Set(entries.map((e) => e.type))).toEqual(new Set(['dir', 'file', 'symlink', 'hardlink', 'char', 'block', 'fifo']));
    expect(entries[0]!.path).toBe('./');
    const x = byPath.get('xattr.txt')!;
    expect([...x.xattrs.keys()].sort()).toEqual(Object.keys(XATTRS).sort());
    expect(x.xattrs.get('user.binary')).toEqual(Buffer.from([0, 1, 0x0a, 0xff, 0x3d, 0]));
    expect(x.xattrs.get('user.empty')).toEqual(Buffer.alloc(0));
    expect(byPath.get('bigid')).toMatchObject({ uid: BIG_UID, gid: BIG_GID, uname: '', gname: '' });
    expect(byPath.get('regular.txt')).toMatchObject({ uname: 'root', gname: 'root', mtime: 1500000000, format: 'ustar' });
    expect(byPath.get('nsec')).toMatchObject({ mtime: 1600000000, mtimeNsec: 123456789 });
    expect(byPath.get('suid')!.mode).toBe(0o4755);
    expect(byPath.get('sgid')!.mode).toBe(0o2711);
    expect(byPath.get('sticky')!.mode).toBe(0o1777);
    expect(byPath.get('dir')!.mode).toBe(0o750);
    expect(byPath.get('large.bin')!.size).toBe(3 * 1024 * 1024 + 123);
    expect(byPath.get('empty')!.size).toBe(0);
    expect(byPath.get(LONG_PATH)!.type).toBe('file');
    expect(byPath.get('symlink-long')!.linkpath).toBe(LONG_TARGET);
    expect(byPath.has(latin1(UTF8_NAME))).toBe(true); // UTF-8 bytes, one char code each
    expect(byPath.get('bigdev')).toMatchObject({ type: 'char', devmajor: 4095, devminor: 1048575 });
    expect(byPath.get('blockdev')).toMatchObject({ type: 'block', devmajor: 7, devminor: 200 });
    expect(byPath.get('chardev')).toMatchObject({ type: 'char', devmajor: 1, devminor: 3 });
    // a hard link to the symlink: target is the symlink entry
    const hs = [byPath.get('dir/symlink')!, byPath.get('symlink-hardlink')!];
    const [first, second] = hs[0]!.type === 'hardlink' ? [hs[1]!, hs[0]!] : [hs[0]!, hs[1]!];
    expect(first.type).toBe('symlink');
    expect(second).toMatchObject({ type: 'hardlink' });
    expect(entryPathComponents(second.linkpath).join('/')).toBe(rel(first));
  });

  it('gnu format: long names and link targets via L/K, base-256 ids, devices', async () => {
    const tar = create('gnu.tar', ['--format=gnu']);
    expect(tar.includes('././@LongLink')).toBe(true);
    const entries = await parseAll(tar);
    const byPath = checkAgainstTree(entries, snap, { nsec: false, xattrs: false });
    expect(entries.every((e) => e.format === 'gnu')).toBe(true);
    expect(byPath.get('bigid')).toMatchObject({ uid: BIG_UID, gid: BIG_GID });
    expect(byPath.get('symlink-long')!.linkpath).toBe(LONG_TARGET);
    const hl = byPath.get('hardlink-to-long') ?? byPath.get(LONG_PATH)!;
    expect(hl.type).toBe('hardlink');
  });

  it('pax and gnu archives parse identically in 1-byte and random-size chunks', async () => {
    for (const format of ['pax', 'gnu']) {
      const xattrs = format === 'pax' ? ['--xattrs', '--xattrs-include=*'] : [];
      const tar = create(`${format}-small.tar`, [...xattrs, `--format=${format}`, '--exclude=./large.bin']);
      const whole = await parseAll(tar);
      expect(await parseAll(tar, 1)).toEqual(whole);
      expect(await parseAll(chunked(tar, 1000, true))).toEqual(whole);
    }
  });
});

describe.skipIf(!isRoot)('ustar and v7 archives made by GNU tar', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'tar-ustar-'));
    const root = join(tmp, 'root');
    sh('mkdir', ['-p', join(root, 'x'.repeat(90), 'y'.repeat(90))]);
    sh('sh', ['-c', `printf 'prefixed\\n' > ${join(root, 'x'.repeat(90), 'y'.repeat(90), 'file.txt')}`]);
    sh('ln', ['-s', 'x', join(root, 'link')]);
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('ustar: paths split into prefix + name are joined', async () => {
    const out = join(tmp, 'u.tar');
    sh('tar', ['-C', join(tmp, 'root'), '--sort=name', '--format=ustar', '-cf', out, '.']);
    const tar = readFileSync(out);
    expect(tar.includes('x'.repeat(90) + '/' + 'y'.repeat(90) + '/file.txt')).toBe(false); // really split
    const entries = await parseAll(tar);
    const file = entries.find((e) => e.path.endsWith('file.txt'))!;
    expect(file.path).toBe(`./${'x'.repeat(90)}/${'y'.repeat(90)}/file.txt`);
    expect(file.data.toString()).toBe('prefixed\n');
    expect(entries.every((e) => e.format === 'ustar')).toBe(true);
  });

  it('v7: no magic, directories and symlinks still recognised', async () => {
    const out = join(tmp, 'v7.tar');
    const root = join(tmp, 'v7root');
    sh('mkdir', ['-p', join(root, 'y'.repeat(80))]);
    sh('sh', ['-c', `printf 'prefixed\\n' > ${join(root, 'y'.repeat(80), 'file.txt')}`]);
    sh('ln', ['-s', 'x', join(root, 'link')]);
    sh('tar', ['-C', root, '--sort=name', '--format=v7', '-cf', out, '.']);
    const entries = await parseAll(readFileSync(out));
    expect(entries.every((e) => e.format === 'v7')).toBe(true);
    expect(entries.map((e) => [e.path, e.type])).toEqual([
      ['./', 'dir'],
      ['./link', 'symlink'],
      [`./${'y'.repeat(80)}/`, 'dir'],
      [`./${'y'.repeat(80)}/file.txt`, 'file'],
    ]);
    expect(entries[3]!.data.toString()).toBe('prefixed\n');
    expect(entries[1]!.linkpath).toBe('x');
    expect(entries[3]!.uname).toBe('');
  });
});
