// End to end, a plain OCI image made lazy without touching it (needs root, /dev/fuse and the
// registry of the global setup): debian-ml's unmodified gzip layers, copied digest for digest into
// a repository of their own, are indexed by `nydusify-ts index --push` (a referrer of the image,
// through the referrers tag schema: docker-registry 2.8 has no referrers API); `mount --target`
// finds the index and serves the image lazily: the tree equals `umoci unpack`, and reading a few
// files fetches a small part of the layers. Without an index a mount says how to make one.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, runCli } from '../../helpers/cli.js';
import { cleanUp, type Daemon, startDaemon, stopWithStats, waitMounted } from '../../helpers/daemon.js';
import { runAsync } from '../../helpers/run.js';
import { diffManifests, treeManifest } from '../../helpers/trees.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const REGISTRY = '127.0.0.1:5000';
const IMAGE = `${REGISTRY}/gzip-index-test/debian-ml:latest`;
const BARE = `${REGISTRY}/gzip-index-test/busybox:latest`;

const work = mkdtempSync(join(tmpdir(), 'nydusify-gzip-index-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];

interface IndexSummary { image: string; index: string; pushed: boolean; indexBytes: number; layerBytes: number; indexRatio: number; layers: { layer: string }[] }
let summary: IndexSummary;

beforeAll(async () => {
  const copy = (from: string, to: string) => execFileSync('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', '--src-tls-verify=false', `docker://${from}`, `docker://${to}`]);
  copy(`${REGISTRY}/debian-ml:latest`, IMAGE);
  copy(`${REGISTRY}/busybox:latest`, BARE);
  await runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:debian-ml`, p('bundle')]);
  cli(['index', '--source', IMAGE, '--plain-http', '--push', '--output-json', p('index.json')]);
  summary = JSON.parse(readFileSync(p('index.json'), 'utf8')) as IndexSummary;
}, 300_000);

afterAll(() => cleanUp(daemons, work));

describe('index --push of a plain gzip image', () => {
  it('indexes every layer and stays small beside the layers', () => {
    expect(summary.pushed).toBe(true);
    expect(summary.layers).toHaveLength(3);
    expect(summary.indexRatio).toBeLessThan(0.05);
    // the referrers tag schema: sha256-<image digest> lists the index
    const tagIndex = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${REGISTRY}/gzip-index-test/debian-ml:${summary.image.replace(':', '-')}`]).toString()) as { manifests: { digest: string; artifactType?: string }[] };
    expect(tagIndex.manifests).toContainEqual(expect.objectContaining({ digest: summary.index, artifactType: 'application/vnd.nydusify-ts.gzip-index.v1' }));
  });

  it('mount --target serves the image lazily, as umoci unpacks it', async () => {
    const d = startDaemon(['--target', IMAGE, '--plain-http', '--cache-dir', p('cache')], p('mnt'));
    daemons.push(d);
    await waitMounted(d);
    const want = ['etc/os-release', 'bin/dash', 'usr/lib/os-release'].map((f) => readFileSync(join(p('bundle', 'rootfs'), f)));
    ['etc/os-release', 'bin/dash', 'usr/lib/os-release'].forEach((f, i) => expect(readFileSync(join(d.mnt, f)).equals(want[i]!), f).toBe(true));
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(stats.corruptChunks).toBe(0);
    // a few files: a small part of the layers
    expect(stats.fetchedBytes).toBeLessThan(0.1 * summary.layerBytes);
  });

  it('the whole tree through the mount equals umoci unpack', async () => {
    const d = startDaemon(['--target', IMAGE, '--plain-http', '--cache-dir', p('cache-all')], p('mnt-all'));
    daemons.push(d);
    await waitMounted(d);
    // the root is no layer's entry: umoci's is the directory it made
    expect(diffManifests(treeManifest(p('bundle', 'rootfs')), treeManifest(d.mnt), (path, field) => path === '.' && field === 'mtime')).toEqual([]);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(stats.corruptChunks).toBe(0);
  });

  it('a plain image with no index: mount says how to make one', () => {
    mkdirSync(p('mnt-bare'));
    const r = runCli(['mount', '--target', BARE, '--plain-http', '--cache-dir', p('cache-bare'), '--mount-path', p('mnt-bare'), '--state-dir', p('state-bare')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/no gzip index.*nydusify-ts index --source REF --push/);
  });
});
