// eStargz images through our snapshotter with real containerd: debian-ml converted by stargz-snapshotter's
// own tool (`ctr-remote image convert --estargz`) is pulled with `ctr-remote image rpull`; its layers are
// committed remotely (nothing downloaded), and a container reads the unmodified eStargz layers lazily
// through a daemon (each chunk a gzip member, checked against its chunkDigest): expect.sh ALL OK.
import { mkdtempSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  containerdUp, ctr, ctrRemote, E2E_DIR, killLeftovers, manifestLayers, mustCtr, REGISTRY, registryBlobBytes, registryLogOffset, SNAPSHOTTER,
  startSnapshotter, type SnapshotterProcess,
} from '../../snapshotter/env.js';

const SOURCE = `${REGISTRY}/debian-ml:latest`;
const ESGZ = `${REGISTRY}/debian-ml:esgz-e2e`;
const root = mkdtempSync(`${E2E_DIR}-stargz-`);
let sn: SnapshotterProcess;

const hasTag = async (ref: string): Promise<boolean> => (await manifestLayers(ref).catch(() => [])).length > 0;

beforeAll(async () => {
  await containerdUp();
  if (!(await hasTag(ESGZ))) {
    // stargz-snapshotter's converter, once per registry (~50 s)
    await mustCtr(['images', 'pull', '--plain-http', SOURCE], 180_000);
    const convert = await ctrRemote(['image', 'convert', '--estargz', '--oci', SOURCE, ESGZ], 300_000);
    expect(convert.code, convert.stderr).toBe(0);
    await mustCtr(['images', 'push', '--plain-http', ESGZ], 180_000);
    await ctr(['images', 'rm', '--sync', SOURCE, ESGZ]);
  }
  sn = await startSnapshotter(root);
  await ctr(['task', 'kill', '-s', 'KILL', 'esgz']);
  await ctr(['task', 'rm', '-f', 'esgz']);
  await ctr(['container', 'rm', 'esgz']);
  await ctr(['images', 'rm', '--sync', ESGZ]);
}, 600_000);

afterAll(async () => {
  await ctr(['images', 'rm', '--sync', ESGZ]);
  if (sn && sn.child.exitCode === null) {
    sn.child.kill('SIGTERM');
    await sn.exit;
  }
  await killLeftovers(root);
}, 120_000);

describe('eStargz through the snapshotter', () => {
  it('pulls nothing, starts lazily and runs expect.sh ALL OK', async () => {
    const layers = await manifestLayers(ESGZ);
    expect(layers.every((l) => l.annotations?.['containerd.io/snapshot/stargz/toc.digest'])).toBe(true);
    const digests = layers.map((l) => l.digest);
    const layerBytes = layers.reduce((s, l) => s + l.size, 0);
    const from = registryLogOffset();
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, ESGZ]);
    expect(pull.code, pull.stderr).toBe(0);
    // whole-layer GETs would be full pulls; the TOCs are ranges (registryBlobBytes counts 200 and 206)
    const afterPull = registryBlobBytes(from, digests);
    expect(afterPull).toBeLessThan(layerBytes * 0.05);
    const r = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, ESGZ, 'esgz', '/etc/e2e/expect.sh'], 180_000);
    expect(r.stdout).toContain('ALL OK');
    expect(r.stdout).not.toMatch(/^FAIL/m);
    const after = registryBlobBytes(from, digests);
    console.log(`eStargz debian-ml: layers ${layerBytes} B; ${afterPull} B fetched by rpull, ${after} B after expect.sh`);
    expect(after).toBeLessThan(layerBytes);
    expect(sn.log()).toContain('remote layer committed');
  }, 300_000);
});
