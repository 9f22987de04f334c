// Cache garbage collection end to end (needs root, /dev/fuse and the registry of the global setup):
// `mount --target` of a Nydus busybox fills a cache directory with the image's blobs and a copy of
// its bootstrap (<sha256>.boot); every way blobs leave the cache (the snapshotter's Cleanup,
// `cache prune`, `cache rm`) takes the copy along with the image's last blob, and only then. And a
// daemon whose cache files a clean-up removes under it (a Cleanup racing the mount of an image being
// pulled) makes them again and serves right bytes, not EIO.
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../../../src/blobcache/cache.js';
import { CacheGc } from '../../../src/blobcache/cache-gc.js';
import { cliAsync } from '../../helpers/cli.js';
import { cleanUp, type Daemon, startDaemon, stopWithStats, terminate, waitMounted } from '../../helpers/daemon.js';
import { runAsync } from '../../helpers/run.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const REGISTRY = '127.0.0.1:5000';
const TARGET = `${REGISTRY}/busybox:cache-gc-test`;
const work = mkdtempSync(join(tmpdir(), 'nydusify-cache-gc-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];

const bootstrapCopies = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.boot'));
const cachedBlobs = async (dir: string) => (await (await BlobCache.open(dir)).list()).map((b) => b.blobId);

/** A copy of the cache directory the mount filled. */
function cacheCopy(name: string): string {
  cpSync(p('cache'), p(name), { recursive: true });
  return p(name);
}

beforeAll(async () => {
  await Promise.all([
    cliAsync(['convert', '--source', `${REGISTRY}/busybox:latest`, '--target', TARGET, '--plain-http']),
    runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:busybox`, p('bundle')]),
  ]);
  const d = startDaemon(['--target', TARGET, '--plain-http', '--cache-dir', p('cache')], p('mnt'));
  daemons.push(d);
  await waitMounted(d);
  statSync(join(d.mnt, 'bin', 'busybox'));
  expect(await terminate(d)).toEqual({ code: 0, signal: null });
  expect(bootstrapCopies(p('cache'))).toHaveLength(1);
  expect((await cachedBlobs(p('cache'))).length).toBeGreaterThan(0);
});

afterAll(() => cleanUp(daemons, work));

describe('cache garbage collection', () => {
  it('regression: Cleanup removes the bootstrap copy of an image whose blobs no snapshot names', async () => {
    const dir = cacheCopy('cleanup');
    const [copy] = bootstrapCopies(dir);
    const blobs = await cachedBlobs(dir);
    // a snapshot still names the image's blobs: everything stays
    expect((await new CacheGc(dir).collect(new Set(blobs))).removed).toEqual([]);
    expect(bootstrapCopies(dir)).toEqual([copy]);
    const gone = await new CacheGc(dir).collect(new Set());
    expect(readdirSync(dir)).toEqual([]);
    expect(gone.removed.sort()).toEqual([...blobs].sort());
    expect(gone.bootstraps).toEqual([copy]);
  });

  it('regression: `cache prune` removes the bootstrap copy with the last blob of its image', async () => {
    const dir = cacheCopy('prune');
    const [copy] = bootstrapCopies(dir);
    const out = await cliAsync(['cache', 'prune', '--max-size', '0', '--cache-dir', dir]);
    expect(out).toContain(`removed ${copy}`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('regression: `cache rm` of the last blob of an image removes its bootstrap copy', async () => {
    const dir = cacheCopy('rm');
    const [copy] = bootstrapCopies(dir);
    const blobs = await cachedBlobs(dir);
    for (const [i, blob] of blobs.entries()) {
      const out = await cliAsync(['cache', 'rm', blob, '--cache-dir', dir]);
      expect(out.includes(`removed ${copy}`)).toBe(i === blobs.length - 1);
      expect(bootstrapCopies(dir)).toEqual(i === blobs.length - 1 ? [] : [copy]);
    }
  });

  it('regression: a daemon whose cache files are removed after its mount makes them again and serves right bytes', async () => {
    const dir = p('removed-under');
    const d = startDaemon(['--target', TARGET, '--plain-http', '--cache-dir', dir], p('mnt-removed-under'));
    daemons.push(d);
    await waitMounted(d);
    // what a Cleanup naming none of the image's blobs does: every blob's files go (the workers had opened none yet)
    const gone = await new CacheGc(dir).collect(new Set());
    expect(gone.removed.length).toBeGreaterThan(0);
    expect(readFileSync(join(d.mnt, 'bin', 'busybox')).equals(readFileSync(p('bundle', 'rootfs', 'bin', 'busybox')))).toBe(true);
    expect((await cachedBlobs(dir)).length).toBeGreaterThan(0);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(stats.corruptChunks).toBe(0);
    expect(d.stderr()).not.toContain('read failed');
  });
});
