// The debian-ml image from scripts/e2e (L2 is a whiteout torture layer): every layer through
// create, merged, exported and mounted by the kernel, equals `umoci unpack` of the same image.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.js';
import { E2E_DIR as e2eDir, e2eUp } from '../helpers/e2e.js';
import { diffManifests, erofsImageManifest, treeManifest, type Manifest } from '../helpers/trees.js';

const layout = join(e2eDir, 'images', 'oci');
const work = mkdtempSync(join(tmpdir(), 'nydusify-merge-'));
const p = (...parts: string[]) => join(work, ...parts);
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 }).toString();

function layerPaths(tag: string): string[] {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!desc) throw new Error(`no ${tag} in ${layout}`);
  const blob = (digest: string) => join(layout, 'blobs', ...digest.split(':'));
  const manifest = JSON.parse(readFileSync(blob(desc.digest), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers.map((l) => blob(l.digest));
}

let reference: Manifest;

beforeAll(() => {
  e2eUp('make-images.sh', ['--no-push']);
  sh('umoci', ['unpack', '--image', `${layout}:debian-ml`, p('bundle')]);
  reference = treeManifest(p('bundle', 'rootfs'));
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('merge of debian-ml', () => {
  it.each(['debian-ml', 'debian-ml-zstd'])('%s: merged layers mount as the same tree umoci unpacks', (tag) => {
    const boots = layerPaths(tag).map((layer, i) => {
      const boot = p(`${tag}-layer${i}.boot`);
      cli(['create', layer, '--bootstrap', boot, '--blob-dir', p('blobs')]);
      return boot;
    });
    cli(['merge', '--bootstrap', p(`${tag}.boot`), '--blob-dir', p('blobs'), ...boots]);
    cli(['check', '--bootstrap', p(`${tag}.boot`), '--blob-dir', p('blobs')]);
    cli(['export', '--block', '--bootstrap', p(`${tag}.boot`), '--blob-dir', p('blobs'), '--output', p(`${tag}.img`)]);
    const got = erofsImageManifest(p(`${tag}.img`));
    // umoci creates rootfs/ itself (no layer has a ./ entry), so only the root's mtime differs by design
    expect(diffManifests(reference, got, (path, field) => path === '.' && field === 'mtime')).toEqual([]);
  });
});
