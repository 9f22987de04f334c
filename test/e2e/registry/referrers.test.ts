// OCI referrers against the real registry: distribution 2.8 has no referrers API (its route is a 404),
// so referrers are pushed to and found through the referrers tag schema, `sha256-<hex>` of the subject.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ImageStore } from '../../../src/registry/image-store.js';
import { MediaType, type Descriptor, type ImageManifest } from '../../../src/registry/media-types.js';
import { findReferrers, pushReferrer, referrersTag } from '../../../src/registry/referrers.js';
import { logLines, logSize, makeImage, PLAIN, pushImage, repo, sha256, useRegistries } from '../../registry/registry-fixtures.js';

const ctx = useRegistries();

const EMPTY: Descriptor = { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 };
const SBOM = 'application/vnd.example.sbom.v1+json';
const SIGNATURE = 'application/vnd.example.signature.v1';

/** Pushes an artifact of `artifactType` naming `subject`: the empty config, one layer, the manifest (through pushReferrer). */
async function pushArtifact(store: ImageStore, subject: Descriptor, artifactType: string): Promise<{ digest: string; size: number }> {
  const payload = randomBytes(300);
  const layer: Descriptor = { mediaType: artifactType, digest: sha256(payload), size: payload.length };
  await store.putBlob(EMPTY, Buffer.from('{}'));
  await store.putBlob(layer, payload);
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType, config: EMPTY, layers: [layer], subject };
  const bytes = Buffer.from(JSON.stringify(manifest));
  expect(await pushReferrer(store, bytes, MediaType.ociManifest)).toBe(sha256(bytes));
  return { digest: sha256(bytes), size: bytes.length };
}

describe('referrers on distribution 2.8 (the tag schema)', () => {
  it('pushes referrers of an image into its referrers tag index and finds them there', async () => {
    const name = repo('referrers');
    const store = ctx.client().repository(`${PLAIN}/${name}`);
    const image = makeImage(4096);
    await pushImage(store, image, 'v1');
    const subject: Descriptor = { mediaType: MediaType.ociManifest, digest: image.manifestDigest, size: image.manifest.length };
    const tag = referrersTag(subject.digest);

    // the registry has no referrers route: the store says so, and nothing is found before a push
    expect(await store.getReferrers(subject.digest)).toBeUndefined();
    expect(await findReferrers(store, subject.digest)).toEqual([]);

    const since = logSize('registry');
    const sbom = await pushArtifact(store, subject, SBOM);
    // distribution 2.8 does not answer with OCI-Subject, so the tag index was written
    expect(logLines('registry', since, `"PUT /v2/${name}/manifests/${tag}`)).toHaveLength(1);
    const first = await store.getManifest(tag);
    expect(first).toMatchObject({ kind: 'index', mediaType: MediaType.ociIndex });
    expect(first.kind === 'index' && first.parsed.manifests).toEqual([{ mediaType: MediaType.ociManifest, digest: sbom.digest, size: sbom.size, artifactType: SBOM }]);

    const found = await findReferrers(store, subject.digest);
    expect(found).toEqual([{ mediaType: MediaType.ociManifest, digest: sbom.digest, size: sbom.size, artifactType: SBOM }]);
    const artifact = await store.getManifest(found[0]!.digest);
    expect(artifact.kind === 'manifest' && artifact.parsed.subject).toEqual(subject);

    // a second referrer joins the same index; the first stays, filters pick either
    const signature = await pushArtifact(store, subject, SIGNATURE);
    expect((await findReferrers(store, subject.digest)).map((d) => d.digest)).toEqual([sbom.digest, signature.digest]);
    expect((await findReferrers(store, subject.digest, SIGNATURE)).map((d) => d.digest)).toEqual([signature.digest]);
    expect((await findReferrers(store, subject.digest, SBOM)).map((d) => d.digest)).toEqual([sbom.digest]);

    // pushing a referrer again changes nothing; the image's own tag is untouched
    const indexDigest = (await store.getManifest(tag)).digest;
    const stored = await store.getManifest(signature.digest);
    const again = logSize('registry');
    expect(await pushReferrer(store, stored.bytes, MediaType.ociManifest)).toBe(signature.digest);
    expect(logLines('registry', again, `"PUT /v2/${name}/manifests/${tag}`)).toEqual([]);
    expect((await store.getManifest(tag)).digest).toBe(indexDigest);
    expect((await store.getManifest('v1')).digest).toBe(image.manifestDigest);
  });
});
