// Block mode over NBD, end to end with the real clients (root, the registry of the global setup):
// `nydusify-ts daemon --nbd unix:SOCK --target debian-ml` (no FUSE mount at all) serves the image's
// flat EROFS image lazily from the registry. nbdfuse turns the export into a file the kernel's EROFS
// mounts: one small file read fetches a few percent of the blobs, and the whole tree equals `umoci
// unpack`. nbdcopy's copy equals `export --block` byte for byte, and qemu-img reads the same.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../../src/daemon/api-client.js';
import { cliAsync, repoRoot } from '../../helpers/cli.js';
import { runAsync } from '../../helpers/run.js';
import { diffManifests, treeManifest } from '../../helpers/trees.js';
import { waitFor } from '../../helpers/wait-for.js';

const exec = promisify(execFile);
const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const REGISTRY = '127.0.0.1:5000';
const TARGET = `${REGISTRY}/debian-ml:block-nbd-test`;

const work = mkdtempSync(join(tmpdir(), 'nydusify-nbd-'));
const p = (...parts: string[]) => join(work, ...parts);
const sock = p('nbd.sock');
const uri = `nbd+unix:///?socket=${sock}`;
let daemon: ChildProcess;
let api: DaemonClient;
let stderr = '';

beforeAll(async () => {
  await Promise.all([
    cliAsync(['convert', '--source', `${REGISTRY}/debian-ml:latest`, '--target', TARGET, '--plain-http']),
    runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:debian-ml`, p('bundle')]),
  ]);
  daemon = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'daemon', '--target', TARGET, '--plain-http', '--nbd', `unix:${sock}`,
    '--apisock', p('api.sock'), '--cache-dir', p('cache')], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NYDUSIFY_LOG_LEVEL: 'info' } });
  daemon.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await waitFor(() => stderr.includes('"msg":"daemon ready"') || daemon.exitCode !== null, 'the daemon', 30_000, 50);
  expect(daemon.exitCode, stderr).toBeNull();
  api = new DaemonClient(p('api.sock'), 5000);
}, 180_000);

afterAll(async () => {
  await exec('umount', ['-l', p('erofs')]).catch(() => undefined);
  await exec('fusermount3', ['-u', p('nbdfuse')]).catch(() => undefined);
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  }
  await exec('rm', ['-rf', work]);
});

describe('daemon --nbd: the flat EROFS image of a registry image over NBD', () => {
  it('nbdinfo sees a read-only export of the flat image with base:allocation', async () => {
    const info = JSON.parse((await exec('nbdinfo', ['--json', uri])).stdout) as { exports: { 'export-size': number; is_read_only: boolean; contexts: string[] }[] };
    expect(info.exports[0]!.is_read_only).toBe(true);
    expect(info.exports[0]!.contexts).toContain('base:allocation');
    expect(info.exports[0]!['export-size'] % 4096).toBe(0);
  });

  it('nbdfuse + kernel EROFS: one small file fetches under 5 % of the blobs; the tree equals umoci unpack', async () => {
    mkdirSync(p('nbdfuse'));
    mkdirSync(p('erofs'));
    const fuse = spawn('nbdfuse', ['--readonly', p('nbdfuse'), uri], { stdio: 'ignore' });
    await waitFor(() => (statSync(p('nbdfuse', 'nbd'), { throwIfNoEntry: false })?.size ?? 0) > 0, 'nbdfuse to mount', 10_000, 50);
    await exec('mount', ['-t', 'erofs', '-o', 'ro', p('nbdfuse', 'nbd'), p('erofs')]);
    const rootfs = p('bundle', 'rootfs');
    expect(readFileSync(p('erofs', 'etc', 'os-release')).equals(readFileSync(join(rootfs, 'etc', 'os-release')))).toBe(true);
    const fetched = (await api.backendStats()).bytes!;
    const blobBytes = (await api.info()).mounts[0]!.blobBytes;
    console.log(`nbd block mode: one small file fetched ${fetched} of ${blobBytes} blob bytes`);
    expect(fetched).toBeGreaterThan(0);
    expect(fetched).toBeLessThan(blobBytes * 0.05);
    expect(diffManifests(treeManifest(rootfs), treeManifest(p('erofs')), (path, field) => path === '.' && field === 'mtime')).toEqual([]);
    await exec('umount', [p('erofs')]);
    await exec('fusermount3', ['-u', p('nbdfuse')]);
    await new Promise((r) => (fuse.exitCode === null ? fuse.once('exit', r) : r(undefined)));
  }, 120_000);

  it('nbdcopy copies exactly what export --block writes; qemu-img reads the same', async () => {
    await Promise.all([
      exec('nbdcopy', [uri, p('copy.img')]),
      cliAsync(['export', '--block', '--target', TARGET, '--plain-http', '--output', p('flat.img')]),
    ]);
    await exec('cmp', [p('flat.img'), p('copy.img')]);
    const compare = await exec('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', p('flat.img'), `nbd:unix:${sock}`]);
    expect(compare.stdout).toContain('Images are identical');
    const metrics = await api.metrics();
    expect(metrics).toMatch(/^nydusify_nbd_read_bytes_total [1-9]\d*$/m);
    expect((await api.backendStats()).corruptChunks).toBe(0);
  }, 120_000);
});
