// Block mode through our own FUSE file, end to end (root, /dev/fuse, kernel EROFS, the registry of the
// global setup): `mount --block --target` serves debian-ml straight from the registry as one flat
// EROFS image file and mounts the kernel's EROFS on it. Reading one small file fetches a few percent of
// the blobs; the file is byte for byte what `export --block` writes; the tree equals `umoci unpack`;
// a daemon killed -9 is taken over by its successor and the kernel mount goes on working.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync } from '../../helpers/cli.js';
import { cleanUp, type Daemon, type LazyStats, ourMounts, startDaemon, stopWithStats, waitMounted } from '../../helpers/daemon.js';
import { runAsync } from '../../helpers/run.js';
import { diffManifests, treeManifest } from '../../helpers/trees.js';
import { waitFor } from '../../helpers/wait-for.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const REGISTRY = '127.0.0.1:5000';
const TARGET = `${REGISTRY}/debian-ml:block-test`;

const work = mkdtempSync(join(tmpdir(), 'nydusify-block-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];

function mountBlock(mnt: string, cacheDir: string): Daemon {
  const d = startDaemon(['--block', '--target', TARGET, '--plain-http', '--cache-dir', cacheDir], mnt);
  daemons.push(d);
  return d;
}

/** SIGTERM: a clean exit, nothing left mounted, and the daemon's fetch counters. */
async function stop(d: Daemon): Promise<LazyStats> {
  const { code, stats } = await stopWithStats(d);
  expect(code).toBe(0);
  expect(ourMounts(d.mnt, 'erofs')).toEqual([]);
  return stats;
}

/** The one daemon the manager of `d` recorded: its pid and FUSE mountpoint. */
function recorded(d: Daemon): { pid: number; mountpoint: string } {
  const [name] = readdirSync(d.stateDir).filter((n) => n.endsWith('.json') && !n.endsWith('.config.json'));
  return JSON.parse(readFileSync(join(d.stateDir, name!), 'utf8')) as { pid: number; mountpoint: string };
}

beforeAll(async () => {
  await Promise.all([
    cliAsync(['convert', '--source', `${REGISTRY}/debian-ml:latest`, '--target', TARGET, '--plain-http']),
    runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:debian-ml`, p('bundle')]),
  ]);
}, 120_000);

afterAll(() => cleanUp(daemons, work));

describe('mount --block: kernel EROFS on the FUSE file of a lazily served image', () => {
  it('reads one small file fetching under 5 % of the blob bytes', async () => {
    const d = mountBlock(p('mnt1'), p('cache1'));
    await waitMounted(d, 30_000, 'erofs');
    // file-backed: the kernel mounted the daemon's file itself, no loop device in between
    expect(ourMounts(d.mnt, 'erofs')[0]!.source).toBe(join(recorded(d).mountpoint, 'image.erofs'));
    expect(readFileSync(join(d.mnt, 'etc', 'os-release')).equals(readFileSync(p('bundle', 'rootfs', 'etc', 'os-release')))).toBe(true);
    const stats = await stop(d);
    console.log(`block mode: one small file fetched ${stats.fetchedBytes} of ${stats.blobBytes} blob bytes`);
    expect(stats.blobBytes).toBeGreaterThan(50 << 20);
    expect(stats.fetchedBytes).toBeGreaterThan(0);
    expect(stats.fetchedBytes).toBeLessThan(stats.blobBytes * 0.05);
  }, 60_000);

  it('shows the tree umoci unpack gives, serves the bytes export --block writes, and survives a daemon kill -9', async () => {
    const d = mountBlock(p('mnt2'), p('cache2'));
    await waitMounted(d, 30_000, 'erofs');
    const { pid, mountpoint } = recorded(d);
    // half the tree read, then the daemon killed: the successor takes the FUSE connection over
    const rootfs = p('bundle', 'rootfs');
    const sh = readFileSync(join(d.mnt, 'bin', 'dash'));
    process.kill(pid, 'SIGKILL');
    await waitFor(() => recorded(d).pid !== pid, 'a successor daemon', 20_000, 100);
    expect(sh.equals(readFileSync(join(rootfs, 'bin', 'dash')))).toBe(true);
    expect(diffManifests(treeManifest(rootfs), treeManifest(d.mnt), (path, field) => path === '.' && field === 'mtime')).toEqual([]);
    // the lazily filled file equals the flat image written whole from the registry image
    await cliAsync(['export', '--block', '--target', TARGET, '--plain-http', '--output', p('flat.img')]);
    execFileSync('cmp', [p('flat.img'), join(mountpoint, 'image.erofs')]);
    const stats = await stop(d);
    expect(stats.corruptChunks).toBe(0);
  }, 180_000);
});
