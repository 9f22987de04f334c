// End to end, eStargz and zstd:chunked images served lazily from a registry as they are (needs root,
// /dev/fuse, the registry of the global setup and the snapshotter tests' containerd): debian-ml
// converted by stargz-snapshotter's own `ctr-remote image convert` (once; the tags are kept), then
// `nydusify-ts mount --target` of it must show exactly what `umoci unpack` of debian-ml shows while
// a single small file costs only a small part of the layers' bytes, and a program being started
// brings its interpreter and libraries in ahead (as readelf names them). Hand-made hostile eStargz images
// (test/stargz/helpers.ts) check that a corrupted member is EIO for its file alone and that a TOC
// that is not the one the manifest names is refused before anything is mounted.
import { execFileSync, spawnSync } from 'node:child_process';
import { crc32, gunzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../../src/daemon/api-client.js';
import { TOC_DIGEST_ANNOTATION } from '../../../src/registry/stargz-layers.js';
import { ctrRemoteConvert } from '../../helpers/ctr-remote-convert.js';
import { type Daemon, cleanUp, daemonPids, ourMounts, startDaemon as startMountDaemon, readToEnd, stopWithStats, waitMounted } from '../../helpers/daemon.js';
import { pushStargzImage } from '../../helpers/push-stargz-image.js';
import { manifestLayers, registryBlobBytes, registryLogOffset } from '../../snapshotter/env.js';
import { runAsync } from '../../helpers/run.js';
import { diffManifests, roundedMtimes, treeManifest } from '../../helpers/trees.js';
import { waitFor } from '../../helpers/wait-for.js';
import { sha256, synthEstargz } from '../../stargz/helpers.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const REGISTRY = '127.0.0.1:5000';
const SOURCE = `${REGISTRY}/debian-ml:latest`;
const ESGZ = `${REGISTRY}/debian-ml:stargz-e2e-esgz`;
const ZSTD_CHUNKED = `${REGISTRY}/debian-ml:stargz-e2e-zstdchunked`;
const CORRUPT = `${REGISTRY}/stargz-hostile:corrupt-member-${process.pid}`;
const WRONG_TOC = `${REGISTRY}/stargz-hostile:wrong-toc-digest-${process.pid}`;

const work = mkdtempSync(join(tmpdir(), 'nydusify-stargz-registry-'));
const p = (...parts: string[]) => join(work, ...parts);
const rootfs = p('bundle', 'rootfs');
const daemons: Daemon[] = [];

function startDaemon(name: string, target: string): Daemon {
  const d = startMountDaemon(['--target', target, '--plain-http', '--cache-dir', p(`${name}.cache`)], p(name));
  daemons.push(d);
  return d;
}

// ---------------------------------------------------------------------------------------------
// the hostile layer: three files in 4 KiB pieces, each piece its own gzip member

const FILES = {
  'etc/os-release': Buffer.from('ID=stargz-hostile\n'),
  'bin/good': randomBytes(3 * 4096 + 100),
  /** Its second member's payload has a flipped byte: the member's gzip CRC no longer matches. */
  'bin/broken': randomBytes(2 * 4096),
  /** Its first member's payload has a flipped byte and a CRC made to match: valid gzip, wrong bytes. */
  'bin/forged': randomBytes(2 * 4096),
};
const honest = synthEstargz(
  [{ name: 'etc/', type: 'dir' }, { name: 'bin/', type: 'dir' }, ...Object.entries(FILES).map(([name, content]) => ({ name, content }))],
  { chunkSize: 4096 },
);
const tocDigest = `sha256:${sha256(JSON.stringify(honest.toc, null, '\t'))}`;
const diffId = `sha256:${sha256(gunzipSync(honest.blob))}`;

/** Where the gzip member of `name`'s piece at `chunkOffset` lies in the layer: [start, end). */
function memberOf(name: string, chunkOffset: number): [number, number] {
  const entries = honest.toc.entries as { name: string; offset?: number; chunkOffset?: number }[];
  const starts = [...new Set(entries.flatMap((e) => (e.offset === undefined ? [] : [e.offset]))), honest.data.length].sort((a, b) => a - b);
  const start = entries.find((e) => e.name === name && e.offset !== undefined && (e.chunkOffset ?? 0) === chunkOffset)!.offset!;
  return [start, starts[starts.indexOf(start) + 1]!];
}

/** Flips one payload byte of a member deflate stored as is (random data), fixing its CRC if asked. */
function flipPayloadByte(blob: Buffer, [start, end]: [number, number], fixCrc: boolean): void {
  const member = blob.subarray(start, end);
  // gzip header (10 bytes), then one final stored block: BFINAL|BTYPE=00, LEN, NLEN, the payload
  expect(member[10]).toBe(1);
  const len = member.readUInt16LE(11);
  member[115] = member[115]! ^ 0xff;
  if (fixCrc) member.writeUInt32LE(crc32(member.subarray(15, 15 + len)), member.length - 8);
}

async function pushHostileImages(): Promise<void> {
  const corrupt = Buffer.from(honest.blob);
  flipPayloadByte(corrupt, memberOf('bin/broken', 4096), false);
  flipPayloadByte(corrupt, memberOf('bin/forged', 0), true);
  // the attacks are what they claim: a gzip check fails on one; the other is valid gzip of other
  // bytes, which only the piece's chunkDigest can tell
  expect(() => gunzipSync(corrupt.subarray(...memberOf('bin/broken', 4096)))).toThrow();
  const forged = gunzipSync(corrupt.subarray(...memberOf('bin/forged', 0)));
  expect(forged.length).toBe(4096);
  expect(forged.equals(FILES['bin/forged'].subarray(0, 4096))).toBe(false);
  await pushStargzImage(CORRUPT, [{ blob: corrupt, diffId, annotations: { [TOC_DIGEST_ANNOTATION]: tocDigest } }]);
  const otherToc = `sha256:${sha256('not this layer\'s TOC')}`;
  await pushStargzImage(WRONG_TOC, [{ blob: honest.blob, diffId, annotations: { [TOC_DIGEST_ANNOTATION]: otherToc } }]);
}

beforeAll(async () => {
  await Promise.all([
    (async () => {
      await ctrRemoteConvert(SOURCE, ESGZ, ['--estargz']);
      await ctrRemoteConvert(SOURCE, ZSTD_CHUNKED, ['--zstdchunked']);
    })(),
    runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:debian-ml`, p('bundle')]),
    pushHostileImages(),
  ]);
}, 300_000);

afterAll(() => cleanUp(daemons, work));

describe.each([
  ['eStargz', ESGZ],
  ['zstd:chunked', ZSTD_CHUNKED],
])('mount --target of debian-ml converted to %s by ctr-remote', (kind, target) => {
  it('reads /etc/os-release fetching under 5 % of the layers\' bytes', async () => {
    const layers = (await manifestLayers(target)).map((l) => l.digest);
    const logAt = registryLogOffset();
    const d = startDaemon(`${kind}-one-file`, target);
    await waitMounted(d);
    expect(readFileSync(join(d.mnt, 'etc/os-release')).equals(readFileSync(join(rootfs, 'etc/os-release')))).toBe(true);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(ourMounts(d.mnt)).toEqual([]);
    expect(stats.corruptChunks).toBe(0);
    expect(stats.blobBytes).toBeGreaterThan(50 << 20);
    expect(stats.fetchedBytes).toBeGreaterThan(0);
    expect(stats.fetchedBytes).toBeLessThan(stats.blobBytes * 0.05);
    // what the registry served of these layers, the footers and TOCs read at mount time included
    const served = registryBlobBytes(logAt, layers);
    expect(served).toBeGreaterThanOrEqual(stats.fetchedBytes);
    expect(served).toBeLessThan(stats.blobBytes * 0.05);
    console.log(`${kind}: /etc/os-release: the daemon fetched ${stats.fetchedBytes} of ${stats.blobBytes} layer bytes in ${stats.rangeRequests} range requests; the registry served ${served} bytes of the layers with the TOCs (${((100 * served) / stats.blobBytes).toFixed(2)} %)`);
  }, 30_000);

  it('starting a program fetches its start, its interpreter and its libraries ahead; reading it does not', async () => {
    const d = startMountDaemon(['--target', target, '--plain-http', '--cache-dir', p(`${kind}-program.cache`), '--trace', p(`${kind}-program.json`)], p(`${kind}-program`));
    daemons.push(d);
    await waitMounted(d);
    const sock = readdirSync(d.stateDir).find((f) => f.endsWith('.sock'));
    const api = new DaemonClient(join(d.stateDir, sock!));
    // what the loader would open, as binutils reads it from the unpacked image
    const elf = execFileSync('readelf', ['-ldW', join(rootfs, 'usr/bin/ls')], { encoding: 'utf8' });
    const interp = /Requesting program interpreter: (\S+)\]/.exec(elf)![1]!;
    const needed = [...elf.matchAll(/\(NEEDED\)\s+Shared library: \[(\S+)\]/g)].map((m) => m[1]!);
    expect(needed).toContain('libc.so.6');
    // ls is started, but its interpreter is hidden (/dev/null bound over it in a mount namespace of
    // its own): execve reads ls (FMODE_EXEC) and fails, no loader runs, so whatever of the
    // interpreter and the libraries comes in was fetched ahead; a plain read of ls first brings nothing
    execFileSync('dd', [`if=${join(d.mnt, 'usr/bin/ls')}`, 'of=/dev/null', 'bs=4096', 'count=1', 'iflag=direct'], { stdio: 'ignore' });
    await waitFor(async () => (await api.backendStats()).inflightChunks === 0, 'the read\'s fetch settled');
    expect((await api.accessTrace('/')).fetches.map((f) => f.kind)).toEqual(['demand']);
    // the interpreter's path through the image's own symlinks (/lib64 → usr/lib64 → …), not the host's
    const interpFile = execFileSync('chroot', [rootfs, 'readlink', '-f', interp], { encoding: 'utf8' }).trim();
    const start = spawnSync('unshare', ['-m', 'sh', '-c', `mount --bind /dev/null ${join(d.mnt, interpFile)} && exec chroot ${d.mnt} /usr/bin/ls`]);
    expect(start.status, start.stderr.toString()).not.toBe(0);
    const wanted = [basename(interp), ...needed];
    let files: string[] = [];
    await waitFor(async () => {
      const trace = await api.accessTrace('/');
      files = trace.fetches.filter((f) => f.kind === 'prefetch' && f.file !== undefined).map((f) => trace.files[f.file!]!.path);
      // a library's file name is its soname or the file its soname links to (libc.so.6, libselinux.so.1)
      return wanted.every((w) => files.some((f) => basename(f).startsWith(w.replace(/\.so.*$/, '.so'))));
    }, `prefetch of ${wanted.join(', ')}`, 20_000, 100);
    for (const f of files) expect(readFileSync(join(rootfs, f)).subarray(0, 4).toString('latin1'), `${f} is an ELF file`).toBe('\x7fELF');
    expect((await stopWithStats(d)).code).toBe(0);
  }, 60_000);

  it('shows the whole tree as umoci unpack does, without the landmark or the TOC', async () => {
    const d = startDaemon(`${kind}-tree`, target);
    await waitMounted(d);
    // ctr-remote writes `.no.prefetch.landmark` at the front of every layer
    const root = readdirSync(d.mnt);
    for (const hidden of ['.prefetch.landmark', '.no.prefetch.landmark', 'stargz.index.json']) expect(root).not.toContain(hidden);
    expect(diffManifests(roundedMtimes(rootfs, treeManifest(rootfs)), treeManifest(d.mnt), (path, field) => path === '.' && field === 'mtime')).toEqual([]);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(stats.corruptChunks).toBe(0);
  }, 120_000);
});

describe('mount --target of a hostile eStargz image', () => {
  it('a corrupted member is EIO for its file alone; the daemon keeps serving', async () => {
    const d = startDaemon('corrupt', CORRUPT);
    await waitMounted(d);
    // read as cat(1) does (fs.readFile takes a short read of a small file for its end)
    await expect(readToEnd(join(d.mnt, 'bin/broken'))).rejects.toMatchObject({ code: 'EIO' });
    await expect(readToEnd(join(d.mnt, 'bin/forged'))).rejects.toMatchObject({ code: 'EIO' });
    for (const f of ['etc/os-release', 'bin/good'] as const) expect((await readToEnd(join(d.mnt, f))).equals(FILES[f]), f).toBe(true);
    // the broken file's intact first piece is still served; the forged piece fails again
    const fd = await open(join(d.mnt, 'bin/broken'));
    try {
      const head = Buffer.alloc(4096);
      expect((await fd.read(head, 0, 4096, 0)).bytesRead).toBe(4096);
      expect(head.equals(FILES['bin/broken'].subarray(0, 4096))).toBe(true);
    } finally {
      await fd.close();
    }
    await expect(readToEnd(join(d.mnt, 'bin/forged'))).rejects.toMatchObject({ code: 'EIO' });
    expect(statSync(join(d.mnt, 'bin')).isDirectory()).toBe(true);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(ourMounts(d.mnt)).toEqual([]);
    expect(stats.corruptChunks).toBeGreaterThan(0);
  }, 30_000);

  it('a TOC that is not the one the annotation names: mount fails naming the TOC digest, nothing mounted', async () => {
    const d = startDaemon('wrong-toc', WRONG_TOC);
    const { code } = await Promise.race([d.exit, new Promise<never>((_, fail) => setTimeout(() => fail(new Error(`mount did not fail: ${d.stderr()}`)), 15_000))]);
    expect(code).not.toBe(0);
    expect(d.stderr()).toContain(tocDigest);
    expect(d.stderr()).toMatch(/TOC digest/);
    expect(d.stderr()).not.toMatch(/\n\s+at /);
    expect(ourMounts(d.mnt)).toEqual([]);
    // the daemon the manager started for it stopped too
    expect(d.stderr()).toContain('"msg":"daemon stopped"');
    for (const pid of daemonPids(d)) expect(() => process.kill(pid, 0), `daemon ${pid}`).toThrow();
    console.log(`wrong toc.digest: ${d.stderr().trim().split('\n').at(-1)}`);
  }, 30_000);
});
