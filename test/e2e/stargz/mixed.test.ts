// End to end, an image mixing an eStargz layer kept as it is and a converted Nydus layer (needs root,
// /dev/fuse, the registry of the global setup and the snapshotter tests' containerd). A small image
// is built: its lower layer made eStargz by stargz-snapshotter's own `ctr-remote image convert`
// (4 MiB pieces), its upper layer plain gzip with whiteouts. `convert --keep-stargz` keeps the first
// blob as it is and converts the second (1 MiB chunks): one bootstrap, two chunk sizes. The daemon
// (FUSE) and the kernel's EROFS (`export --block`) must both show what the source unpacks to, and a
// corrupted member of the kept layer must be EIO for its file alone.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRemoteNydusImage } from '../../../src/image/remote.js';
import { clientForReferences } from '../../../src/registry/client.js';
import { openImageStore } from '../../../src/registry/index.js';
import { readStargzToc } from '../../../src/stargz/toc.js';
import { cliAsync } from '../../helpers/cli.js';
import { ctrRemoteConvert } from '../../helpers/ctr-remote-convert.js';
import { type Daemon, cleanUp, startDaemon as startMountDaemon, readToEnd, stopWithStats, waitMounted } from '../../helpers/daemon.js';
import { type PushedLayer, pushStargzImage } from '../../helpers/push-stargz-image.js';
import { diffManifests, erofsImageManifest, treeManifest } from '../../helpers/trees.js';
import { bufferReader } from '../../stargz/helpers.js';

const REGISTRY = '127.0.0.1:5000';
const REPO = `${REGISTRY}/mixed-e2e`;
const tag = (name: string): string => `${REPO}:${name}-${process.pid}`;
const [PLAIN, ESGZ, SOURCE, MIXED, CORRUPT_SOURCE, CORRUPT] = ['plain', 'esgz', 'source', 'mixed', 'corrupt-source', 'corrupt'].map(tag) as [string, string, string, string, string, string];
const MiB = 1 << 20;

const work = mkdtempSync(join(tmpdir(), 'nydusify-stargz-mixed-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];
const MTIME = 1_700_000_000;

const UPPER_BIG = randomBytes(3 * MiB + 5);
/** Random per run: the layer digests are new, so no earlier run's tags or blobs are reused. */
const FILES = {
  lower: {
    'etc/os-release': Buffer.from('ID=mixed-e2e\n'),
    'etc/gone': Buffer.from('whited out by the upper layer\n'),
    'etc/replaced': Buffer.from('lower version\n'),
    'opt/old': Buffer.from('under an opaque directory\n'),
    /** Three 4 MiB pieces (the last short), each its own gzip member. */
    'bin/big': randomBytes(9 * MiB + 123),
    'usr/share/doc/a.txt': Buffer.from('a\n'.repeat(5000)),
    'empty': Buffer.alloc(0),
  },
  upper: {
    'etc/replaced': Buffer.from('upper version\n'),
    'etc/.wh.gone': Buffer.alloc(0),
    'opt/.wh..wh..opq': Buffer.alloc(0),
    'opt/new': Buffer.from('the only file of /opt\n'),
    /** Four 1 MiB chunks, the last short. */
    'bin/upper-big': UPPER_BIG,
    /**
     * Chunks 2 and 0 of upper-big (deduplicated: not contiguous in the blob), then new bytes: read
     * right by the kernel only when its chunk format says 1 MiB, not the superblock's 4 MiB.
     */
    'bin/upper-shuffled': Buffer.concat([UPPER_BIG.subarray(2 * MiB, 3 * MiB), UPPER_BIG.subarray(0, MiB), randomBytes(100)]),
  },
};

/** Writes `files` under `dir` with fixed mtimes and a few owners and modes worth keeping. */
function writeTree(dir: string, files: Record<string, Buffer>): void {
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  if (files['bin/big']) {
    chownSync(join(dir, 'bin/big'), 1000, 1000);
    chmodSync(join(dir, 'bin/big'), 0o4755);
    symlinkSync('../bin/big', join(dir, 'etc/big-link'));
  }
  execFileSync('find', [dir, '-exec', 'touch', '-h', '-d', `@${MTIME}`, '{}', '+']);
}

/** A gzip tar layer of `dir` (GNU tar) and its diff_id. */
function tarLayer(dir: string, out: string): { blob: Buffer; diffId: string } {
  execFileSync('tar', ['--numeric-owner', '--sort=name', '-C', dir, '-czf', out, '.']);
  const blob = readFileSync(out);
  return { blob, diffId: `sha256:${createHash('sha256').update(gunzipSync(blob)).digest('hex')}` };
}

/** What the image unpacks to: the lower tree, the upper extracted over it, its whiteouts applied. */
function expectedTree(): string {
  const dir = p('expected');
  execFileSync('cp', ['-a', p('lower'), dir]);
  rmSync(join(dir, 'etc/gone'));
  rmSync(join(dir, 'opt'), { recursive: true });
  execFileSync('tar', ['-C', dir, '-xzf', p('upper.tar.gz')]);
  rmSync(join(dir, 'etc/.wh.gone'));
  rmSync(join(dir, 'opt/.wh..wh..opq'));
  // as the upper layer has them: removing the whiteouts touched them
  execFileSync('touch', ['-d', `@${MTIME}`, join(dir, 'etc'), join(dir, 'opt')]);
  return dir;
}

async function registryJson<T>(path: string): Promise<T> {
  const res = await fetch(`http://${REGISTRY}/v2/${path}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return (await res.json()) as T;
}

interface Manifest {
  config: { digest: string };
  layers: { digest: string; size: number; mediaType: string; annotations?: Record<string, string> }[];
}
const manifestOf = (ref: string): Promise<Manifest> => registryJson(`mixed-e2e/manifests/${ref.slice(REPO.length + 1)}`);
const configOf = async (ref: string): Promise<{ rootfs: { diff_ids: string[] } }> => registryJson(`mixed-e2e/blobs/${(await manifestOf(ref)).config.digest}`);

/** The eStargz layer ctr-remote made of the lower tree, as a layer to push again. */
async function esgzLayer(): Promise<PushedLayer> {
  const [layer] = (await manifestOf(ESGZ)).layers;
  const res = await fetch(`http://${REGISTRY}/v2/mixed-e2e/blobs/${layer!.digest}`);
  const blob = Buffer.from(await res.arrayBuffer());
  return { blob, diffId: (await configOf(ESGZ)).rootfs.diff_ids[0]!, annotations: layer!.annotations!, mediaType: layer!.mediaType };
}

/** The layer with one byte flipped inside the gzip member of `name`'s piece at `chunkOffset`. */
async function corruptMember(layer: PushedLayer, name: string, chunkOffset: number): Promise<PushedLayer> {
  const toc = await readStargzToc(bufferReader(layer.blob), layer.blob.length);
  const piece = toc.entries.find((e) => e.name === name && e.chunkOffset === chunkOffset && e.compressedSize > 0)!;
  const blob = Buffer.from(layer.blob);
  const at = piece.offset + Math.floor(piece.compressedSize / 2);
  blob[at] = blob[at]! ^ 0xff;
  return { ...layer, blob };
}

function startDaemon(name: string, target: string): Daemon {
  const d = startMountDaemon(['--target', target, '--plain-http', '--cache-dir', p(`${name}.cache`)], p(name));
  daemons.push(d);
  return d;
}

let expected = '';

beforeAll(async () => {
  writeTree(p('lower'), FILES.lower);
  writeTree(p('upper'), FILES.upper);
  const lower = tarLayer(p('lower'), p('lower.tar.gz'));
  const upper: PushedLayer = { ...tarLayer(p('upper'), p('upper.tar.gz')), annotations: {} };
  expected = expectedTree();
  await pushStargzImage(PLAIN, [{ ...lower, annotations: {} }]);
  await ctrRemoteConvert(PLAIN, ESGZ, ['--estargz']);
  const esgz = await esgzLayer();
  await pushStargzImage(SOURCE, [esgz, upper]);
  await pushStargzImage(CORRUPT_SOURCE, [await corruptMember(esgz, 'bin/big', 4 * MiB), upper]);
  await cliAsync(['convert', '--keep-stargz', '--source', SOURCE, '--target', MIXED, '--plain-http']);
  await cliAsync(['convert', '--keep-stargz', '--source', CORRUPT_SOURCE, '--target', CORRUPT, '--plain-http']);
}, 300_000);

afterAll(() => cleanUp(daemons, work));

describe('convert --keep-stargz of an image with an eStargz lower layer and a plain upper layer', () => {
  it('keeps the eStargz blob as it is, converts the plain layer, and keeps each diff_id', async () => {
    const [source, mixed] = [await manifestOf(SOURCE), await manifestOf(MIXED)];
    expect(mixed.layers).toHaveLength(3);
    expect(mixed.layers[0]).toEqual(source.layers[0]);
    expect(mixed.layers[1]!.annotations).toEqual({ 'containerd.io/snapshot/nydus-blob': 'true' });
    expect(mixed.layers[2]!.annotations?.['containerd.io/snapshot/nydus-bootstrap']).toBe('true');
    const [sourceIds, mixedIds] = [(await configOf(SOURCE)).rootfs.diff_ids, (await configOf(MIXED)).rootfs.diff_ids];
    expect(mixedIds.slice(0, 2)).toEqual([sourceIds[0], mixed.layers[1]!.digest]);
    const client = clientForReferences([[MIXED, false]], true);
    const { store, reference } = await openImageStore(MIXED, client);
    const image = await openRemoteNydusImage(store, reference).finally(() => client.close());
    expect(image.problems).toEqual([]);
    // one bootstrap, two chunk sizes: ctr-remote's 4 MiB pieces and our 1 MiB chunks
    expect(image.rafs.blobs.map((b) => [`sha256:${b.blobId}`, b.chunkSize])).toEqual([[mixed.layers[0]!.digest, 4 * MiB], [mixed.layers[1]!.digest, MiB]]);
    expect(image.rafs.chunkSize).toBe(4 * MiB);
  });

  it('mount --target shows the tree the source unpacks to, every byte read', async () => {
    const d = startDaemon('tree', MIXED);
    await waitMounted(d);
    const hidden = ['.prefetch.landmark', '.no.prefetch.landmark', 'stargz.index.json'];
    expect(diffManifests(treeManifest(expected), treeManifest(d.mnt), (path, field) => path === '.' && field === 'mtime')).toEqual([]);
    for (const name of hidden) expect(() => readFileSync(join(d.mnt, name))).toThrow(/ENOENT/);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(stats.corruptChunks).toBe(0);
  }, 60_000);

  it('check --with-data finds the converted image equal to its source', async () => {
    await cliAsync(['check', '--source', SOURCE, '--target', MIXED, '--plain-http', '--with-data']);
  }, 60_000);

  it('export --block: the kernel EROFS reads files of both chunk sizes as the source has them', async () => {
    await cliAsync(['export', '--block', '--target', MIXED, '--plain-http', '--output', p('mixed.img')]);
    expect(diffManifests(treeManifest(expected), erofsImageManifest(p('mixed.img')), (path, field) => path === '.' && field === 'mtime')).toEqual([]);
  }, 60_000);

  it('a corrupted member of the kept eStargz layer is EIO for that file alone', async () => {
    const d = startDaemon('corrupt', CORRUPT);
    await waitMounted(d);
    await expect(readToEnd(join(d.mnt, 'bin/big'))).rejects.toMatchObject({ code: 'EIO' });
    // the pieces before and after the broken one are still served
    const fd = await open(join(d.mnt, 'bin/big'));
    try {
      const head = Buffer.alloc(4096);
      expect((await fd.read(head, 0, head.length, 0)).bytesRead).toBe(head.length);
      expect(head.equals(FILES.lower['bin/big'].subarray(0, head.length))).toBe(true);
      const tail = Buffer.alloc(123);
      expect((await fd.read(tail, 0, tail.length, 9 * MiB)).bytesRead).toBe(tail.length);
      expect(tail.equals(FILES.lower['bin/big'].subarray(9 * MiB))).toBe(true);
    } finally {
      await fd.close();
    }
    for (const [name, content] of [['etc/os-release', FILES.lower['etc/os-release']], ['bin/upper-big', FILES.upper['bin/upper-big']], ['etc/replaced', FILES.upper['etc/replaced']]] as const) {
      expect((await readToEnd(join(d.mnt, name))).equals(content), name).toBe(true);
    }
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(stats.corruptChunks).toBeGreaterThan(0);
  }, 60_000);
});
