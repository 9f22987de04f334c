// End to end with a plain gzip layer as GNU tar and gzip make it: `create --type targz-ref` serves it
// unmodified — `check` verifies every chunk, the FUSE mount and the exported block image show what
// GNU tar extracts — and a corrupted byte of one file's data is that file's problem only (check
// names it, FUSE answers EIO, the other files read fine), as are corrupted checkpoints (the files
// decoded from them are EIO, the daemon serves on).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, runCli } from '../../helpers/cli.js';
import { cleanUp, type Daemon, localImageTrees, startDaemon, terminate, waitMounted } from '../../helpers/daemon.js';
import { makeSampleTree, pseudoRandom } from '../../helpers/sample-tree.js';
import { diffManifests, treeManifest, type Manifest } from '../../helpers/trees.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-targz-ref-'));
const p = (...parts: string[]) => join(work, ...parts);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const MiB = 1 << 20;

let reference: Manifest;
let blobId: string;
const daemons: Daemon[] = [];

interface ChunkJson { compressedOffset: number; compressedSize: number; uncompressedSize: number }
const chunksOf = (boot: string, path: string): ChunkJson[] => (JSON.parse(cli(['inspect', boot, '--json', '--path', path])) as { chunks: ChunkJson[] }).chunks;

beforeAll(() => {
  makeSampleTree(p('src'));
  // incompressible: gzip stores it, so a stored byte is a byte of the file
  writeFileSync(p('src', 'bin', 'huge'), pseudoRandom(5 * MiB + 4321, 11));
  const tar = (args: string[]) => execFileSync('tar', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  tar(['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', p('src'), '-cf', p('layer.tar'), '.']);
  mkdirSync(p('ref'));
  tar(['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', p('layer.tar'), '-C', p('ref')]);
  reference = treeManifest(p('ref'));
  execFileSync('gzip', ['-6', '-k', p('layer.tar')]);
  blobId = sha256(readFileSync(p('layer.tar.gz')));
  cli(['create', '--type', 'targz-ref', p('layer.tar.gz'), '--bootstrap', p('layer.boot'), '--blob-dir', p('blobs'), '--chunk-size', '0x100000', '--span', String(MiB)]);
}, 60_000);

afterAll(() => cleanUp(daemons, work));

describe('create --type targz-ref of a gzip layer', () => {
  it('links the unmodified layer into the blob dir under its sha256, and check verifies every chunk', () => {
    expect(readdirSync(p('blobs'))).toEqual([blobId]);
    expect(statSync(p('blobs', blobId)).ino).toBe(statSync(p('layer.tar.gz')).ino);
    const out = runCli(['check', '--bootstrap', p('layer.boot'), '--blob-dir', p('blobs')], { env: { NYDUSIFY_LOG_LEVEL: 'info' } });
    expect(out.status, out.stderr).toBe(0);
    const summary = JSON.parse(cli(['inspect', p('layer.boot'), '--json'])) as { blobs: { blobId: string; chunkCount: number }[] };
    expect(summary.blobs).toMatchObject([{ blobId }]);
    expect(out.stderr).toContain(`"verifiedChunks":${summary.blobs[0]!.chunkCount}`);
    expect(chunksOf(p('layer.boot'), '/bin/huge')).toHaveLength(6);
  });

  it('mounts (FUSE) and exports (kernel erofs) exactly what GNU tar extracts', async () => {
    mkdirSync(p('trees'));
    const { fuse, block, exit } = await localImageTrees(p('layer.boot'), p('blobs'), p('trees'), daemons);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(diffManifests(reference, fuse)).toEqual([]);
    expect(diffManifests(reference, block)).toEqual([]);
  });

  it('a corrupted byte of one file: check names that file, FUSE reads it as EIO and the others fine', async () => {
    const blob = readFileSync(p('layer.tar.gz'));
    // bin/huge's third chunk ends its stored range; its data is the last uncompressedSize stored bytes or so
    const third = chunksOf(p('layer.boot'), '/bin/huge')[2]!;
    blob[third.compressedOffset + third.compressedSize - Math.floor(third.uncompressedSize / 2)]! ^= 0xff;
    mkdirSync(p('corrupt-blobs'));
    writeFileSync(p('corrupt-blobs', blobId), blob); // under the layer's name: as a registry would serve a bad byte
    const checked = runCli(['check', '--bootstrap', p('layer.boot'), '--blob-dir', p('corrupt-blobs')]);
    expect(checked.status).not.toBe(0);
    expect(checked.stderr).toMatch(/\/bin\/huge/);
    expect(checked.stderr).toMatch(/1 problem\(s\) found/);
    const d = startDaemon(['--bootstrap', p('layer.boot'), '--blob-dir', p('corrupt-blobs')], p('mnt-corrupt'));
    daemons.push(d);
    await waitMounted(d);
    expect(() => readFileSync(join(d.mnt, 'bin/huge'))).toThrow(expect.objectContaining({ code: 'EIO' }));
    const others = Object.entries(reference).filter(([path, e]) => path !== 'bin/huge' && typeof e.sha256 === 'string');
    expect(others.length).toBeGreaterThan(3);
    for (const [path, e] of others) expect(sha256(readFileSync(join(d.mnt, path))), path).toBe(e.sha256);
    expect(await terminate(d)).toEqual({ code: 0, signal: null });
  });
  it('corrupted checkpoints (their window frames): the files read from them are EIO, the ones before them fine', async () => {
    const boot = readFileSync(p('layer.boot'));
    const ext = 1152;
    const table = Number(boot.readBigUInt64LE(ext + 56));
    expect(Number(boot.readBigUInt64LE(ext + 64))).toBeGreaterThan(0);
    const entriesEnd = boot.readUInt32LE(table + 12);
    // every checkpoint but the first (the stream's start): its window frame overwritten
    for (let at = table + 32; at < table + entriesEnd; at += 32) boot.fill(0xab, table + boot.readUInt32LE(at + 12), table + boot.readUInt32LE(at + 12) + boot.readUInt32LE(at + 8));
    writeFileSync(p('bad-checkpoints.boot'), boot);
    const d = startDaemon(['--bootstrap', p('bad-checkpoints.boot'), '--blob-dir', p('blobs')], p('mnt-bad-checkpoints'));
    daemons.push(d);
    await waitMounted(d);
    // bin/huge (5 MiB) runs past the first span: its later chunks decode from the broken checkpoints
    expect(() => readFileSync(join(d.mnt, 'bin/huge'))).toThrow(expect.objectContaining({ code: 'EIO' }));
    const first = chunksOf(p('layer.boot'), '/etc/os-release')[0]!;
    expect(first.compressedOffset).toBeLessThan(64);
    expect(sha256(readFileSync(join(d.mnt, 'etc/os-release')))).toBe(reference['etc/os-release']!.sha256);
    expect(await terminate(d)).toEqual({ code: 0, signal: null });
  });
});
