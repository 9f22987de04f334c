// The CLI on upstream Nydus fixtures (read by path, see test/helpers/fixtures.ts): an
// upstream bootstrap and blob are inspected, verified chunk by chunk, unpacked and exported to a
// disk image the kernel mounts; v5 and invalid bootstraps are refused with one clear line.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cli, runCli } from '../helpers/cli.js';
import { describeFixtures, nydusFixture } from '../helpers/fixtures.js';
import { blake3 } from '../../src/native/index.js';

let boot: string;
let blobs: string;
let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'nydusify-upstream-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describeFixtures('upstream nydus 2.2 image', () => {
  beforeAll(() => {
    boot = nydusFixture('bootstrap', 'rafs-v6-2.2.boot');
    blobs = nydusFixture('blobs');
  });

  it('inspects with the values of spec §8.2', () => {
    const info = JSON.parse(cli(['inspect', boot, '--json', '--tree'])) as Record<string, any>;
    expect(info.rootNid).toBe(128);
    expect(info.metaBlkaddr).toBe(2);
    expect(info.flags).toBe('0x194');
    expect(info.blobs[0]).toMatchObject({ blobId: 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef', features: '0x70000021', mappedBlkaddr: 512 });
    expect(info.tree.map((l: string) => l.split(' ').pop())).toEqual(['/', '/lib.rs', '/sync_io.rs']);
  });

  it('verifies every chunk of the upstream blob and unpacks it', () => {
    cli(['check', '--bootstrap', boot, '--blob-dir', blobs]);
    cli(['unpack', '--bootstrap', boot, '--blob-dir', blobs, '--output', join(work, 'up.tar')]);
    execFileSync('tar', ['-xf', join(work, 'up.tar'), '-C', work]);
    const file = JSON.parse(cli(['inspect', boot, '--json', '--path', '/lib.rs'])) as { size: number; chunks: { digest: string }[] };
    const data = readFileSync(join(work, 'lib.rs'));
    expect(data.length).toBe(file.size);
    expect(blake3(data)).toBe(file.chunks[0]!.digest);
  });

  it('exports a disk image the kernel mounts', () => {
    cli(['export', '--block', '--bootstrap', boot, '--blob-dir', blobs, '--output', join(work, 'up.img')]);
    const mnt = mkdtempSync(join(work, 'mnt-'));
    execFileSync('mount', ['-t', 'erofs', '-o', 'loop,ro', join(work, 'up.img'), mnt]);
    try {
      expect(readFileSync(join(mnt, 'sync_io.rs')).length).toBe(13400);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

describeFixtures('bootstraps we refuse', () => {
  const innerBoot = (archive: string): string => {
    const dir = mkdtempSync(join(work, 'x-'));
    execFileSync('tar', ['-xzf', nydusFixture('snapshotter-testdata', archive), '-C', dir]);
    return join(dir, 'image', 'image.boot');
  };

  it('reports a v5 bootstrap as detected but unsupported', () => {
    const r = runCli(['inspect', innerBoot('v5-bootstrap-file-size-736032.tar.gz')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/RAFS v5 bootstrap detected: not supported/);
  });

  it('rejects the invalid fixtures with one clear line', () => {
    let checked = 0;
    for (const archive of ['invalid-bootstrap-file-size-133513.tar.gz', 'invalid.tar.gz']) {
      let path: string;
      try {
        path = innerBoot(archive);
      } catch {
        continue; // an archive without image/image.boot is refused before we get to read it
      }
      const r = runCli(['inspect', path]);
      expect(r.status, archive).toBe(1);
      expect(r.stderr.trim().split('\n'), archive).toHaveLength(1);
      checked++;
    }
    expect(checked).toBeGreaterThan(0);
  });
});
