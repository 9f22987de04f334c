// A blob cache on a filesystem that fills up (needs root: a 16 MiB tmpfs mounted as the cache
// directory). A cache that cannot store a chunk still hands its verified bytes to the reader, marks
// nothing it did not store and counts the failure. End to end (with /dev/fuse and the registry of
// the global setup), reads through a lazily served image should stay right, without EIO: not yet.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../../../src/blobcache/cache.js';
import { LocalDirBackend } from '../../../src/blobcache/local-backend.js';
import { verifyCache } from '../../../src/blobcache/verify.js';
import { makeBlob } from '../../blobcache/helpers.js';
import { cliAsync } from '../../helpers/cli.js';
import { type Daemon, cleanUp, startDaemon, terminate, waitMounted } from '../../helpers/daemon.js';
import { runAsync } from '../../helpers/run.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const TARGET = '127.0.0.1:5000/debian-ml:disk-full-test';
const work = mkdtempSync(join(tmpdir(), 'nydusify-disk-full-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];

/** A fresh tmpfs of `size` at `dir` (cleanUp unmounts everything under `work`). */
function smallFilesystem(dir: string, size: string): string {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  return dir;
}


/** The largest regular files of the unpacked image (together far more than the cache can hold). */
let biggest: string[];

beforeAll(async () => {
  await Promise.all([
    cliAsync(['convert', '--source', '127.0.0.1:5000/debian-ml:latest', '--target', TARGET, '--plain-http']),
    runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:debian-ml`, p('bundle')]),
  ]);
  const listing = execFileSync('find', [p('bundle', 'rootfs'), '-type', 'f', '-printf', '%s %P\\n'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  biggest = listing.trim().split('\n').map((l) => l.split(' ')).sort((a, b) => Number(b[0]) - Number(a[0])).slice(0, 24).map((f) => f.slice(1).join(' '));
}, 120_000);

afterAll(() => cleanUp(daemons, work));

describe('a blob cache whose filesystem fills up', () => {
  it('regression: hands every verified chunk to its reader, marks only stored chunks ready and counts the store failures', async () => {
    // 24 MiB of chunks for a 16 MiB filesystem
    const t = await makeBlob(p('build'), { 'a.bin': randomBytes(12 << 20), 'b.bin': randomBytes(12 << 20) });
    const dir = smallFilesystem(p('small-cache'), '16m');
    const backend = new LocalDirBackend(t.blobDir);
    const cache = await BlobCache.open(dir, { backend, fetch: { amplify: 0 } });
    try {
      for (const [path, file] of t.files) {
        const parts: Buffer[] = [];
        for (const ref of file.chunks) parts.push(await cache.readChunk(t.blob, ref));
        expect(Buffer.concat(parts).equals(file.data), path).toBe(true);
      }
    } finally {
      await cache.close();
      await backend.close();
    }
    const stats = cache.fetcher!.stats;
    const check = await verifyCache(dir, t.rafs);
    console.log(`disk full (cache): ${t.chunks.length} chunks read right, ${check.ready} stored and verified, ${stats.storeErrors} not stored (counted)`);
    expect(check.corrupt).toBe(0);
    expect(check.ready).toBeGreaterThan(0);
    expect(check.ready).toBeLessThan(t.chunks.length);
    expect(stats.storeErrors).toBe(t.chunks.length - check.ready);
  }, 60_000);

  // A chunk the cache could not keep is handed to the FUSE worker in its reply slot (EIO before).
  it('regression: serves right bytes through a lazily served image, without EIO, once the cache filesystem is full', async () => {
    const cacheDir = smallFilesystem(p('daemon-cache'), '16m');
    const d = startDaemon(['--target', TARGET, '--plain-http', '--cache-dir', cacheDir], p('mnt'));
    daemons.push(d);
    await waitMounted(d);
    let bytes = 0;
    const failed: string[] = [];
    for (const f of biggest) {
      const want = readFileSync(p('bundle', 'rootfs', f));
      const got = await readFile(join(d.mnt, f)).catch((err: NodeJS.ErrnoException) => {
        failed.push(`${f}: ${err.code}`);
        return undefined;
      });
      if (!got) continue;
      expect(got.equals(want), f).toBe(true);
      bytes += got.length;
    }
    console.log(`disk full (daemon): ${bytes} bytes read right from ${biggest.length - failed.length} of ${biggest.length} files through a 16 MiB cache; failed: ${failed.length}`);
    expect(failed).toEqual([]);
    expect(await terminate(d)).toEqual({ code: 0, signal: null });
  }, 120_000);
});
