// Regression: a Cleanup (containerd's garbage collection runs when it will, here after another
// container went) while an eStargz image is being pulled, once its daemon had started with the pull's
// first layer but before the layers above were committed, removed those layers' cache files (the
// daemon makes every blob's files at mount): the container's first reads of them failed with EIO
// (seen in CI on the zstd:chunked debian-ml). The snapshotter is driven over its gRPC socket as
// containerd's unpacker drives it, so the Cleanup falls in that window every time; needs root,
// /dev/fuse, the e2e registry and the eStargz debian-ml converted by ctr-remote.
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageMounts } from '../../../src/snapshotter/image-mounts.js';
import { Label } from '../../../src/snapshotter/labels.js';
import { ctrRemoteConvert } from '../../helpers/ctr-remote-convert.js';
import { runAsync } from '../../helpers/run.js';
import { diffManifests, roundedMtimes, treeManifest } from '../../helpers/trees.js';
import { waitFor } from '../../helpers/wait-for.js';
import { E2E_DIR, killLeftovers, manifestLayers, REGISTRY, type SnapshotterProcess, spawnSnapshotter } from '../../snapshotter/env.js';
import { snapshotsClient, type SnapshotsClient } from '../../snapshotter/grpc-client.js';

const SOURCE = `${REGISTRY}/debian-ml:latest`;
// the tag test/e2e/snapshotter/stargz.test.ts converts too: the conversion happens once per registry
const ESGZ = `${REGISTRY}/debian-ml:stargz-e2e-esgz`;
const work = mkdtempSync(`${E2E_DIR}-stargz-cleanup-`);
const p = (...parts: string[]) => join(work, ...parts);
const root = p('root');
let sn: SnapshotterProcess | undefined;
let client: SnapshotsClient | undefined;
const mounted: string[] = [];

beforeAll(async () => {
  await Promise.all([
    ctrRemoteConvert(SOURCE, ESGZ, ['--estargz']),
    runAsync('umoci', ['unpack', '--image', `${join(process.env.E2E_DIR ?? '/tmp/e2e', 'images', 'oci')}:debian-ml`, p('bundle')]),
  ]);
  sn = await spawnSnapshotter(root, ['--address', p('snapshotter.sock'), '--root', root, '--plain-http']);
  client = snapshotsClient(p('snapshotter.sock'));
}, 600_000);

afterAll(async () => {
  for (const m of mounted) await runAsync('umount', [m]).catch(() => undefined);
  client?.close();
  sn?.child.kill('SIGTERM');
  await sn?.exit;
  await killLeftovers(root);
}, 60_000);

describe('a Cleanup while an eStargz image is being pulled', () => {
  it('regression: keeps the cache files of the layers not yet committed under the daemon mounted at pull', async () => {
    const layers = await manifestLayers(ESGZ);
    expect(layers).toHaveLength(3);
    const prepare = async (i: number): Promise<void> => {
      const l = layers[i]!;
      const labels = { [Label.TARGET]: `esgz-${i}`, [Label.STARGZ_REF]: ESGZ, [Label.STARGZ_DIGEST]: l.digest, [Label.STARGZ_TOC_DIGEST]: l.annotations![Label.STARGZ_TOC_DIGEST]! };
      await expect(client!.call('Prepare', { key: `extract-${i} esgz-${i}`, parent: i === 0 ? '' : `esgz-${i - 1}`, labels })).rejects.toMatchObject({ code: grpc.status.ALREADY_EXISTS });
    };
    const cacheFiles = () => readdirSync(join(root, 'cache')).filter((n) => n.endsWith('.blob.data'));
    const upper = layers.slice(1).map((l) => `${l.digest.slice('sha256:'.length)}.blob.data`);

    // the first layer's Prepare starts the daemon of the chain a container mounts (its top layer's)
    await prepare(0);
    const top = ImageMounts.nameOf({ ref: ESGZ, digest: layers[2]!.digest, role: 'stargz' });
    await waitFor(() => sn!.log().includes(`"msg":"image daemon started","image":"${top}"`), 'the image mounted at pull', 30_000, 50);
    expect(cacheFiles()).toEqual(expect.arrayContaining(upper));
    await client!.call('Cleanup', {});
    expect(cacheFiles()).toEqual(expect.arrayContaining(upper));

    // the pull ends; a container's snapshot reads every layer through the daemon
    await prepare(1);
    await prepare(2);
    const { mounts } = await client!.call<{ mounts: { type: string; options: string[] }[] }>('Prepare', { key: 'ctr', parent: 'esgz-2', labels: {} });
    expect(mounts[0]!.type).toBe('overlay');
    const at = p('rootfs');
    mkdirSync(at);
    await runAsync('mount', ['-t', 'overlay', 'overlay', '-o', mounts[0]!.options.join(','), at]);
    mounted.push(at);
    for (const dir of ['etc', 'usr/lib/x86_64-linux-gnu']) {
      const want = p('bundle', 'rootfs', dir);
      expect(diffManifests(roundedMtimes(want, treeManifest(want)), treeManifest(join(at, dir)))).toEqual([]);
    }
    expect(sn!.log()).not.toContain('"level":"error"');
  }, 300_000);
});
