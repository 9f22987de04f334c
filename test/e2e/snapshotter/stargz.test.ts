// eStargz and zstd:chunked images through our snapshotter with real containerd: debian-ml converted by
// stargz-snapshotter's own tool (`ctr-remote image convert --estargz` / `--zstdchunked`) is pulled with
// `ctr-remote image rpull`; its layers are committed remotely (nothing downloaded), and a container
// reads the unmodified layers lazily through a daemon (each chunk a gzip member or zstd frame, checked
// against its chunkDigest): expect.sh ALL OK. So does an image mixing both kinds: debian-ml's lower
// two layers as ctr-remote's eStargz blobs and its top layer as it is, converted with
// `convert --keep-stargz` (two eStargz layers kept, one converted to Nydus, one bootstrap over them).
// And an eStargz image whose top layer's TOC is not the one its annotation names: that layer is
// refused at rpull and pulled as an ordinary layer, the two below stay lazy, expect.sh ALL OK.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ctrRemoteConvert } from '../../helpers/ctr-remote-convert.js';
import { cliAsync } from '../../helpers/cli.js';
import { waitFor } from '../../helpers/wait-for.js';
import { ImageMounts } from '../../../src/snapshotter/image-mounts.js';
import { clientForReferences } from '../../../src/registry/client.js';
import { readBlob } from '../../../src/registry/image-store.js';
import { openImageStore } from '../../../src/registry/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  containerdUp, ctr, ctrRemote, E2E_DIR, manifestLayers, REGISTRY, registryBlobBytes, registryLogOffset, SNAPSHOTTER,
  startSnapshotter, stopAndClean, type SnapshotterProcess,
} from '../../snapshotter/env.js';

const SOURCE = `${REGISTRY}/debian-ml:latest`;
// the tags test/e2e/stargz/registry.test.ts converts too: each conversion happens once per registry
const ESGZ = `${REGISTRY}/debian-ml:stargz-e2e-esgz`;
const ZSTDCHUNKED = `${REGISTRY}/debian-ml:stargz-e2e-zstdchunked`;
const MIXED_SOURCE = `${REGISTRY}/debian-ml:stargz-e2e-mixed-source`;
const MIXED = `${REGISTRY}/debian-ml:stargz-e2e-mixed`;
const BAD_TOP = `${REGISTRY}/debian-ml:stargz-e2e-bad-top-toc`;
const root = mkdtempSync(`${E2E_DIR}-stargz-`);
let sn: SnapshotterProcess;

beforeAll(async () => {
  await containerdUp();
  await ctrRemoteConvert(SOURCE, ESGZ, ['--estargz']);
  await ctrRemoteConvert(SOURCE, ZSTDCHUNKED, ['--zstdchunked']);
  await pushMixedSource();
  await pushBadTopToc();
  await cliAsync(['convert', '--keep-stargz', '--plain-http', '--source', MIXED_SOURCE, '--target', MIXED]);
  sn = await startSnapshotter(root);
  for (const id of ['esgz', 'zstdchunked', 'mixed', 'bad-top']) {
    await ctr(['task', 'kill', '-s', 'KILL', id]);
    await ctr(['task', 'rm', '-f', id]);
    await ctr(['container', 'rm', id]);
  }
  await ctr(['images', 'rm', '--sync', ESGZ, ZSTDCHUNKED, MIXED, BAD_TOP]);
}, 900_000);

/** The snapshotter's mount name of `ref`'s chain up to `digest`. */
const imageName = (ref: string, digest: string): string => ImageMounts.nameOf({ ref, digest, role: 'stargz' });

/** The eStargz debian-ml with its top layer's TOC digest annotation changed (the manifest only). */
async function pushBadTopToc(): Promise<void> {
  const { store } = await openImageStore(BAD_TOP, clientForReferences([[BAD_TOP, false]], true));
  const manifest = (await store.getManifest('stargz-e2e-esgz')).parsed as { layers: { annotations?: Record<string, string> }[] };
  const top = manifest.layers.at(-1)!;
  top.annotations = { ...top.annotations, 'containerd.io/snapshot/stargz/toc.digest': `sha256:${'0'.repeat(64)}` };
  await store.putManifest(Buffer.from(JSON.stringify(manifest)), 'application/vnd.oci.image.manifest.v1+json', 'stargz-e2e-bad-top-toc');
}

/** debian-ml with its lower two layers taken from the eStargz image and its top layer as it is (same repository: no blob moves). */
async function pushMixedSource(): Promise<void> {
  const { store } = await openImageStore(MIXED_SOURCE, clientForReferences([[MIXED_SOURCE, false]], true));
  const image = async (tag: string) => {
    const manifest = (await store.getManifest(tag)).parsed as { config: { digest: string; size: number; mediaType: string }; layers: object[] };
    const config = JSON.parse((await readBlob(store, manifest.config, 1 << 20)).toString('utf8')) as { rootfs: { diff_ids: string[] } };
    return { manifest, config };
  };
  const esgz = await image('stargz-e2e-esgz');
  const plain = await image('latest');
  const config = Buffer.from(JSON.stringify({ ...plain.config, history: undefined, rootfs: { type: 'layers', diff_ids: [...esgz.config.rootfs.diff_ids.slice(0, 2), plain.config.rootfs.diff_ids[2]] } }));
  const configDescriptor = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${createHash('sha256').update(config).digest('hex')}`, size: config.length };
  await store.putBlob(configDescriptor, config);
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDescriptor, layers: [...esgz.manifest.layers.slice(0, 2), plain.manifest.layers[2]] };
  await store.putManifest(Buffer.from(JSON.stringify(manifest)), manifest.mediaType, 'stargz-e2e-mixed-source');
}

afterAll(async () => {
  await ctr(['images', 'rm', '--sync', ESGZ, ZSTDCHUNKED, MIXED, BAD_TOP]);
  await stopAndClean(sn, root);
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
    // the chain a container reads is mounted while the pull ends, before any container asks for it
    await waitFor(() => sn.log().includes(`"msg":"image daemon started","image":"${imageName(image, digests.at(-1)!)}"`), 'the image mounted at pull');
    const afterPull = registryBlobBytes(from, digests);
    expect(afterPull).toBeLessThan(layerBytes * 0.05);
    const r = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, image, id, '/etc/e2e/expect.sh'], 180_000);
    expect(r.stdout, `ctr run exited ${r.code}: ${r.stderr}`).toContain('ALL OK');
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

describe('an image mixing kept eStargz layers and a Nydus layer, through the snapshotter', () => {
  it('is one lazy mount: expect.sh ALL OK, and the eStargz layers are read by range, never whole', async () => {
    const layers = await manifestLayers(MIXED);
    const kept = layers.filter((l) => l.annotations?.['containerd.io/snapshot/stargz/toc.digest']);
    expect(kept).toHaveLength(2);
    expect(layers.filter((l) => l.annotations?.['containerd.io/snapshot/nydus-blob'] === 'true')).toHaveLength(1);
    expect(layers.at(-1)!.annotations?.['containerd.io/snapshot/nydus-bootstrap']).toBe('true');
    const from = registryLogOffset();
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, MIXED]);
    expect(pull.code, pull.stderr).toBe(0);
    const r = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, MIXED, 'mixed', '/etc/e2e/expect.sh'], 180_000);
    expect(r.stdout).toContain('ALL OK');
    expect(r.stdout).not.toMatch(/^FAIL/m);
    const keptBytes = kept.reduce((n, l) => n + l.size, 0);
    expect(registryBlobBytes(from, kept.map((l) => l.digest))).toBeLessThan(keptBytes);
  }, 300_000);
});

describe('an eStargz image whose top layer cannot be served lazily, through the snapshotter', () => {
  it('pulls that layer as an ordinary one at rpull, keeps the others lazy, and runs expect.sh ALL OK', async () => {
    // the eStargz image's layers have the same chain ids: while its snapshots exist containerd prepares none
    await ctr(['images', 'rm', '--sync', ESGZ, MIXED]);
    const layers = await manifestLayers(BAD_TOP);
    const from = registryLogOffset();
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, BAD_TOP]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(sn.log()).toMatch(/eStargz layer cannot be served lazily: it is pulled instead.*TOC/);
    const top = layers.at(-1)!;
    // the refused layer was downloaded whole by containerd; the lower ones only had their TOCs read
    expect(registryBlobBytes(from, [top.digest])).toBeGreaterThanOrEqual(top.size);
    const lower = layers.slice(0, -1);
    expect(registryBlobBytes(from, lower.map((l) => l.digest))).toBeLessThan(lower.reduce((n, l) => n + l.size, 0) * 0.05);
    const r = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, BAD_TOP, 'bad-top', '/etc/e2e/expect.sh'], 180_000);
    expect(r.stdout).toContain('ALL OK');
    expect(r.stdout).not.toMatch(/^FAIL/m);
  }, 300_000);
});
