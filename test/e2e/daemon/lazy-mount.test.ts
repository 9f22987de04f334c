// End to end, lazy loading (needs root, /dev/fuse and the registry of the global setup): debian-ml
// is converted by the CLI into the registry, `nydusify-ts mount --target` serves it straight from
// there, and reading a few files must give exactly what `umoci unpack` gives while fetching only a
// small part of the image's blobs. A restarted daemon serves the same files from the blob cache
// without one range request; SIGTERM unmounts cleanly. The numbers come from the daemon's own
// "lazy loading done" log line (its fetcher's counters), written when it stops.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync } from '../../helpers/cli.js';
import { cuttableProxy } from '../../helpers/proxy.js';
import { diffManifests, treeManifest } from '../../helpers/trees.js';
import { type Daemon, ourMounts, startDaemon as startMountDaemon, stopWithStats, waitMounted, cleanUp } from '../../helpers/daemon.js';
import { runAsync } from '../../helpers/run.js';
import { BOOTSTRAP_PATH } from '../../../src/registry/nydus-layers.js';
import { loadDaemonConfig } from '../../../src/daemon/config.js';
import { snapshotterSettings } from '../../../src/snapshotter/snapshotter-config.js';
import { parse as parseToml } from 'smol-toml';
import { itFixtureFile } from '../../helpers/fixtures.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const REGISTRY = '127.0.0.1:5000';
const TARGET = `${REGISTRY}/debian-ml:lazy-test`;
const FILES = ['etc/os-release', 'bin/dash', 'usr/lib/os-release'];

const work = mkdtempSync(join(tmpdir(), 'nydusify-lazy-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];

function startDaemon(mnt: string, target = TARGET, cacheDir = p('cache'), extra: string[] = []): Daemon {
  const d = startMountDaemon(['--target', target, '--plain-http', '--cache-dir', cacheDir, ...extra], mnt);
  daemons.push(d);
  return d;
}


/** Reads FILES under `root` (following symlinks, as a program would). */
const readFiles = (root: string) => FILES.map((f) => readFileSync(join(root, f)));

/** `mount ARGS` at `mnt`: FILES read through it as umoci has them, then stopped cleanly with no corrupt chunk. */
async function readThrough(args: string[], mnt: string): Promise<{ d: Daemon; stats: Awaited<ReturnType<typeof stopWithStats>>['stats'] }> {
  const d = startMountDaemon(args, mnt);
  daemons.push(d);
  await waitMounted(d);
  const want = readFiles(p('bundle', 'rootfs'));
  readFiles(d.mnt).forEach((g, i) => expect(g.equals(want[i]!), FILES[i]).toBe(true));
  const { code, stats } = await stopWithStats(d);
  expect(code).toBe(0);
  expect(stats.corruptChunks).toBe(0);
  return { d, stats };
}

beforeAll(async () => {
  await Promise.all([
    cliAsync(['convert', '--source', `${REGISTRY}/debian-ml:latest`, '--target', TARGET, '--plain-http']),
    runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:debian-ml`, p('bundle')]),
  ]);
}, 60_000);

afterAll(() => cleanUp(daemons, work));

describe('nydusify-ts mount --target (lazy loading from a registry)', () => {
  it('reads files straight from the registry, fetching only a small part of the blobs', async () => {
    const rootfs = p('bundle', 'rootfs');
    const d = startDaemon(p('mnt1'));
    await waitMounted(d);
    const started = performance.now();
    const got = readFiles(d.mnt);
    const coldMs = performance.now() - started;
    expect(readlinkSync(join(d.mnt, 'bin', 'sh'))).toBe(readlinkSync(join(rootfs, 'bin', 'sh')));
    expect(readFileSync(join(d.mnt, 'bin', 'sh')).equals(readFileSync(join(rootfs, 'bin', 'sh')))).toBe(true);
    const want = readFiles(rootfs);
    got.forEach((g, i) => expect(g.equals(want[i]!), FILES[i]).toBe(true));
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(ourMounts(d.mnt)).toEqual([]);
    expect(stats.rangeRequests).toBeGreaterThan(0);
    expect(stats.corruptChunks).toBe(0);
    expect(stats.blobBytes).toBeGreaterThan(50 << 20);
    expect(stats.fetchedBytes).toBeLessThan(stats.blobBytes * 0.05);
    console.log(`lazy mount: cold read of ${FILES.join(', ')} in ${coldMs.toFixed(0)} ms; fetched ${stats.fetchedBytes} of ${stats.blobBytes} blob bytes in ${stats.rangeRequests} range requests`);
  }, 30_000);

  it.each([
    // nydus-snapshotter's fusedev sample (v1), as it ships but plain HTTP and a cache of our own
    ['v1 JSON', 'nydusd.json', (cache: string) => JSON.stringify({
      device: { backend: { type: 'registry', config: { scheme: 'http', timeout: 5, connect_timeout: 5, retry_limit: 2 } }, cache: { type: 'blobcache', config: { work_dir: cache } } },
      mode: 'direct', digest_validate: false, iostats_files: false, enable_xattr: true, fs_prefetch: { enable: true, threads_count: 2, prefetch_all: true },
    })],
    // nydus's v2 sample's layout
    ['v2 TOML', 'nydusd.toml', (cache: string) => `version = 2\nid = "e2e"\n[backend]\ntype = "registry"\n[backend.registry]\nscheme = "http"\ntimeout = 5\nretry_limit = 2\n` +
      `[cache]\ntype = "filecache"\n[cache.filecache]\nwork_dir = "${cache}"\n[rafs]\nmode = "direct"\nenable_xattr = true\n`],
  ])('mounts with an upstream nydusd config (%s) as it is: plain HTTP and the cache dir from it', async (kind, file, config) => {
    const cache = p(`cache-${file}`);
    writeFileSync(p(file), config(cache));
    const { d } = await readThrough(['--target', TARGET, '--config', p(file)], p(`mnt-${file}`));
    expect(readdirSync(cache).length, `${kind}: the blob cache is where work_dir says`).toBeGreaterThan(0);
    expect(d.stderr()).toMatch(/nydusd config keys that change nothing here, ignored/);
  }, 60_000);

  it('serves a local bootstrap with its blobs read lazily from the repository its nydusd config names (nydus-snapshotter\'s way)', async () => {
    const manifest = JSON.parse(execFileSync('curl', ['-sf', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json', `http://${REGISTRY}/v2/debian-ml/manifests/lazy-test`], { encoding: 'utf8' })) as { layers: { digest: string }[] };
    execFileSync('bash', ['-c', `curl -sf http://${REGISTRY}/v2/debian-ml/blobs/${manifest.layers.at(-1)!.digest} | tar -xzO ${BOOTSTRAP_PATH} > ${p('lazy.boot')}`]);
    writeFileSync(p('snapshotter.json'), JSON.stringify({
      device: { backend: { type: 'registry', config: { scheme: 'http', host: REGISTRY, repo: 'debian-ml', timeout: 5, connect_timeout: 5, retry_limit: 2 } }, cache: { type: 'blobcache', config: { work_dir: p('cache-snapshotter') } } },
      mode: 'direct', digest_validate: false, iostats_files: false, enable_xattr: true,
    }));
    const { stats } = await readThrough(['--bootstrap', p('lazy.boot'), '--config', p('snapshotter.json')], p('mnt-snapshotter'));
    expect(stats.rangeRequests).toBeGreaterThan(0);
    expect(stats.blobBytes).toBeGreaterThan(50 << 20);
    expect(stats.fetchedBytes).toBeLessThan(stats.blobBytes * 0.05);
  }, 60_000);

  it('serves the same files from the blob cache after a restart, without a range request', async () => {
    const d = startDaemon(p('mnt2'));
    await waitMounted(d);
    const got = readFiles(d.mnt);
    const want = readFiles(p('bundle', 'rootfs'));
    got.forEach((g, i) => expect(g.equals(want[i]!), FILES[i]).toBe(true));
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(ourMounts(d.mnt)).toEqual([]);
    expect(stats.rangeRequests).toBe(0);
    expect(stats.fetchedBytes).toBe(0);
  }, 30_000);

  it('fails reads with EIO, without hanging, when the registry goes away', async () => {
    // a TCP proxy in front of the registry, cut once the daemon has mounted
    const proxy = await cuttableProxy();
    try {
      const d = startDaemon(p('mnt3'), `127.0.0.1:${proxy.port}/debian-ml:lazy-test`, p('cache-dead'), ['--fetch-timeout', '2']);
      await waitMounted(d);
      proxy.cut();
      const started = performance.now();
      await expect(readFile(join(d.mnt, 'bin', 'dash'))).rejects.toMatchObject({ code: 'EIO' });
      expect(performance.now() - started).toBeLessThan(10_000);
      // metadata needs no registry: the mount still answers
      expect(statSync(join(d.mnt, 'etc')).isDirectory()).toBe(true);
      const { code, stats } = await stopWithStats(d);
      expect(code).toBe(0);
      expect(ourMounts(d.mnt)).toEqual([]);
      expect(stats.chunks).toBe(0);
      expect(d.stderr()).toMatch(/chunk fetch failed|timed out/);
    } finally {
      proxy.cut();
    }
  }, 30_000);

  it('shows the whole tree as umoci unpack does, and gives 32 parallel readers identical bytes', async () => {
    const rootfs = p('bundle', 'rootfs');
    const d = startDaemon(p('mnt4'), TARGET, p('cache-full'));
    await waitMounted(d);
    // the 32 biggest files, read cold and all at once
    const listing = execFileSync('find', [rootfs, '-type', 'f', '-printf', '%s %P\\n'], { encoding: 'utf8', maxBuffer: 1 << 26 });
    const biggest = listing.trim().split('\n').map((l) => l.split(' ')).sort((a, b) => Number(b[0]) - Number(a[0])).slice(0, 32).map((f) => f.slice(1).join(' '));
    const got = await Promise.all(biggest.map((f) => readFile(join(d.mnt, f))));
    got.forEach((g, i) => expect(g.equals(readFileSync(join(rootfs, biggest[i]!))), biggest[i]).toBe(true));
    // every entry's metadata and content; the image root's own mtime is the converter's
    expect(diffManifests(treeManifest(rootfs), treeManifest(d.mnt), (path, field) => path === '.' && field === 'mtime')).toEqual([]);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(stats.corruptChunks).toBe(0);
    expect(stats.chunks).toBeGreaterThan(0);
  }, 120_000);
});

// upstream's own sample configs, as they ship (scripts/fixtures.mjs fetches them at pinned commits)
describe('upstream sample configs', () => {
  // the registry ones are a host's: its https scheme and /var/lib cache directory are overridden by the flags
  for (const [dir, name] of [['configs', 'nydusd-config.json'], ['snapshotter-configs', 'nydusd-config.fusedev.json']] as const) {
    itFixtureFile([dir, name], `mounts debian-ml from the registry with ${dir}/${name}`, async (path) => {
      const { d } = await readThrough(['--target', TARGET, '--config', path, '--plain-http', '--cache-dir', p(`cache-${name}`)], p(`mnt-${name}`));
      expect(d.stderr()).toMatch(/nydusd config keys that change nothing here, ignored/);
    }, 60_000);
  }

  itFixtureFile(['configs', 'nydusd-config-v2.toml'], 'loads nydus\'s v2 sample: its localfs dir, filecache work_dir, prefetch', (path) => {
    expect(loadDaemonConfig(path)).toMatchObject({ blobDir: '/tmp', cacheDir: '.', prefetch: { enable: true, bandwidth: 10_000_000 } });
  });

  itFixtureFile(['snapshotter-configs', 'nydusd-config-localfs.json'], 'loads nydus-snapshotter\'s localfs sample', (path) => {
    expect(loadDaemonConfig(path).blobDir).toBe('/var/lib/containerd/io.containerd.snapshotter.v1.nydus/cache/');
  });

  itFixtureFile(['configs', 'nydusd-blob-cache-entry-configuration-v2.toml'], 'refuses nydus\'s v2 sample whose file cache is encrypted, and loads it clear', (path) => {
    expect(() => loadDaemonConfig(path)).toThrow(/cache\.filecache\.enable_encryption: an encrypted cache is not kept here/);
    const clear = p('configuration-v2-clear.toml');
    writeFileSync(clear, readFileSync(path, 'utf8').replace(/^enable_encryption = true$/m, 'enable_encryption = false'));
    expect(loadDaemonConfig(clear)).toMatchObject({ blobDir: '/tmp', cacheDir: '.' });
  });

  for (const [dir, name] of [['configs', 'nydusd-blob-cache-entry.toml'], ['configs', 'nydusd-boostrap-blob-cache-entry.json'], ['snapshotter-configs', 'nydusd-config.fscache.json']] as const) {
    itFixtureFile([dir, name], `refuses ${dir}/${name}: a blob cache entry of fscache mode`, (path) => {
      expect(() => loadDaemonConfig(path)).toThrow(/a blob cache entry of nydusd's fscache mode \(type "bootstrap"\), not a daemon config/);
    });
  }

  itFixtureFile(['snapshotter-configs', 'config.toml'], 'takes nydus-snapshotter\'s config.toml: the keys that apply, the rest reported', (path) => {
    const settings = snapshotterSettings(parseToml(readFileSync(path, 'utf8')), path);
    expect(settings).toMatchObject({ daemonMode: 'dedicated', recoverPolicy: 'failover', fsDriver: 'fuse', daemonConfig: '/etc/nydus/nydusd-config.fusedev.json', threads: 4 });
    expect(settings.ignored).toContain('cgroup');
  });

  for (const name of ['config-proxy.toml', 'config-blockdev.toml']) {
    itFixtureFile(['snapshotter-configs', name], `refuses nydus-snapshotter's ${name}: no daemons (Kata's proxy and block modes)`, (path) => {
      expect(() => snapshotterSettings(parseToml(readFileSync(path, 'utf8')), path)).toThrow(/daemon_mode: "none" is not served here/);
    });
  }
});

