// applyLayer: an OCI layer written as an overlayfs lower directory (as root: owners, device nodes
// and trusted.* attributes need it). Entries keep their metadata, whiteouts become overlayfs's, and
// nothing an archive says writes outside the directory.
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseTar } from '../../src/convert/tar/parse.js';
import type { TarWriter } from '../../src/convert/tar/write.js';
import { streamOf, tarBytes } from '../helpers/tar-bytes.js';
import { TarPathError } from '../../src/convert/tar/errors.js';
import { adoptLowerDirs, applyLayer, LayerApplyError } from '../../src/image/apply-layer.js';

const isRoot = process.getuid?.() === 0;
const work = mkdtempSync(join(tmpdir(), 'apply-layer-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A layer written by `build`, applied into a new directory (returned). */
async function applied(name: string, build: (tar: TarWriter) => Promise<void>): Promise<{ root: string; madeDirs: string[][]; entries: number; bytes: number }> {
  const bytes = await tarBytes(build);
  const root = join(work, name);
  mkdirSync(root);
  const result = await applyLayer(parseTar(streamOf(bytes)), root);
  return { root, ...result };
}

const xattr = (path: string, name: string): string => execFileSync('getfattr', ['--absolute-names', '--only-values', '-h', '-n', name, path], { encoding: 'utf8' });

describe.runIf(isRoot)('applyLayer', () => {
  it('writes every kind of entry with its owner, mode, times and extended attributes', async () => {
    const { root, entries, bytes } = await applied('kinds', async (tar) => {
      await tar.dir({ path: 'etc', mode: 0o750, uid: 7, gid: 8, mtime: 1_000_000 });
      await tar.file({ path: 'etc/a', size: 5, mode: 0o4755, uid: 1000, gid: 100, mtime: 2_000_000, xattrs: [['security.capability', Buffer.from([1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])], ['user.note', Buffer.from('x')]] }, Buffer.from('hello'));
      await tar.symlink({ path: 'etc/l', uid: 3, gid: 4, mtime: 3_000_000 }, 'a');
      await tar.hardlink({ path: 'etc/h' }, 'etc/a');
      await tar.charDevice({ path: 'null', mode: 0o666 }, 1, 3);
      await tar.blockDevice({ path: 'loop', mode: 0o600 }, 7, 0);
      await tar.fifo({ path: 'pipe', mode: 0o620 });
    });
    expect({ entries, bytes }).toEqual({ entries: 7, bytes: 5 });
    const etc = lstatSync(join(root, 'etc'));
    expect([etc.mode & 0o7777, etc.uid, etc.gid, etc.mtimeMs / 1000]).toEqual([0o750, 7, 8, 1_000_000]);
    const a = lstatSync(join(root, 'etc/a'));
    // setuid survives the chown
    expect([a.mode & 0o7777, a.uid, a.gid, a.mtimeMs / 1000, a.nlink]).toEqual([0o4755, 1000, 100, 2_000_000, 2]);
    expect(readFileSync(join(root, 'etc/h'), 'utf8')).toBe('hello');
    expect(xattr(join(root, 'etc/a'), 'user.note')).toBe('x');
    const l = lstatSync(join(root, 'etc/l'));
    expect([l.isSymbolicLink(), readlinkSync(join(root, 'etc/l')), l.uid, l.gid, l.mtimeMs / 1000]).toEqual([true, 'a', 3, 4, 3_000_000]);
    const dev = lstatSync(join(root, 'null'));
    expect([dev.isCharacterDevice(), dev.rdev, dev.mode & 0o7777]).toEqual([true, 0x103, 0o666]);
    expect(lstatSync(join(root, 'loop')).isBlockDevice()).toBe(true);
    expect([lstatSync(join(root, 'pipe')).isFIFO(), lstatSync(join(root, 'pipe')).mode & 0o777]).toEqual([true, 0o620]);
  });

  it('turns whiteouts into overlayfs\'s: a 0/0 character device, an opaque directory mark', async () => {
    const { root } = await applied('whiteouts', async (tar) => {
      await tar.dir({ path: 'd' });
      await tar.file({ path: 'd/.wh..wh..opq', size: 0 });
      await tar.file({ path: 'd/.wh.gone', size: 0 });
      await tar.file({ path: 'x/.wh.deleted', size: 0 });
      await tar.file({ path: '.wh..wh.plnk', size: 0 });
    });
    expect(xattr(join(root, 'd'), 'trusted.overlay.opaque')).toBe('y');
    for (const w of ['d/gone', 'x/deleted']) {
      const st = lstatSync(join(root, w));
      expect([st.isCharacterDevice(), st.rdev], w).toEqual([true, 0]);
    }
    expect(existsSync(join(root, 'd/.wh.gone'))).toBe(false);
    // aufs bookkeeping is nothing to overlayfs
    expect(existsSync(join(root, '.wh..wh.plnk'))).toBe(false);
  });

  it('keeps an archive from setting overlayfs\'s own attributes', async () => {
    const { root } = await applied('overlay-xattrs', async (tar) => {
      await tar.dir({ path: 'd', xattrs: [['trusted.overlay.opaque', Buffer.from('y')], ['trusted.overlay.redirect', Buffer.from('/etc')], ['user.overlay.origin', Buffer.from('z')]] });
    });
    for (const name of ['trusted.overlay.opaque', 'trusted.overlay.redirect', 'user.overlay.origin']) expect(() => xattr(join(root, 'd'), name)).toThrow();
  });

  it('makes missing parents and reports them; a later entry replaces an earlier one', async () => {
    const { root, madeDirs } = await applied('parents', async (tar) => {
      await tar.file({ path: 'a/b/c', size: 1 }, Buffer.from('1'));
      await tar.dir({ path: 'a', mode: 0o700 });
      await tar.file({ path: 'f', size: 1 }, Buffer.from('1'));
      await tar.dir({ path: 'f' });
      await tar.file({ path: 'f/g', size: 1 }, Buffer.from('2'));
      await tar.dir({ path: 'r/s' });
      await tar.file({ path: 'r', size: 3 }, Buffer.from('new'));
    });
    // 'a' was listed after all: only a/b is the layers' below to describe
    expect(madeDirs).toEqual([['a', 'b']]);
    expect(lstatSync(join(root, 'a')).mode & 0o7777).toBe(0o700);
    expect(readFileSync(join(root, 'f/g'), 'utf8')).toBe('2');
    expect(readFileSync(join(root, 'r'), 'utf8')).toBe('new');
  });

  it('gives the directories it made the metadata of the nearest layer below that has them, as containerd does', async () => {
    const { root, madeDirs } = await applied('adopt', async (tar) => {
      await tar.file({ path: 'tmp/x', size: 0 });
      await tar.file({ path: 'usr/local/y', size: 0 });
      await tar.file({ path: 'new/z', size: 0 });
    });
    const lower = join(work, 'adopt-lower');
    const lowest = join(work, 'adopt-lowest');
    mkdirSync(join(lower, 'usr'), { recursive: true });
    mkdirSync(join(lowest, 'tmp'), { recursive: true });
    mkdirSync(join(lowest, 'usr/local'), { recursive: true });
    execFileSync('chmod', ['1777', join(lowest, 'tmp')]);
    execFileSync('chown', ['5:6', join(lowest, 'usr/local')]);
    execFileSync('chmod', ['0700', join(lower, 'usr')]);
    // the nearer layer's usr is the one that shows: not the lowest one's
    execFileSync('chmod', ['0711', join(lowest, 'usr')]);
    adoptLowerDirs(root, madeDirs, [lower, lowest]);
    expect(lstatSync(join(root, 'tmp')).mode & 0o7777).toBe(0o1777);
    expect(lstatSync(join(root, 'usr')).mode & 0o7777).toBe(0o700);
    const local = lstatSync(join(root, 'usr/local'));
    expect([local.uid, local.gid]).toEqual([5, 6]);
    // no layer has it: as it was made
    expect(lstatSync(join(root, 'new')).mode & 0o7777).toBe(0o755);
  });

  it('never writes outside the directory: symlinked parents resolve inside it, as in a chroot (regression: symlink traversal)', async () => {
    const outside = join(work, 'outside');
    mkdirSync(outside);
    const { root } = await applied('traversal', async (tar) => {
      await tar.symlink({ path: 'abs' }, outside);
      await tar.file({ path: 'abs/owned', size: 1 }, Buffer.from('1'));
      await tar.symlink({ path: 'up' }, '../../../../..');
      await tar.file({ path: 'up/owned2', size: 1 }, Buffer.from('2'));
      await tar.symlink({ path: 'lib' }, 'usr/lib');
      await tar.file({ path: 'lib/x.so', size: 1 }, Buffer.from('3'));
    });
    expect(existsSync(join(outside, 'owned'))).toBe(false);
    expect(readFileSync(join(root, outside.slice(1), 'owned'), 'utf8')).toBe('1');
    expect(readFileSync(join(root, 'owned2'), 'utf8')).toBe('2');
    expect(readFileSync(join(root, 'usr/lib/x.so'), 'utf8')).toBe('3');
    // the symlinks themselves are kept as they are
    expect(readlinkSync(join(root, 'abs'))).toBe(outside);
  });

  it('refuses escaping paths and hard links to what the layer does not hold (regression: hard link escape)', async () => {
    writeFileSync(join(work, 'secret'), 'no');
    const layer = async (name: string, build: (tar: TarWriter) => Promise<void>): Promise<unknown> => applied(name, build).then(() => undefined, (err: unknown) => err);
    expect(await layer('hl-dir', async (tar) => {
      await tar.dir({ path: 'd' });
      await tar.hardlink({ path: 'h' }, 'd');
    })).toBeInstanceOf(LayerApplyError);
    expect(await layer('hl-out', async (tar) => {
      await tar.symlink({ path: 's' }, work);
      await tar.hardlink({ path: 'h' }, 's/secret');
    })).toBeInstanceOf(LayerApplyError);
    expect(await layer('not-dir', async (tar) => {
      await tar.file({ path: 'f', size: 0 });
      await tar.file({ path: 'f/x', size: 0 });
    })).toBeInstanceOf(LayerApplyError);
    expect(readFileSync(join(work, 'secret'), 'utf8')).toBe('no');
  });

  it('refuses a `..` entry path', async () => {
    const root = join(work, 'dotdot-raw');
    mkdirSync(root);
    const entry = { path: 'a/../../x', linkpath: '', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, xattrs: new Map(), body: [] } as never;
    await expect(applyLayer((async function* () { yield entry; })(), root)).rejects.toBeInstanceOf(TarPathError);
    expect(existsSync(join(work, 'x'))).toBe(false);
  });
});
