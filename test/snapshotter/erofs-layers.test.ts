// Plain layers as EROFS images (erofs-layers.ts, convert/overlay-whiteouts.ts, the aligned blob of
// blob-builder.ts), mounted by the kernel (root, file-backed EROFS): the layer's files read back as
// the tar has them, its whiteouts hide what the layers below hold under overlayfs, and a layer whose
// unlisted directories would differ from the layers below is written out as files with theirs.
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLayer } from '../../src/convert/create.js';
import type { TarWriter } from '../../src/convert/tar/write.js';
import { streamOf, tarBytes } from '../helpers/tar-bytes.js';
import { erofsLayersSupported, implicitDirsDiffer, layerMounted, materialize, mountLayer, unmountLayer } from '../../src/snapshotter/erofs-layers.js';

const isRoot = process.getuid?.() === 0;
const work = mkdtempSync(join(tmpdir(), 'erofs-layers-'));
const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts.reverse()) execFileSync('umount', ['-l', m], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
});

/** A snapshot directory holding the layer `build` writes as an EROFS image (not mounted). */
async function erofsLayer(name: string, build: (tar: TarWriter) => Promise<void>): Promise<{ dir: string; files: { bootstrap: string; blob?: string; implicitDirs: string[][] } }> {
  const bytes = await tarBytes(build);
  const dir = join(work, name);
  mkdirSync(join(dir, 'fs'), { recursive: true });
  const made = await createLayer({ source: streamOf(bytes), bootstrapPath: join(dir, 'layer.boot'), blobDir: dir, compressor: 'none', digester: 'blake3', chunkSize: 1 << 20, overlayLayer: true });
  return { dir, files: { bootstrap: 'layer.boot', ...(made.stats.distinctChunks > 0 ? { blob: made.blobPath.slice(dir.length + 1) } : {}), implicitDirs: made.implicitDirs } };
}

const xattr = (path: string, name: string): string => execFileSync('getfattr', ['--absolute-names', '--only-values', '-h', '-n', name, path], { encoding: 'utf8' });

describe.runIf(isRoot && erofsLayersSupported())('EROFS layers', () => {
  it('reads back every file as the tar has it, data at the aligned offsets the kernel reads', async () => {
    // sizes across chunk and block boundaries: each chunk's bytes must sit at its 4 KiB-aligned place
    const sizes = [1, 4095, 4097, 100_000, (1 << 20) + 3, 3 << 20];
    const data = sizes.map((n, i) => Buffer.from(Array.from({ length: n }, (_, k) => (k * 31 + i * 7) & 0xff)));
    const { dir, files } = await erofsLayer('data', async (tar) => {
      await tar.dir({ path: 'd', mode: 0o750, uid: 3, gid: 4, mtime: 1_000_000 });
      for (const [i, d] of data.entries()) await tar.file({ path: `d/f${i}`, size: d.length, mode: 0o640, mtime: 2_000_000 }, d);
      await tar.symlink({ path: 'd/l' }, 'f0');
      await tar.hardlink({ path: 'd/h' }, 'd/f1');
      await tar.charDevice({ path: 'null', mode: 0o666 }, 1, 3);
    });
    expect(files.implicitDirs).toEqual([]);
    mountLayer(dir, files);
    mounts.push(join(dir, 'fs'));
    expect(layerMounted(dir)).toBe(true);
    const fs = join(dir, 'fs');
    for (const [i, d] of data.entries()) expect(readFileSync(join(fs, `d/f${i}`)).equals(d), `f${i}`).toBe(true);
    const st = lstatSync(join(fs, 'd'));
    expect([st.mode & 0o7777, st.uid, st.gid, st.mtimeMs / 1000]).toEqual([0o750, 3, 4, 1_000_000]);
    expect(lstatSync(join(fs, 'd/h')).ino).toBe(lstatSync(join(fs, 'd/f1')).ino);
    expect(lstatSync(join(fs, 'null')).rdev).toBe(0x103);
    await unmountLayer(dir);
    expect(layerMounted(dir)).toBe(false);
    mounts.pop();
  });

  it('mounts a layer without file data (no blob device): directories, links and empty files only', async () => {
    const { dir, files } = await erofsLayer('no-data', async (tar) => {
      await tar.dir({ path: 'etc', mode: 0o755 });
      await tar.file({ path: 'etc/empty', size: 0, mode: 0o600 });
      await tar.symlink({ path: 'etc/link' }, 'empty');
    });
    expect(files.blob).toBeUndefined();
    mountLayer(dir, files);
    mounts.push(join(dir, 'fs'));
    expect(readFileSync(join(dir, 'fs/etc/empty')).length).toBe(0);
    expect(lstatSync(join(dir, 'fs/etc/link')).isSymbolicLink()).toBe(true);
  });

  it('turns whiteouts into overlayfs\'s, which hide what the layers below hold', async () => {
    const lower = join(work, 'lower');
    mkdirSync(join(lower, 'keep'), { recursive: true });
    mkdirSync(join(lower, 'opaque'), { recursive: true });
    writeFileSync(join(lower, 'gone'), 'x');
    writeFileSync(join(lower, 'keep/a'), 'a');
    writeFileSync(join(lower, 'opaque/old'), 'o');
    const { dir, files } = await erofsLayer('whiteouts', async (tar) => {
      await tar.file({ path: '.wh.gone', size: 0 });
      await tar.dir({ path: 'opaque' });
      await tar.file({ path: 'opaque/.wh..wh..opq', size: 0 });
      await tar.file({ path: 'opaque/new', size: 1 }, Buffer.from('n'));
      await tar.dir({ path: 'keep', xattrs: [['trusted.overlay.redirect', Buffer.from('/gone')]] });
    });
    mountLayer(dir, files);
    mounts.push(join(dir, 'fs'));
    const fs = join(dir, 'fs');
    expect(lstatSync(join(fs, 'gone')).isCharacterDevice()).toBe(true);
    expect(xattr(join(fs, 'opaque'), 'trusted.overlay.opaque')).toBe('y');
    // an archive does not steer overlayfs
    expect(() => xattr(join(fs, 'keep'), 'trusted.overlay.redirect')).toThrow();
    const merged = join(work, 'merged');
    mkdirSync(merged);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${fs}:${lower}`, merged]);
    mounts.push(merged);
    expect(existsSync(join(merged, 'gone'))).toBe(false);
    expect(readdirSync(join(merged, 'opaque'))).toEqual(['new']);
    expect(readFileSync(join(merged, 'keep/a'), 'utf8')).toBe('a');
  });

  it('writes a layer out as files when a directory it did not list would hide the attributes of the layers below', async () => {
    const lower = join(work, 'lower-tmp');
    mkdirSync(join(lower, 'tmp'), { recursive: true });
    execFileSync('chmod', ['1777', join(lower, 'tmp')]);
    const { dir, files } = await erofsLayer('implicit', async (tar) => {
      await tar.file({ path: 'tmp/x', size: 2, mode: 0o600, uid: 5 }, Buffer.from('hi'));
      await tar.file({ path: 'other/y', size: 0 });
    });
    expect(files.implicitDirs).toEqual([['tmp'], ['other']]);
    expect(implicitDirsDiffer(files.implicitDirs, [lower])).toBe(true);
    expect(implicitDirsDiffer([['other']], [lower])).toBe(false);
    await materialize(dir, files, [lower]);
    const fs = join(dir, 'fs');
    expect(lstatSync(join(fs, 'tmp')).mode & 0o7777).toBe(0o1777);
    const x = lstatSync(join(fs, 'tmp/x'));
    expect([readFileSync(join(fs, 'tmp/x'), 'utf8'), x.mode & 0o7777, x.uid]).toEqual(['hi', 0o600, 5]);
    expect(existsSync(join(dir, files.bootstrap))).toBe(false);
    expect(layerMounted(dir)).toBe(false);
  });
});
