// eStargz and zstd:chunked images through our snapshotter with real containerd: debian-ml converted by
// stargz-snapshotter's own tool (`ctr-remote image convert --estargz` / `--zstdchunked`) is pulled with
// `ctr-remote image rpull`; its layers are committed remotely (nothing downloaded), and a container
// reads the unmodified layers lazily through a daemon (each chunk a gzip member or zstd frame, checked
// against its chunkDigest): expect.sh ALL OK.
import { mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ctrRemoteConvert } from '../../helpers/ctr-remote-convert.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  containerdUp, ctr, ctrRemote, E2E_DIR, killLeftovers, manifestLayers, REGISTRY, registryBlobBytes, registryLogOffset, SNAPSHOTTER,
  startSnapshotter, type SnapshotterProcess,
} from '../../snapshotter/env.js';

const SOURCE = `${REGISTRY}/debian-ml:latest`;
// the tags test/e2e/stargz/registry.test.ts converts too: each conversion happens once per registry
const ESGZ = `${REGISTRY}/debian-ml:stargz-e2e-esgz`;
const ZSTDCHUNKED = `${REGISTRY}/debian-ml:stargz-e2e-zstdchunked`;
const root = mkdtempSync(`${E2E_DIR}-stargz-`);
let sn: SnapshotterProcess;

beforeAll(async () => {
  await containerdUp();
  await ctrRemoteConvert(SOURCE, ESGZ, ['--estargz']);
  await ctrRemoteConvert(SOURCE, ZSTDCHUNKED, ['--zstdchunked']);
  sn = await startSnapshotter(root);
  for (const id of ['esgz', 'zstdchunked']) {
    await ctr(['task', 'kill', '-s', 'KILL', id]);
    await ctr(['task', 'rm', '-f', id]);
    await ctr(['container', 'rm', id]);
  }
  await ctr(['images', 'rm', '--sync', ESGZ, ZSTDCHUNKED]);
}, 900_000);

afterAll(async () => {
  await ctr(['images', 'rm', '--sync', ESGZ, ZSTDCHUNKED]);
  if (sn && sn.child.exitCode === null) {
    sn.child.kill('SIGTERM');
    await sn.exit;
  }
  await killLeftovers(root);
}, 120_000);

describe.each([['eStargz', ESGZ, 'esgz'], ['zstd:chunked', ZSTDCHUNKED, 'zstdchunked']])('%s through the snapshotter', (kind, image, id) => {
  it('pulls nothing, starts lazily and runs expect.sh ALL OK', async () => {
    const layers = await manifestLayers(image);
    expect(layers.every((l) => l.annotations?.['containerd.io/snapshot/stargz/toc.digest'])).toBe(true);
    const digests = layers.map((l) => l.digest);
    const layerBytes = layers.reduce((s, l) => s + l.size, 0);
    const from = registryLogOffset();
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, image]);
    expect(pull.code, pull.stderr).toBe(0);
    // whole-layer GETs would be full pulls; the TOCs are ranges (registryBlobBytes counts 200 and 206)
    const afterPull = registryBlobBytes(from, digests);
    expect(afterPull).toBeLessThan(layerBytes * 0.05);
    const r = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, image, id, '/etc/e2e/expect.sh'], 180_000);
    expect(r.stdout).toContain('ALL OK');
    expect(r.stdout).not.toMatch(/^FAIL/m);
    const after = registryBlobBytes(from, digests);
    console.log(`${kind} debian-ml: layers ${layerBytes} B; ${afterPull} B fetched by rpull, ${after} B after expect.sh`);
    expect(after).toBeLessThan(layerBytes);
    expect(sn.log()).toContain('remote layer committed');
    // the chain's bootstrap was built while rpull ran, and kept for the daemon in the cache directory
    expect(sn.log()).toMatch(new RegExp(`"eStargz chain bootstrap built while pulling","ref":"${image.replace(/[.:]/g, '\\$&')}"`));
    expect(readdirSync(join(root, 'cache')).some((n) => /^built-[0-9a-f]{64}\.boot$/.test(n))).toBe(true);
  }, 300_000);
});
