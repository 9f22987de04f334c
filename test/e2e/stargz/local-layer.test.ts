// End to end with a real eStargz layer (built from the sample tree by the reference Go library,
// Debian's golang-github-containerd-stargz-snapshotter-dev, 4 MiB pieces, one prioritized file):
// `create --type estargz-ref` serves it as it is — `check` verifies every chunk, the FUSE mount and
// the exported block image show what GNU tar extracts — a corrupted data member is that file's
// problem only (check names it, FUSE answers EIO), `create --type stargz-index` from the TOC JSON
// gives the same bootstrap, and `inspect` reads the layer's footer and TOC.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, lutimesSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, runCli } from '../../helpers/cli.js';
import { cleanUp, type Daemon, localImageTrees, startDaemon, terminate, waitMounted } from '../../helpers/daemon.js';
import { makeSampleTree, pseudoRandom } from '../../helpers/sample-tree.js';
import { diffManifests, treeManifest, type Manifest } from '../../helpers/trees.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-esgz-local-'));
const p = (...parts: string[]) => join(work, ...parts);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const MiB = 1 << 20;
const GO_SOURCE = join(import.meta.dirname, 'estargz-build.go');

let reference: Manifest;
let layer: string;
let tocDigest: string;
let blobId: string;
const daemons: Daemon[] = [];

/** The Go helper, built once per source version (GOPATH mode, offline; ~10 s the first time). */
function estargzBuildTool(): string {
  const source = readFileSync(GO_SOURCE);
  const dir = join(tmpdir(), `nydusify-estargz-build-${sha256(source).slice(0, 16)}`);
  const bin = join(dir, 'estargz-build');
  if (existsSync(bin)) return bin;
  mkdirSync(join(dir, 'src', 'estargz-build'), { recursive: true });
  writeFileSync(join(dir, 'src', 'estargz-build', 'main.go'), source);
  execFileSync('go', ['build', '-o', `${bin}.${process.pid}`, '.'], {
    cwd: join(dir, 'src', 'estargz-build'),
    env: { ...process.env, GO111MODULE: 'off', GOFLAGS: '', GOPATH: `${dir}:/usr/share/gocode`, GOCACHE: join(dir, 'cache') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  execFileSync('mv', [`${bin}.${process.pid}`, bin]);
  return bin;
}

/** The TOC JSON of an eStargz layer: the one tar entry of the gzip member its 51-byte footer points at. */
function tocJson(blob: Buffer): Buffer {
  const tocOffset = Number.parseInt(blob.subarray(blob.length - 51 + 16, blob.length - 51 + 32).toString('latin1'), 16);
  const tar = gunzipSync(blob.subarray(tocOffset, blob.length - 51));
  const size = Number.parseInt(tar.subarray(124, 136).toString('latin1').replace(/\0.*$/, '').trim(), 8);
  return tar.subarray(512, 512 + size);
}

interface TocEntry { name: string; type: string; offset?: number; size?: number }
/** The TOC's entries, names without the `./` Go's builder keeps from the tar. */
const tocEntries = (blob: Buffer): TocEntry[] =>
  (JSON.parse(tocJson(blob).toString()) as { entries: TocEntry[] }).entries.map((e) => ({ ...e, name: e.name.replace(/^\.\//, '') }));

/**
 * Whole-second mtimes: a TOC's `modtime` is RFC 3339 in seconds, which Go's builder rounds, while
 * GNU tar keeps the nanoseconds and the manifest floors them.
 */
function truncateMtimes(path: string): void {
  const st = lstatSync(path);
  if (st.isDirectory()) for (const name of readdirSync(path)) truncateMtimes(join(path, name));
  lutimesSync(path, st.atime, Math.floor(st.mtimeMs / 1000));
}

beforeAll(() => {
  makeSampleTree(p('src'));
  // a file of three 4 MiB-grid pieces (4 + 4 + 1 MiB)
  writeFileSync(p('src', 'bin', 'huge'), pseudoRandom(9 * MiB + 4321, 11));
  truncateMtimes(p('src'));
  const tar = (args: string[]) => execFileSync('tar', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  tar(['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', p('src'), '-cf', p('layer.tar'), '.']);
  mkdirSync(p('ref'));
  tar(['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', p('layer.tar'), '-C', p('ref')]);
  reference = treeManifest(p('ref'));
  layer = p('layer.esgz');
  tocDigest = execFileSync(estargzBuildTool(), [p('layer.tar'), layer, String(4 * MiB), 'bin/big']).toString().trim();
  blobId = sha256(readFileSync(layer));
  cli(['create', '--type', 'estargz-ref', layer, '--bootstrap', p('layer.boot'), '--blob-dir', p('blobs'), '--toc-digest', tocDigest]);
}, 60_000);

afterAll(() => cleanUp(daemons, work));

describe('create --type estargz-ref of a real eStargz layer', () => {
  it('links the unmodified layer into the blob dir under its sha256, and check verifies every chunk', () => {
    expect(readdirSync(p('blobs'))).toEqual([blobId]);
    expect(statSync(p('blobs', blobId)).ino).toBe(statSync(layer).ino);
    const out = runCli(['check', '--bootstrap', p('layer.boot'), '--blob-dir', p('blobs')], { env: { NYDUSIFY_LOG_LEVEL: 'info' } });
    expect(out.status, out.stderr).toBe(0);
    const valid = out.stderr.split('\n').filter((l) => l.includes('"image is valid"')).map((l) => JSON.parse(l) as { verifiedChunks: number });
    const summary = JSON.parse(cli(['inspect', p('layer.boot'), '--json'])) as { blobs: { blobId: string; chunkCount: number; features: string }[] };
    expect(summary.blobs).toMatchObject([{ blobId }]);
    expect(valid).toEqual([expect.objectContaining({ verifiedChunks: summary.blobs[0]!.chunkCount })]);
    const huge = JSON.parse(cli(['inspect', p('layer.boot'), '--json', '--path', '/bin/huge'])) as { chunks: unknown[] };
    expect(huge.chunks).toHaveLength(3);
  });

  it('is refused when the layer is not the one --toc-digest names', () => {
    const r = runCli(['create', '--type', 'estargz-ref', layer, '--bootstrap', p('wrong.boot'), '--blob-dir', p('wrong-blobs'), '--toc-digest', `sha256:${'0'.repeat(64)}`]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/TOC digest mismatch/);
    expect(existsSync(p('wrong.boot'))).toBe(false);
  });

  it('mounts (FUSE) and exports (kernel erofs) exactly what GNU tar extracts', async () => {
    mkdirSync(p('trees'));
    const { fuse, block, exit } = await localImageTrees(p('layer.boot'), p('blobs'), p('trees'), daemons);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(diffManifests(reference, fuse)).toEqual([]);
    expect(diffManifests(reference, block)).toEqual([]);
  });

  it('a corrupted data member: check names that file, FUSE reads it as EIO and the others fine', async () => {
    const blob = readFileSync(layer);
    // etc/os-release and bin/hard are one file; tar stores it under the name it meets first
    const osRelease = tocEntries(blob).find((e) => e.type === 'reg' && (e.name === 'etc/os-release' || e.name === 'bin/hard'))!;
    blob[osRelease.offset! + 12]! ^= 0xff; // inside the deflate data of its gzip member
    writeFileSync(p('corrupt.esgz'), blob);
    // the TOC is untouched: the layer still passes as the annotated one
    cli(['create', '--type', 'estargz-ref', p('corrupt.esgz'), '--bootstrap', p('corrupt.boot'), '--blob-dir', p('corrupt-blobs'), '--toc-digest', tocDigest]);
    const checked = runCli(['check', '--bootstrap', p('corrupt.boot'), '--blob-dir', p('corrupt-blobs')]);
    expect(checked.status).not.toBe(0);
    expect(checked.stderr).toMatch(/\/(etc\/os-release|bin\/hard)/);
    expect(checked.stderr).toMatch(/1 problem\(s\) found/);
    const d = startDaemon(['--bootstrap', p('corrupt.boot'), '--blob-dir', p('corrupt-blobs')], p('mnt-corrupt'));
    daemons.push(d);
    await waitMounted(d);
    expect(() => readFileSync(join(d.mnt, 'etc/os-release'))).toThrow(expect.objectContaining({ code: 'EIO' }));
    expect(() => readFileSync(join(d.mnt, 'bin/hard'))).toThrow(expect.objectContaining({ code: 'EIO' })); // the same inode
    expect(sha256(readFileSync(join(d.mnt, 'bin/huge')))).toBe(reference['bin/huge']!.sha256);
    expect(readFileSync(join(d.mnt, 'etc/deep/er/still/leaf'), 'utf8')).toBe('deep\n');
    expect(await terminate(d)).toEqual({ code: 0, signal: null });
  });
});

describe('create --type stargz-index from the TOC JSON', () => {
  it('gives the same bootstrap as estargz-ref when told where the TOC starts', () => {
    const blob = readFileSync(layer);
    const json = tocJson(blob);
    expect(`sha256:${sha256(json)}`).toBe(tocDigest);
    writeFileSync(p('toc.json'), json);
    const tocOffset = Number.parseInt(blob.subarray(blob.length - 51 + 16, blob.length - 51 + 32).toString('latin1'), 16);
    cli(['create', '--type', 'stargz-index', p('toc.json'), '--blob-id', `sha256:${blobId}`, '--blob-size', `0x${blob.length.toString(16)}`,
      '--toc-offset', String(tocOffset), '--toc-digest', tocDigest, '--bootstrap', p('index.boot')]);
    expect(readFileSync(p('index.boot')).equals(readFileSync(p('layer.boot')))).toBe(true);
  });

  it('without --toc-offset, the last piece runs to the footer and every chunk still verifies', () => {
    cli(['create', '--type', 'stargz-index', p('toc.json'), '--blob-id', blobId, '--blob-size', String(statSync(layer).size), '--bootstrap', p('index-nooff.boot')]);
    cli(['check', '--bootstrap', p('index-nooff.boot'), '--blob-dir', p('blobs')]);
  });
});

describe('inspect of a stargz-family layer file', () => {
  it('prints the kind, the TOC, counts, chunk size and prefetch list', () => {
    const summary = JSON.parse(cli(['inspect', layer, '--json'])) as Record<string, unknown> & { counts: Record<string, number> };
    const blob = readFileSync(layer);
    const entries = tocEntries(blob);
    expect(summary).toMatchObject({
      kind: 'estargz', blobSize: blob.length, footerSize: 51, tocDigest, chunkSize: 4 * MiB, landmark: 'prefetch', prefetch: ['/bin/big'],
    });
    expect(summary.counts.entries).toBe(entries.length);
    expect(summary.counts.chunk).toBe(2); // bin/huge's second and third pieces
    expect(summary.tocOffset as number + (summary.tocSize as number) + 51).toBe(blob.length);
    const text = cli(['inspect', layer]);
    expect(text).toMatch(/^estargz layer, \d+ bytes, footer 51 bytes$/m);
    expect(text).toContain(`digest ${tocDigest}`);
    expect(text).toMatch(/chunk size 0x400000/);
    expect(text).toMatch(/landmark prefetch, prefetch \/bin\/big/);
    // a bootstrap is still a bootstrap
    expect(cli(['inspect', p('layer.boot'), '--no-tree'])).toMatch(/^RAFS v6/);
  });
});
