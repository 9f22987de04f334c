// A plain OCI image with a gzip index through our snapshotter with real containerd: debian-ml's
// unmodified gzip layers, copied digest for digest into a repository of their own and indexed by
// `nydusify-ts index --push`, are pulled with `ctr-remote image rpull`: the snapshotter finds the
// index through the image's referrers and commits each layer remotely (nothing downloaded), and
// containers read the layers lazily, each chunk decoded from a checkpoint of the gzip stream and
// checked against its sha256: `node -e 1` fetches a part of the layers, expect.sh says ALL OK, and
// the merged tree equals `umoci unpack`'s. With --no-gzip-index the same image is pulled whole.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync } from '../../helpers/cli.js';
import { ImageMounts } from '../../../src/snapshotter/image-mounts.js';
import {
  containerdUp, ctr, ctrRemote, E2E_DIR, manifestLayers, mustCtr, REGISTRY, registryBlobBytes, registryLogOffset, SNAPSHOTTER,
  startSnapshotter, stopAndClean, type SnapshotterProcess, umociDiff,
} from '../../snapshotter/env.js';

const IMAGE = `${REGISTRY}/gzip-index-snap/debian-ml:latest`;
const root = mkdtempSync(`${E2E_DIR}-gzip-index-`);
let sn: SnapshotterProcess;

beforeAll(async () => {
  await containerdUp();
  execFileSync('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-tls-verify=false', '--src-tls-verify=false', `docker://${REGISTRY}/debian-ml:latest`, `docker://${IMAGE}`]);
  await cliAsync(['index', '--source', IMAGE, '--plain-http', '--push']);
  sn = await startSnapshotter(root);
  for (const id of ['gzidx-node', 'gzidx-expect', 'gzidx-hold', 'gzidx-pulled']) {
    await ctr(['task', 'kill', '-s', 'KILL', id]);
    await ctr(['task', 'rm', '-f', id]);
    await ctr(['container', 'rm', id]);
  }
  await ctr(['images', 'rm', '--sync', IMAGE]);
}, 600_000);

afterAll(async () => {
  await ctr(['images', 'rm', '--sync', IMAGE]);
  await stopAndClean(sn, root);
}, 120_000);

describe('a plain OCI image with a gzip index through the snapshotter', () => {
  it('is committed remotely at rpull and read lazily: node -e 1 fetches a part of the layers, expect.sh ALL OK, the tree is umoci\'s', async () => {
    const layers = await manifestLayers(IMAGE);
    const digests = layers.map((l) => l.digest);
    const layerBytes = layers.reduce((n, l) => n + l.size, 0);
    const from = registryLogOffset();
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, IMAGE], 300_000);
    expect(pull.code, pull.stderr).toBe(0);
    const committed = sn.log().split('\n').filter((l) => l.includes('"msg":"remote layer committed"') && l.includes('"role":"indexed"'));
    expect(committed).toHaveLength(layers.length);
    expect(sn.log()).toContain('"msg":"plain image has a gzip index: served lazily"');

    const node = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, IMAGE, 'gzidx-node', '/usr/local/bin/node', '-e', 'console.log(6 * 7)'], 180_000);
    expect(node.stdout, `ctr run exited ${node.code}: ${node.stderr}`).toContain('42');
    const fetched = registryBlobBytes(from, digests);
    console.log(`node -e 1 through the gzip index: ${(fetched / 1e6).toFixed(1)} of ${(layerBytes / 1e6).toFixed(1)} MB of layers fetched (${((100 * fetched) / layerBytes).toFixed(1)} %)`);
    expect(fetched).toBeGreaterThan(0);
    expect(fetched).toBeLessThan(0.5 * layerBytes);

    const r = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, IMAGE, 'gzidx-expect', '/etc/e2e/expect.sh'], 180_000);
    expect(r.stdout, `ctr run exited ${r.code}: ${r.stderr}`).toContain('ALL OK');
    expect(r.stdout).not.toMatch(/^FAIL/m);

    // the image's mount is the tree its containers see below their own layer: held by a running one
    // (a view no lease holds is containerd's garbage at once, and its removal lets the mount go)
    const hold = await ctr(['run', '-d', '--snapshotter', SNAPSHOTTER, IMAGE, 'gzidx-hold', 'sleep', '600'], 180_000);
    expect(hold.code, hold.stderr).toBe(0);
    try {
      const image = join(root, 'mnt', ImageMounts.nameOf({ ref: IMAGE, digest: layers.at(-1)!.digest, role: 'indexed' }));
      expect(await umociDiff(root, image)).toEqual([]);
    } finally {
      await ctr(['task', 'kill', '-s', 'KILL', 'gzidx-hold']);
      await ctr(['task', 'rm', '-f', 'gzidx-hold']);
      await ctr(['container', 'rm', 'gzidx-hold']);
    }
  }, 600_000);

  it('with --no-gzip-index the image is pulled whole instead', async () => {
      await mustCtr(['images', 'rm', '--sync', IMAGE]);
    sn.child.kill('SIGTERM');
    await sn.exit;
    sn = await startSnapshotter(root, ['--no-gzip-index']);
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, IMAGE], 300_000);
    expect(pull.code, pull.stderr).toBe(0);
    expect(sn.log()).not.toContain('"role":"indexed"');
    expect(sn.log().split('\n').filter((l) => l.includes('"msg":"layer pulled"'))).toHaveLength(3);
    const r = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, IMAGE, 'gzidx-pulled', '/etc/e2e/expect.sh'], 180_000);
    expect(r.stdout, `ctr run exited ${r.code}: ${r.stderr}`).toContain('ALL OK');
  }, 600_000);
});
