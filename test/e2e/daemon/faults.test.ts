// End to end, faults under a lazily served image (needs root, /dev/fuse and the registry of the
// global setup). The image is built here from random files, so its blob is this run's alone and may
// be corrupted in the registry's storage without touching anyone else's:
// - the registry goes away after some reads: cached files still read, uncached ones fail with EIO
//   within the fetch timeout, and the mount keeps answering;
// - a chunk corrupted in the registry: EIO for the file that has it, the others read fine;
// - a dead mirror in front of the registry: reads fail over to the registry.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNydusImage } from '../../../src/image/remote.js';
import { killApiDaemons, startApiDaemon, stopApiDaemon } from '../../helpers/api-daemon.js';
import { cliAsync } from '../../helpers/cli.js';
import { writeOciLayout } from '../../helpers/oci-layout.js';
import { cuttableProxy } from '../../helpers/proxy.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const REGISTRY = '127.0.0.1:5000';
const REPO = 'faults';
const TAG = `run-${process.pid}`;
const work = mkdtempSync(join(tmpdir(), 'nydusify-faults-'));
const p = (...parts: string[]) => join(work, ...parts);
const FILES: Record<string, Buffer> = {
  'etc/os-release': Buffer.from('ID=faults\n'),
  'bin/a': randomBytes(1536 << 10),
  'bin/b': randomBytes(1536 << 10),
  'etc/c': Buffer.from('c'.repeat(5000)),
};

/** Drops the page cache of one file (the next read goes to the daemon again). */
function evict(path: string): void {
  execFileSync('python3', ['-c', 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)', path]);
}

let blobFile: string;
let blobId: string;
/** Where bin/b's first chunk lies in the blob (compressed). */
let victim: { offset: number; size: number };

beforeAll(async () => {
  writeOciLayout(p('oci'), FILES);
  await cliAsync(['convert', '--source', `oci:${p('oci')}:v1`, '--target', `${REGISTRY}/${REPO}:${TAG}`, '--plain-http']);
  const { image, close } = await connectNydusImage(`${REGISTRY}/${REPO}:${TAG}`, { plainHttp: true });
  try {
    const rafs = image.rafs;
    blobId = rafs.blobs[0]!.blobId;
    const bin = rafs.lookup(rafs.root, 'bin')!;
    const chunk = rafs.chunks(rafs.lookup(bin, 'b')!)[0]!;
    victim = { offset: chunk.compressedOffset, size: chunk.compressedSize };
  } finally {
    await close();
  }
  blobFile = join(e2eDir, 'registry', 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', blobId.slice(0, 2), blobId, 'data');
}, 60_000);

afterAll(async () => {
  killApiDaemons();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(work)) execFileSync('umount', ['-i', '-l', mp]);
  }
  rmSync(work, { recursive: true, force: true });
});

describe('faults under a lazily served image', () => {
  it('reads cached files after the registry goes away; uncached ones fail with EIO in bounded time', async () => {
    const proxy = await cuttableProxy();
    try {
      const d = await startApiDaemon(work, 'gone', `127.0.0.1:${proxy.port}/${REPO}:${TAG}`, ['--fetch-timeout', '2', '--amplify', '0']);
      // async reads: the proxy lives in this process, a synchronous read would starve it
      expect((await readFile(join(d.mnt, 'bin/a'))).equals(FILES['bin/a']!)).toBe(true);
      proxy.cut();
      evict(join(d.mnt, 'bin/a'));
      // from the blob cache, not the page cache and not the registry
      expect((await readFile(join(d.mnt, 'bin/a'))).equals(FILES['bin/a']!)).toBe(true);
      const started = performance.now();
      await expect(readFile(join(d.mnt, 'bin/b'))).rejects.toMatchObject({ code: 'EIO' });
      expect(performance.now() - started).toBeLessThan(15_000);
      // the daemon is still there, answering metadata and its API
      expect(statSync(join(d.mnt, 'etc')).isDirectory()).toBe(true);
      const stats = await d.client.backendStats();
      expect(stats.errors).toBeGreaterThan(0);
      expect(await stopApiDaemon(d)).toBe(0);
    } finally {
      proxy.cut();
    }
  }, 60_000);

  it('fails only the file whose chunk is corrupt in the registry, with EIO', async () => {
    const fd = openSync(blobFile, 'r+');
    const original = Buffer.alloc(16);
    const at = victim.offset + Math.floor(victim.size / 2);
    readSync(fd, original, 0, 16, at);
    try {
      writeSync(fd, Buffer.from(original.map((b) => b ^ 0xff)), 0, 16, at);
      const d = await startApiDaemon(work, 'corrupt', `${REGISTRY}/${REPO}:${TAG}`, ['--amplify', '0']);
      await expect(readFile(join(d.mnt, 'bin/b'))).rejects.toMatchObject({ code: 'EIO' });
      for (const f of ['bin/a', 'etc/os-release', 'etc/c']) expect(readFileSync(join(d.mnt, f)).equals(FILES[f]!), f).toBe(true);
      // still EIO on a second try: a corrupt chunk is never cached
      await expect(readFile(join(d.mnt, 'bin/b'))).rejects.toMatchObject({ code: 'EIO' });
      const metrics = await d.client.metrics();
      expect(metrics).toMatch(/^nydusify_backend_corrupt_chunks_total [1-9]/m);
      expect(metrics).toMatch(/^nydusify_fuse_read_errors_total [1-9]/m);
      expect(await stopApiDaemon(d)).toBe(0);
    } finally {
      writeSync(fd, original, 0, 16, at);
      closeSync(fd);
    }
  }, 60_000);

  it('fails over from a dead mirror to the registry', async () => {
    const dead = await cuttableProxy();
    dead.cut(); // nothing listens on its port any more
    const d = await startApiDaemon(work, 'mirror', `${REGISTRY}/${REPO}:${TAG}`, ['--mirror', `127.0.0.1:${dead.port}`, '--amplify', '0']);
    for (const f of Object.keys(FILES)) expect(readFileSync(join(d.mnt, f)).equals(FILES[f]!), f).toBe(true);
    const stats = await d.client.backendStats();
    expect(stats.failovers).toBeGreaterThan(0);
    expect(stats.errors).toBe(0);
    expect(await stopApiDaemon(d)).toBe(0);
  }, 60_000);

  it('reads right bytes, never holes, when the cache is cleaned and refilled by another process under a running daemon', async () => {
    const shared = await startApiDaemon(work, 'cleaned', null, ['--amplify', '0']);
    await shared.client.mount('x', { target: `${REGISTRY}/${REPO}:${TAG}` });
    expect((await readFile(join(shared.mnt, 'x', 'bin/a'))).equals(FILES['bin/a']!)).toBe(true);
    // another process removes the blob from the cache, a third creates its files anew with other chunks
    await cliAsync(['cache', 'rm', blobId, '--cache-dir', p('cleaned-cache')]);
    const other = await startApiDaemon(work, 'refill', `${REGISTRY}/${REPO}:${TAG}`, ['--amplify', '0', '--cache-dir', p('cleaned-cache')]);
    expect((await readFile(join(other.mnt, 'etc/c'))).equals(FILES['etc/c']!)).toBe(true);
    expect(await stopApiDaemon(other)).toBe(0);
    // the same image mounted again in the first daemon: what it held in memory is stale now
    await shared.client.mount('y', { target: `${REGISTRY}/${REPO}:${TAG}` });
    for (const f of Object.keys(FILES)) {
      const got = await readFile(join(shared.mnt, 'y', f)).catch(async (err: unknown) => {
        const ls = await cliAsync(['cache', 'ls', '--cache-dir', p('cleaned-cache')]);
        const map = readFileSync(join(p('cleaned-cache'), `${blobId}.blob.data.chunk_map`));
        throw new Error(`${f}: ${String(err)}\n${ls}\nmap header ${map.subarray(0, 16).toString('hex')} bits ${map.subarray(4096, 4100).toString('hex')}\n${shared.stderr()}`);
      });
      expect(got.equals(FILES[f]!), f).toBe(true);
    }
    expect(await stopApiDaemon(shared)).toBe(0);
  }, 60_000);
});
