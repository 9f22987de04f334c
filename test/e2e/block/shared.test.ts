// Block mode in a shared daemon, through its API (root, /dev/fuse, kernel EROFS, nbdinfo/nbdcopy):
// images mounted and unmounted live show up as MOUNT/NAME/image.erofs and as NBD exports named NAME;
// the kernel's EROFS on each file shows that image's tree, an unmounted image's export is gone while
// the other keeps serving, and an image whose bootstrap has no flat image is refused at mount.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../../src/daemon/api-client.js';
import { mountReadOnly } from '../../../src/native/index.js';
import { RafsImage } from '../../../src/rafs/reader.js';
import { cli, repoRoot } from '../../helpers/cli.js';
import { diffManifests, treeManifest } from '../../helpers/trees.js';
import { waitFor } from '../../helpers/wait-for.js';

const exec = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'nydusify-block-shared-'));
const p = (...parts: string[]) => join(work, ...parts);
const sock = p('nbd.sock');
let daemon: ChildProcess;
let api: DaemonClient;
let stderr = '';

/** A local image of `dirs` (under /usr/share), extracted for comparison at p(name, 'tree'). */
function image(name: string, dirs: string[]): void {
  mkdirSync(p(name, 'tree'), { recursive: true });
  execFileSync('tar', ['-C', '/usr/share', '-cf', p(name, 'layer.tar'), ...dirs]);
  execFileSync('tar', ['-C', p(name, 'tree'), '-xf', p(name, 'layer.tar')]);
  cli(['create', p(name, 'layer.tar'), '--bootstrap', p(name, 'image.boot'), '--blob-dir', p('blobs')]);
}

const erofsOn = (name: string): string => {
  const target = p(name, 'erofs');
  mkdirSync(target, { recursive: true });
  mountReadOnly('erofs', p('mnt', name, 'image.erofs'), target);
  return target;
};

beforeAll(async () => {
  image('a', ['zoneinfo', 'X11']);
  image('b', ['perl5']);
  mkdirSync(p('mnt'));
  daemon = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'daemon', '--mode', 'shared', '--block', '--mountpoint', p('mnt'), '--apisock', p('api.sock'),
    '--nbd', `unix:${sock}`, '--cache-dir', p('cache')], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NYDUSIFY_LOG_LEVEL: 'info' } });
  daemon.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await waitFor(() => stderr.includes('"msg":"daemon ready"') || daemon.exitCode !== null, 'the daemon', 20_000, 50);
  expect(daemon.exitCode, stderr).toBeNull();
  api = new DaemonClient(p('api.sock'), 5000);
}, 60_000);

afterAll(async () => {
  for (const n of ['a', 'b']) await exec('umount', ['-l', p(n, 'erofs')]).catch(() => undefined);
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  }
  await exec('rm', ['-rf', work]);
});

describe('a shared block-mode daemon', () => {
  it('serves images mounted through the API as files the kernel mounts and as NBD exports', async () => {
    for (const n of ['a', 'b']) await api.mount(n, { bootstrap: p(n, 'image.boot'), blobDir: p('blobs') });
    expect((await api.info()).block).toBe(true);
    for (const n of ['a', 'b']) expect(diffManifests(treeManifest(p(n, 'tree')), treeManifest(erofsOn(n)), (path, field) => path === '.' && field === 'mtime')).toEqual([]);
    const list = (await exec('nbdinfo', ['--list', '--json', `nbd+unix:///?socket=${sock}`])).stdout;
    expect((JSON.parse(list) as { exports: { 'export-name': string }[] }).exports.map((e) => e['export-name']).sort()).toEqual(['a', 'b']);
    await exec('nbdcopy', [`nbd+unix:///b?socket=${sock}`, p('b.img')]);
    cli(['export', '--block', '--bootstrap', p('b', 'image.boot'), '--blob-dir', p('blobs'), '--output', p('b-export.img')]);
    expect(readFileSync(p('b.img')).equals(readFileSync(p('b-export.img')))).toBe(true);
  });

  it('drops an unmounted image\'s export; the other keeps serving', async () => {
    await exec('umount', [p('a', 'erofs')]);
    await api.umount('a');
    await expect(exec('nbdinfo', [`nbd+unix:///a?socket=${sock}`])).rejects.toThrow();
    const info = JSON.parse((await exec('nbdinfo', ['--json', `nbd+unix:///b?socket=${sock}`])).stdout) as { exports: { 'export-size': number }[] };
    expect(info.exports[0]!['export-size']).toBe(readFileSync(p('b-export.img')).length);
    expect(diffManifests(treeManifest(p('b', 'tree')), treeManifest(p('b', 'erofs')), (path, field) => path === '.' && field === 'mtime')).toEqual([]);
  });

  it('refuses at mount an image whose chunks overlap (no flat image), and keeps serving', async () => {
    // image b's bootstrap with its second chunk moved onto its first: two meanings for the same blocks
    const boot = readFileSync(p('b', 'image.boot'));
    const rafs = RafsImage.open(boot);
    const table = rafs.extSuperblock.chunkTableOffset;
    const hostile = Buffer.from(boot);
    // chunk info entries are 80 bytes; the uncompressed offset is the u64 at 56 (docs/rafs-v6.md §1.14)
    hostile.writeBigUInt64LE(hostile.readBigUInt64LE(table + 56), table + 80 + 56);
    writeFileSync(p('hostile.boot'), hostile);
    // 422: the image is at fault, not the daemon
    await expect(api.mount('c', { bootstrap: p('hostile.boot'), blobDir: p('blobs') })).rejects.toThrow(/overlaps[^]*422/);
    expect((await api.info()).mounts.map((m) => m.mountpoint)).toEqual(['/b']);
  });
});
