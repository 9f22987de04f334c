// OciLayoutStore: the same ImageStore interface as a registry repository, read and written, verified both ways.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DigestMismatchError } from '../../../src/registry/errors.js';
import { resolveImage } from '../../../src/registry/image-store.js';
import { openImageStore } from '../../../src/registry/open-image-store.js';
import { MediaType, type ImageIndex } from '../../../src/registry/media-types.js';
import { OciLayoutStore } from '../../../src/registry/oci-layout.js';
import { makeImage, PLAIN, pushImage, readAll, repo, sha256, useRegistries } from '../../registry/registry-fixtures.js';

const ctx = useRegistries();

describe('OCI image layout', () => {
  it('copies an image from the registry into a layout and back, under the same interface', async () => {
    const c = ctx.client();
    const source = c.repository(`${PLAIN}/${repo('layout-src')}`);
    const image = makeImage(80_000);
    await pushImage(source, image, 'v1');

    const dir = join(ctx.work, 'layout');
    const { store: layout, reference } = await openImageStore(`oci:${dir}:copied`, c, { create: true });
    expect(reference).toBe('copied');
    const { manifest } = await resolveImage(source, 'v1');
    for (const blob of [manifest.parsed.config, ...manifest.parsed.layers]) {
      expect(await layout.putBlob(blob, () => source.getBlob(blob.digest), { mountFrom: source })).toBe('uploaded');
    }
    expect(await layout.putManifest(manifest.bytes, manifest.mediaType, reference)).toBe(image.manifestDigest);
    expect(await layout.putManifest(manifest.bytes, manifest.mediaType, reference)).toBe(image.manifestDigest);

    const reopened = await OciLayoutStore.open(dir);
    expect(await reopened.tags()).toEqual(['copied']);
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as ImageIndex;
    expect(index.manifests).toEqual([{ mediaType: MediaType.ociManifest, digest: image.manifestDigest, size: image.manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'copied' } }]);
    const fromLayout = await reopened.getManifest('copied');
    expect(fromLayout).toMatchObject({ kind: 'manifest', mediaType: MediaType.ociManifest, digest: image.manifestDigest });
    expect((await reopened.getManifest()).digest).toBe(image.manifestDigest);
    expect(sha256(await readAll(await reopened.getBlob(sha256(image.layer))))).toBe(sha256(image.layer));
    expect(await reopened.getBlobRange(sha256(image.layer), 70_000, 10_000)).toEqual(image.layer.subarray(70_000));
    await expect(reopened.getManifest('missing')).rejects.toThrow('no image tagged "missing" (tags: copied)');

    const target = c.repository(`${PLAIN}/${repo('layout-dst')}`);
    const { manifest: again } = await resolveImage(reopened, 'copied');
    for (const blob of [again.parsed.config, ...again.parsed.layers]) {
      expect(await target.putBlob(blob, () => reopened.getBlob(blob.digest), { mountFrom: reopened })).toBe('uploaded');
    }
    expect(await target.putManifest(again.bytes, again.mediaType, 'v1')).toBe(image.manifestDigest);
    expect(sha256(await readAll(await target.getBlob(sha256(image.layer))))).toBe(sha256(image.layer));
  });

  it('verifies what it writes and what it reads', async () => {
    const layout = await OciLayoutStore.create(join(ctx.work, 'layout-verify'));
    const blob = randomBytes(1000);
    const digest = sha256(blob);
    await expect(layout.putBlob({ digest, size: 1000 }, randomBytes(1000))).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await layout.hasBlob(digest)).toBe(false);
    await expect(layout.putBlob({ digest, size: 999 }, blob)).rejects.toThrow(/has 1000 bytes, the descriptor says 999/);
    expect(await layout.putBlob({ digest, size: 1000 }, blob)).toBe('uploaded');
    expect(await layout.putBlob({ digest, size: 1000 }, blob)).toBe('exists');
    writeFileSync(layout.blobPath(digest), randomBytes(1000));
    await expect(readAll(await layout.getBlob(digest))).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(layout.getBlob(sha256(randomBytes(4)))).rejects.toMatchObject({ status: 404, code: 'BLOB_UNKNOWN' });
    await expect(OciLayoutStore.open(join(ctx.work, 'nowhere'))).rejects.toThrow(/not an OCI image layout/);
  });
});
