// Plain OCI images pulled by the snapshotter itself (plain-pulls.ts, by default) with real containerd: `ctr-remote
// image rpull` of the unmodified debian-ml labels each layer's Prepare with its image and digest; the
// snapshotter pulls all three layers at once, each written as it streams, and commits each when
// containerd asks, which then downloads nothing itself; each layer is an EROFS image the kernel
// mounts. A container runs /etc/e2e/expect.sh (ALL OK) and the merged tree equals `umoci unpack`'s;
// a restart mounts layers whose mounts were lost; removing the image unmounts them. An image whose config gives its top layer a diff_id
// its tar does not have never gets that layer committed by us (regression: nothing unverified under
// a chain ID).
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientForReferences } from '../../../src/registry/client.js';
import { readBlob } from '../../../src/registry/image-store.js';
import { openImageStore } from '../../../src/registry/index.js';
import {
  chainIds, containerdUp, ctr, ctrRemote, E2E_DIR, manifestLayers, mustCtr, REGISTRY, registryLogOffset, registryLogSince, SNAPSHOTTER,
  startSnapshotter, stopAndClean, type SnapshotterProcess, umociDiffOfView,
} from '../../snapshotter/env.js';

const IMAGE = `${REGISTRY}/debian-ml:latest`;
const BAD_DIFF_ID = `${REGISTRY}/debian-ml:plain-pull-bad-diff-id`;
const root = mkdtempSync(`${E2E_DIR}-plain-pull-`);
let sn: SnapshotterProcess;

/** debian-ml with its top layer's diff_id changed (a new config; the layers are the same blobs). */
async function pushBadDiffId(): Promise<void> {
  const { store } = await openImageStore(BAD_DIFF_ID, clientForReferences([[BAD_DIFF_ID, false]], true));
  const manifest = (await store.getManifest('latest')).parsed as { config: { digest: string; size: number; mediaType: string }; layers: object[] };
  const config = JSON.parse((await readBlob(store, manifest.config, 1 << 20)).toString('utf8')) as { rootfs: { diff_ids: string[] } };
  config.rootfs.diff_ids[2] = `sha256:${'1'.repeat(64)}`;
  const bytes = Buffer.from(JSON.stringify(config));
  const descriptor = { mediaType: manifest.config.mediaType, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length };
  await store.putBlob(descriptor, bytes);
  await store.putManifest(Buffer.from(JSON.stringify({ ...manifest, config: descriptor })), 'application/vnd.oci.image.manifest.v1+json', 'plain-pull-bad-diff-id');
}

beforeAll(async () => {
  await containerdUp();
  await pushBadDiffId();
  sn = await startSnapshotter(root);
  await ctr(['task', 'kill', '-s', 'KILL', 'plain']);
  await ctr(['task', 'rm', '-f', 'plain']);
  await ctr(['container', 'rm', 'plain']);
  await ctr(['images', 'rm', '--sync', IMAGE, BAD_DIFF_ID]);
}, 300_000);

afterAll(async () => {
  await ctr(['snapshots', '--snapshotter', SNAPSHOTTER, 'rm', 'plain-view']);
  await ctr(['images', 'rm', '--sync', IMAGE, BAD_DIFF_ID]);
  await stopAndClean(sn, root);
}, 120_000);

describe('a plain OCI image through the snapshotter', () => {
  it('is pulled by the snapshotter, all layers at once; containerd downloads none; expect.sh ALL OK; the tree is umoci\'s', async () => {
    const layers = await manifestLayers(IMAGE);
    const from = registryLogOffset();
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, IMAGE], 300_000);
    expect(pull.code, pull.stderr).toBe(0);
    const pulled = sn.log().split('\n').filter((l) => l.includes('"msg":"layer pulled"'));
    expect(pulled).toHaveLength(layers.length);
    for (const l of layers) expect(pulled.some((line) => line.includes(l.digest)), l.digest).toBe(true);
    // each layer blob was fetched once, by the snapshotter (containerd's client names itself)
    const gets = registryLogSince(from).filter((l) => /GET \/v2\/debian-ml\/blobs\/sha256:/.test(l) && / 200 /.test(l));
    for (const l of layers) expect(gets.filter((g) => g.includes(l.digest)), l.digest).toHaveLength(1);
    expect(gets.filter((g) => /containerd\//.test(g) && layers.some((l) => g.includes(l.digest)))).toEqual([]);

    const r = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, IMAGE, 'plain', '/etc/e2e/expect.sh'], 180_000);
    expect(r.stdout, `ctr run exited ${r.code}: ${r.stderr}`).toContain('ALL OK');
    expect(r.stdout).not.toMatch(/^FAIL/m);

    const { chains } = await chainIds(IMAGE, 'latest');
    expect(await umociDiffOfView(root, 'plain-view', chains.at(-1)!)).toEqual([]);
  }, 600_000);

  it('keeps its layers as EROFS mounts: mounted again after a restart that lost them (a reboot), unmounted when the image goes', async () => {
    const erofsMounts = (): string[] => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(' - erofs ')).map((l) => l.split(' ')[4]!).filter((m) => m.startsWith(`${root}/`));
    expect(erofsMounts()).toHaveLength(3);
    sn.child.kill('SIGTERM');
    await sn.exit;
    for (const m of erofsMounts()) execFileSync('umount', [m]);
    sn = await startSnapshotter(root);
    expect(erofsMounts()).toHaveLength(3);
    const r = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, IMAGE, 'plain', '/etc/e2e/expect.sh'], 180_000);
    expect(r.stdout, `ctr run exited ${r.code}: ${r.stderr}`).toContain('ALL OK');
    await ctr(['snapshots', '--snapshotter', SNAPSHOTTER, 'rm', 'plain-view']);
    await mustCtr(['images', 'rm', '--sync', IMAGE]);
    expect(erofsMounts()).toEqual([]);
  }, 600_000);

  it('keeps an image\'s download to --fast-pull-bandwidth, and says how far it is', async () => {
    const layers = await manifestLayers(IMAGE);
    const bytes = layers.reduce((n, l) => n + l.size, 0);
    sn.child.kill('SIGTERM');
    await sn.exit;
    sn = await startSnapshotter(root, ['--fast-pull-bandwidth', '15M']);
    try {
      const started = performance.now();
      const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, IMAGE], 300_000);
      expect(pull.code, pull.stderr).toBe(0);
      // unpaced, this loopback pull takes ~1.5 s; the pace counts from the manifest's reading, and each
      // layer's stream may run a read ahead of it
      expect((performance.now() - started) / 1000).toBeGreaterThanOrEqual(0.9 * (bytes / 15e6));
      expect(sn.log()).toMatch(/"msg":"pulling","ref":"127\.0\.0\.1:5000\/debian-ml:latest","mb":\d+,"ofMb":97/);
      await mustCtr(['images', 'rm', '--sync', IMAGE]);
    } finally {
      sn.child.kill('SIGTERM');
      await sn.exit;
      sn = await startSnapshotter(root);
    }
  }, 600_000);

  it('never commits a layer whose tar is not the one its config\'s diff_id names (regression: unverified content under a chain ID)', async () => {
    const { chains } = await chainIds(BAD_DIFF_ID, 'plain-pull-bad-diff-id');
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, BAD_DIFF_ID], 300_000);
    // containerd checks the diff_id of what it unpacks too: the pull fails either way
    expect(pull.code).not.toBe(0);
    expect(sn.log()).toMatch(/pulling a layer failed: containerd pulls it.*its tar's digest is sha256:[0-9a-f]{64}, the image config says sha256:1{64}/);
    const listed = await mustCtr(['snapshots', '--snapshotter', SNAPSHOTTER, 'ls']);
    expect(listed).not.toContain(chains[2]);
  }, 600_000);
});
