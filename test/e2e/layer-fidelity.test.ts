// End to end with the real kernel and erofs-utils: a tar with every entry type goes through
// create → export --block → kernel mount (and bootstrap + blob via `-o device=`, fsck.erofs
// --extract, unpack → GNU tar), and each time the tree equals what GNU tar extracts itself.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, runCli } from '../helpers/cli.js';
import { makeSampleLayer } from '../helpers/sample-tree.js';
import { diffManifests, erofsImageManifest, treeManifest, withMount, type Manifest } from '../helpers/trees.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-fidelity-'));
const p = (...parts: string[]) => join(work, ...parts);
let reference: Manifest;

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

function createLayer(source: string, name: string, extra: string[] = []): string {
  cli(['create', source, '--bootstrap', p(`${name}.boot`), '--blob-dir', p('blobs'), ...extra]);
  return p(`${name}.boot`);
}

function blobIds(): string[] {
  return readdirSync(p('blobs')).filter((f) => /^[0-9a-f]{64}$/.test(f)).sort();
}

beforeAll(() => {
  ({ reference } = makeSampleLayer(work));
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('create → export --block → kernel erofs', () => {
  it('shows exactly what GNU tar extracts', () => {
    const boot = createLayer(p('layer.tar'), 'plain');
    cli(['export', '--block', '--bootstrap', boot, '--blob-dir', p('blobs'), '--output', p('disk.img')]);
    const got = erofsImageManifest(p('disk.img'));
    expect(diffManifests(reference, got)).toEqual([]);
  });

  it('gives the same blob and bootstrap for plain, gzip and zstd input', () => {
    sh('sh', ['-c', `gzip -c ${p('layer.tar')} > ${p('layer.tar.gz')} && zstd -q -c ${p('layer.tar')} > ${p('layer.tar.zst')}`]);
    const plain = readFileSync(createLayer(p('layer.tar'), 'plain'));
    const gz = readFileSync(createLayer(p('layer.tar.gz'), 'gz', ['--type', 'targz-rafs']));
    const zst = readFileSync(createLayer(p('layer.tar.zst'), 'zst'));
    expect(gz.equals(plain)).toBe(true);
    expect(zst.equals(plain)).toBe(true);
    expect(blobIds()).toHaveLength(1);
  });

  it('reads the same through a bootstrap and a separate blob device, with the kernel and fsck.erofs', () => {
    const boot = createLayer(p('layer.tar'), 'plain');
    cli(['export', '--block', '--bootstrap', boot, '--blob-dir', p('blobs'), '--output', p('disk.img')]);
    const info = JSON.parse(cli(['inspect', boot, '--json', '--no-tree'])) as { blobs: { mappedBlkaddr: number; uncompressedSize: number }[] };
    const { mappedBlkaddr, uncompressedSize } = info.blobs[0]!;
    // the blob's uncompressed form (what a blob cache holds) is the flat image's blob region
    sh('dd', [`if=${p('disk.img')}`, `of=${p('blob.data')}`, 'bs=4096', `skip=${mappedBlkaddr}`, `count=${uncompressedSize / 4096}`, 'status=none']);
    const loop = sh('losetup', ['-f', '--show', '-r', p('blob.data')]).trim();
    try {
      const got = withMount(['-t', 'erofs', '-o', `loop,ro,device=${loop}`, boot], (mnt) => treeManifest(mnt));
      expect(diffManifests(reference, got)).toEqual([]);
    } finally {
      sh('losetup', ['-d', loop]);
    }
    sh('fsck.erofs', [`--device=${p('blob.data')}`, `--extract=${p('fsck-out')}`, boot]);
    // erofs-utils 1.5 extracts contents, permissions, owners and times, but no xattrs, no hardlinks
    // and no setuid/setgid/sticky bits: compare what it does restore
    const restorable = (m: Manifest): Manifest => Object.fromEntries(Object.entries(m).map(([path, e]) => {
      const { xattrs: _x, links: _l, mode, ...rest } = e;
      return [path, { ...rest, mode: Number(mode) & 0o777 }];
    }));
    expect(diffManifests(restorable(reference), restorable(treeManifest(p('fsck-out'), { xattrs: false })))).toEqual([]);
  });

  it('unpacks back into a tar that GNU tar extracts to the same tree', () => {
    const boot = createLayer(p('layer.tar'), 'plain');
    cli(['unpack', '--bootstrap', boot, '--blob-dir', p('blobs'), '--output', p('unpacked.tar')]);
    mkdirSync(p('unpacked'));
    sh('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', p('unpacked.tar'), '-C', p('unpacked')]);
    expect(diffManifests(reference, treeManifest(p('unpacked')))).toEqual([]);
  });

  it('builds the same tree from the directory itself (dir-rafs)', () => {
    const boot = createLayer(p('src'), 'dir', ['--type', 'dir-rafs']);
    cli(['export', '--block', '--bootstrap', boot, '--blob-dir', p('blobs'), '--output', p('dir.img')]);
    const got = erofsImageManifest(p('dir.img'));
    expect(diffManifests(treeManifest(p('src')), got, (path, field) => path === '.' && field === 'mtime')).toEqual([]);
  });
});

describe('prefetch list', () => {
  it('records the paths given on stdin (--prefetch-policy fs), in order, skipping missing ones', () => {
    cli(['create', p('layer.tar'), '--bootstrap', p('prefetch.boot'), '--blob-dir', p('blobs'), '--prefetch-policy', 'fs'], {
      input: '/bin/big\n/etc\n/no/such/file\n',
    });
    const info = JSON.parse(cli(['inspect', p('prefetch.boot'), '--json', '--no-tree'])) as { prefetch: string[] };
    expect(info.prefetch).toEqual(['/bin/big', '/etc']);
  });
});

describe('check', () => {
  it('verifies every chunk, and names the file a corrupt chunk belongs to', () => {
    const boot = createLayer(p('layer.tar'), 'plain');
    cli(['check', '--bootstrap', boot, '--blob-dir', p('blobs')]);
    const info = JSON.parse(cli(['inspect', boot, '--json', '--path', '/etc/os-release'])) as { chunks: { compressedOffset: number }[] };
    const corrupt = p('corrupt-blobs');
    mkdirSync(corrupt);
    const { blobs } = JSON.parse(cli(['inspect', boot, '--json', '--no-tree'])) as { blobs: { blobId: string }[] };
    const id = blobs[0]!.blobId;
    const blob = readFileSync(p('blobs', id));
    blob[info.chunks[0]!.compressedOffset + 2]! ^= 0xff;
    writeFileSync(join(corrupt, id), blob);
    const r = runCli(['check', '--bootstrap', boot, '--blob-dir', corrupt]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('/etc/os-release');
    expect(r.stderr).toMatch(/digest mismatch|cannot decompress/);
  });
});

describe('bad input', () => {
  const tarWith = (name: string, make: (dir: string) => void): string => {
    const dir = mkdtempSync(join(work, 'bad-'));
    make(dir);
    return join(dir, name);
  };

  it('refuses tars with .. or absolute paths and leaves nothing behind', () => {
    for (const [label, pathArg] of [['dotdot', '../escape'], ['absolute', '/etc/passwd']] as const) {
      const tar = tarWith('t.tar', (dir) => {
        writeFileSync(join(dir, 'f'), 'x');
        sh('tar', ['-C', dir, '-cf', join(dir, 't.tar'), `--transform=s,^f$,${pathArg},`, '-P', 'f']);
      });
      const out = mkdtempSync(join(work, `out-${label}-`));
      const r = runCli(['create', tar, '--bootstrap', join(out, 'boot'), '--blob-dir', join(out, 'blobs')]);
      expect(r.status, label).toBe(1);
      expect(r.stderr, label).toMatch(label === 'dotdot' ? /\.\./ : /absolute/);
      expect(readdirSync(out).flatMap((f) => (statSync(join(out, f)).isDirectory() ? readdirSync(join(out, f)) : [f])), label).toEqual([]);
    }
  });

  it('refuses a truncated tar with a clear error', () => {
    const data = readFileSync(p('layer.tar'));
    writeFileSync(p('truncated.tar'), data.subarray(0, 600_000));
    const r = runCli(['create', p('truncated.tar'), '--bootstrap', p('t.boot'), '--blob-dir', p('t-blobs')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/truncated|unexpected end/i);
  });

  it('rejects truncated and corrupt bootstraps with a clear error', () => {
    const boot = readFileSync(createLayer(p('layer.tar'), 'plain'));
    writeFileSync(p('short.boot'), boot.subarray(0, 5000));
    const r = runCli(['inspect', p('short.boot')]);
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    const bad = Buffer.from(boot);
    bad.writeUInt32LE(0xdeadbeef, 1024);
    writeFileSync(p('magic.boot'), bad);
    expect(runCli(['check', '--bootstrap', p('magic.boot')]).stderr).toMatch(/not a RAFS|magic/i);
  });
});
