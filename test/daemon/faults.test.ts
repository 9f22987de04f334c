// End to end, faults under a lazily served image (needs root, /dev/fuse and the registry of the
// global setup). The image is built here from random files, so its blob is this run's alone and may
// be corrupted in the registry's storage without touching anyone else's:
// - the registry goes away after some reads: cached files still read, uncached ones fail with EIO
//   within the fetch timeout, and the mount keeps answering;
// - a chunk corrupted in the registry: EIO for the file that has it, the others read fine;
// - a dead mirror in front of the registry: reads fail over to the registry.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../src/daemon/api-client.js';
import { connectNydusImage } from '../../src/image/remote.js';
import { cliAsync, repoRoot } from '../helpers/cli.js';
import { cuttableProxy } from '../helpers/proxy.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const REGISTRY = '127.0.0.1:5000';
const REPO = 'faults';
const TAG = `run-${process.pid}`;
const work = mkdtempSync(join(tmpdir(), 'nydusify-faults-'));
const p = (...parts: string[]) => join(work, ...parts);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const children: ChildProcess[] = [];
const FILES: Record<string, Buffer> = {
  'etc/os-release': Buffer.from('ID=faults\n'),
  'bin/a': randomBytes(1536 << 10),
  'bin/b': randomBytes(1536 << 10),
  'etc/c': Buffer.from('c'.repeat(5000)),
};

/** An OCI layout with one gzip layer of FILES (random content: a blob no other test has). */
function writeOciLayout(dir: string): void {
  const tree = p('tree');
  for (const [path, data] of Object.entries(FILES)) {
    mkdirSync(join(tree, path, '..'), { recursive: true });
    writeFileSync(join(tree, path), data);
  }
  const tar = execFileSync('tar', ['--numeric-owner', '-C', tree, '-cf', '-', '.'], { maxBuffer: 1 << 26 });
  const layer = gzipSync(tar);
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer): { digest: string; size: number } => {
    const hex = sha256(data);
    writeFileSync(join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(tar)}`] } })));
  const manifest = put(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(layer) }],
  })));
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }],
  }));
}

interface Running {
  child: ChildProcess;
  client: DaemonClient;
  mnt: string;
  stderr(): string;
}

/** A dedicated daemon serving `target`, or (target null) a shared one waiting for API mounts. */
async function startDaemon(name: string, target: string | null, extra: string[] = []): Promise<Running> {
  const mnt = p(name);
  const sock = p(`${name}.sock`);
  mkdirSync(mnt, { recursive: true });
  const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'daemon', ...(target === null ? ['--mode', 'shared'] : ['--target', target]), '--plain-http', '--apisock', sock, '--mountpoint', mnt, '--cache-dir', p(`${name}-cache`), ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NYDUSIFY_LOG_LEVEL: 'info' },
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 15_000;
  while (!stderr.includes('"msg":"daemon ready"')) {
    if (child.exitCode !== null) throw new Error(`daemon exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`daemon not ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, client: new DaemonClient(sock, 5000), mnt, stderr: () => stderr };
}

async function stop(d: Running): Promise<number | null> {
  if (d.child.exitCode !== null) return d.child.exitCode;
  const exited = new Promise<number | null>((r) => d.child.once('exit', (code) => r(code)));
  d.child.kill('SIGTERM');
  return exited;
}

/** Drops the page cache of one file (the next read goes to the daemon again). */
function evict(path: string): void {
  execFileSync('python3', ['-c', 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)', path]);
}

let blobFile: string;
let blobId: string;
/** Where bin/b's first chunk lies in the blob (compressed). */
let victim: { offset: number; size: number };

beforeAll(async () => {
  writeOciLayout(p('oci'));
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
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
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
      const d = await startDaemon('gone', `127.0.0.1:${proxy.port}/${REPO}:${TAG}`, ['--fetch-timeout', '2', '--amplify', '0']);
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
      expect(await stop(d)).toBe(0);
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
      const d = await startDaemon('corrupt', `${REGISTRY}/${REPO}:${TAG}`, ['--amplify', '0']);
      await expect(readFile(join(d.mnt, 'bin/b'))).rejects.toMatchObject({ code: 'EIO' });
      for (const f of ['bin/a', 'etc/os-release', 'etc/c']) expect(readFileSync(join(d.mnt, f)).equals(FILES[f]!), f).toBe(true);
      // still EIO on a second try: a corrupt chunk is never cached
      await expect(readFile(join(d.mnt, 'bin/b'))).rejects.toMatchObject({ code: 'EIO' });
      const metrics = await d.client.metrics();
      expect(metrics).toMatch(/^nydusify_backend_corrupt_chunks_total [1-9]/m);
      expect(metrics).toMatch(/^nydusify_fuse_read_errors_total [1-9]/m);
      expect(await stop(d)).toBe(0);
    } finally {
      writeSync(fd, original, 0, 16, at);
      closeSync(fd);
    }
  }, 60_000);

  it('fails over from a dead mirror to the registry', async () => {
    const dead = await cuttableProxy();
    dead.cut(); // nothing listens on its port any more
    const d = await startDaemon('mirror', `${REGISTRY}/${REPO}:${TAG}`, ['--mirror', `127.0.0.1:${dead.port}`, '--amplify', '0']);
    for (const f of Object.keys(FILES)) expect(readFileSync(join(d.mnt, f)).equals(FILES[f]!), f).toBe(true);
    const stats = await d.client.backendStats();
    expect(stats.failovers).toBeGreaterThan(0);
    expect(stats.errors).toBe(0);
    expect(await stop(d)).toBe(0);
  }, 60_000);

  it('reads right bytes, never holes, when the cache is cleaned and refilled by another process under a running daemon', async () => {
    const shared = await startDaemon('cleaned', null, ['--amplify', '0']);
    await shared.client.mount('x', { target: `${REGISTRY}/${REPO}:${TAG}` });
    expect((await readFile(join(shared.mnt, 'x', 'bin/a'))).equals(FILES['bin/a']!)).toBe(true);
    // another process removes the blob from the cache, a third creates its files anew with other chunks
    await cliAsync(['cache', 'rm', blobId, '--cache-dir', p('cleaned-cache')]);
    const other = await startDaemon('refill', `${REGISTRY}/${REPO}:${TAG}`, ['--amplify', '0', '--cache-dir', p('cleaned-cache')]);
    expect((await readFile(join(other.mnt, 'etc/c'))).equals(FILES['etc/c']!)).toBe(true);
    expect(await stop(other)).toBe(0);
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
    expect(await stop(shared)).toBe(0);
  }, 60_000);
});
