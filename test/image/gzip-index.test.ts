// The gzip index of a plain image in an OCI layout (no registry): built and pushed as a referrer,
// found again, merged into the image's bootstrap; and the indexes that must not be used: one that
// does not cover every layer is skipped, one whose layer bootstrap reads another layer is refused.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { buildGzipIndex, findGzipIndex, GZIP_INDEX_ARTIFACT_TYPE, gzipIndexImageBootstrap, INDEXED_LAYER_ANNOTATION } from '../../src/image/gzip-index.js';
import type { ImageManifest } from '../../src/registry/media-types.js';
import { OciLayoutStore } from '../../src/registry/oci-layout.js';
import { pushReferrer } from '../../src/registry/referrers.js';
import { tarBytes } from '../helpers/tar-bytes.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-gzip-index-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** A two-layer plain gzip image tagged `latest` in a new layout. */
async function plainImage(dir: string): Promise<{ store: OciLayoutStore; layers: Buffer[] }> {
  const store = await OciLayoutStore.create(dir);
  const layers = [
    gzipSync(await tarBytes(async (t) => t.file({ path: 'a.txt', size: 5 }, Buffer.from('lower')))),
    gzipSync(await tarBytes(async (t) => t.file({ path: 'b.txt', size: 5 }, Buffer.from('upper')))),
  ];
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length };
  await store.putBlob(configDesc, config);
  for (const l of layers) await store.putBlob({ digest: sha(l), size: l.length }, l);
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers: layers.map((l) => ({ mediaType: GZIP, digest: sha(l), size: l.length })) };
  await store.putManifest(Buffer.from(JSON.stringify(manifest)), manifest.mediaType, 'latest');
  return { store, layers };
}

/** Pushes `index` as another referrer of the image (its blobs are the built index's). */
async function pushIndex(store: OciLayoutStore, index: ImageManifest): Promise<string> {
  return pushReferrer(store, Buffer.from(JSON.stringify(index)), 'application/vnd.oci.image.manifest.v1+json');
}

describe('gzip index of a plain image', () => {
  it('is pushed as a referrer, found again, and serves every layer merged', async () => {
    const { store } = await plainImage(join(work, 'a'));
    const image = await store.getManifest('latest');
    const built = await buildGzipIndex(store, image, { chunkSize: 4096, push: true });
    expect(built.layers).toHaveLength(2);
    const found = await findGzipIndex(store, image.digest, image.kind === 'manifest' ? image.parsed.layers : []);
    expect(found?.digest).toBe(built.digest);
    const { rafs } = await gzipIndexImageBootstrap(store, (image as { parsed: ImageManifest }).parsed, found!);
    const names = [...rafs.walk()].map((e) => e.path);
    expect(names).toEqual(expect.arrayContaining(['/a.txt', '/b.txt']));
  });

  it('skips an index that leaves a layer out, and refuses one whose bootstrap reads another layer', async () => {
    const { store } = await plainImage(join(work, 'b'));
    const image = await store.getManifest('latest');
    const parsed = (image as { parsed: ImageManifest }).parsed;
    const good = JSON.parse((await buildGzipIndex(store, image, { chunkSize: 4096, push: true })).manifest.toString()) as ImageManifest;
    // newer, but without the upper layer's bootstrap: not used, the good one is
    await pushIndex(store, { ...good, layers: good.layers.slice(0, 1), annotations: { newer: 'partial' } });
    expect((await findGzipIndex(store, image.digest, parsed.layers))?.parsed.annotations).toBeUndefined();
    // newest: the lower layer's bootstrap named as the upper's (it reads the lower layer's blob)
    const swapped = { ...good, annotations: { newer: 'swapped' }, layers: [good.layers[0]!, { ...good.layers[0]!, annotations: { [INDEXED_LAYER_ANNOTATION]: parsed.layers[1]!.digest } }] };
    await pushIndex(store, swapped);
    const found = await findGzipIndex(store, image.digest, parsed.layers);
    expect(found?.parsed.annotations).toEqual({ newer: 'swapped' });
    expect(found?.parsed.artifactType).toBe(GZIP_INDEX_ARTIFACT_TYPE);
    await expect(gzipIndexImageBootstrap(store, parsed, found!)).rejects.toThrow(/not that layer/);
  });

  it('refuses an image with a layer that is not gzip', async () => {
    const { store } = await plainImage(join(work, 'c'));
    const image = await store.getManifest('latest');
    const parsed = (image as { parsed: ImageManifest }).parsed;
    const zstd = { ...image, parsed: { ...parsed, layers: [{ ...parsed.layers[0]!, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }] } };
    await expect(buildGzipIndex(store, zstd as typeof image, { chunkSize: 4096 })).rejects.toThrow(/gzip layers only/);
  });
});
