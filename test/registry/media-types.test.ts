import { describe, expect, it } from 'vitest';
import { computeDigest, DigestVerifier, validateDigest, verifyDigest } from '../../src/registry/digest.js';
import { DigestMismatchError } from '../../src/registry/errors.js';
import { bareMediaType, MANIFEST_ACCEPT, manifestKindOf, MediaType, parseManifest, type ImageIndex } from '../../src/registry/media-types.js';
import { listPlatforms, parsePlatform, platformMatches, selectPlatform } from '../../src/registry/platform.js';

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const manifestBody = { schemaVersion: 2, config: { mediaType: MediaType.ociConfig, digest: d(1), size: 10 }, layers: [{ mediaType: MediaType.ociLayerGzip, digest: d(2), size: 20 }] };

describe('media types', () => {
  it('knows which types are manifests and which are indexes', () => {
    expect(manifestKindOf(MediaType.ociManifest)).toBe('manifest');
    expect(manifestKindOf(MediaType.dockerManifest)).toBe('manifest');
    expect(manifestKindOf(MediaType.ociIndex)).toBe('index');
    expect(manifestKindOf(`${MediaType.dockerManifestList}; charset=utf-8`)).toBe('index');
    expect(manifestKindOf(MediaType.ociLayerGzip)).toBeUndefined();
    expect(manifestKindOf('application/json')).toBeUndefined();
    expect(bareMediaType(' Application/Vnd.OCI.Image.Index.v1+json ; x=y')).toBe(MediaType.ociIndex);
    for (const type of [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList]) expect(MANIFEST_ACCEPT).toContain(type);
  });

  it('takes the body mediaType first, then a hint, then the shape (umoci writes no mediaType)', () => {
    expect(parseManifest(json({ ...manifestBody, mediaType: MediaType.dockerManifest }), MediaType.ociManifest).mediaType).toBe(MediaType.dockerManifest);
    expect(parseManifest(json(manifestBody), `${MediaType.dockerManifest}; charset=utf-8`).mediaType).toBe(MediaType.dockerManifest);
    expect(parseManifest(json(manifestBody), 'application/json')).toMatchObject({ kind: 'manifest', mediaType: MediaType.ociManifest });
    expect(parseManifest(json(manifestBody))).toMatchObject({ kind: 'manifest', mediaType: MediaType.ociManifest });
    expect(parseManifest(json({ schemaVersion: 2, manifests: [] }))).toMatchObject({ kind: 'index', mediaType: MediaType.ociIndex });
    expect(parseManifest(json({ schemaVersion: 2, mediaType: MediaType.dockerManifestList, manifests: [] })).kind).toBe('index');
  });

  it.each([
    ['not json', Buffer.from('{'), /not JSON/],
    ['schema1', json({ schemaVersion: 1, fsLayers: [] }), /schema1/],
    ['no schemaVersion', json({ layers: [] }), /schemaVersion/],
    ['neither shape', json({ schemaVersion: 2 }), /neither a manifest/],
    ['type and shape disagree', json({ schemaVersion: 2, mediaType: MediaType.ociIndex, layers: [] }), /without a manifests array/],
    ['unknown type', json({ ...manifestBody, mediaType: 'application/vnd.example+json' }), /unsupported manifest media type/],
    ['bad descriptor digest', json({ ...manifestBody, layers: [{ mediaType: 'x', digest: 'sha256:zz', size: 1 }] }), /invalid digest/],
    ['negative size', json({ ...manifestBody, config: { mediaType: 'x', digest: d(1), size: -1 } }), /size must be/],
  ])('rejects %s', (_name, bytes, message) => {
    expect(() => parseManifest(bytes)).toThrow(message);
  });
});

describe('platforms', () => {
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      { mediaType: MediaType.ociManifest, digest: d(10), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MediaType.ociManifest, digest: d(11), size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: MediaType.ociManifest, digest: d(12), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
      { mediaType: MediaType.ociManifest, digest: d(13), size: 1, platform: { os: 'unknown', architecture: 'unknown' } },
      { mediaType: MediaType.ociManifest, digest: d(14), size: 1 },
    ],
  };

  it('defaults to linux/amd64 and normalises aliases and default variants', () => {
    expect(selectPlatform(index).digest).toBe(d(10));
    expect(selectPlatform(index, 'linux/x86_64').digest).toBe(d(10));
    expect(selectPlatform(index, 'linux/arm64').digest).toBe(d(11));
    expect(selectPlatform(index, 'linux/aarch64/v8').digest).toBe(d(11));
    expect(selectPlatform(index, 'linux/arm/v6').digest).toBe(d(12));
    expect(platformMatches(parsePlatform('linux/arm'), { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(true);
  });

  it('takes the Nydus manifest of a platform an index offers twice (convert --merge-platform)', () => {
    const merged: ImageIndex = { schemaVersion: 2, manifests: [index.manifests[0]!, { ...index.manifests[0]!, digest: d(20), platform: { os: 'linux', architecture: 'amd64', 'os.features': ['nydus.remoteimage.v1'] } }] };
    expect(selectPlatform(merged).digest).toBe(d(20));
  });

  it('says what the index has when nothing matches', () => {
    expect(() => selectPlatform(index, 'linux/arm/v7')).toThrow('no image for platform linux/arm/v7 in the index (it has: linux/amd64, linux/arm64/v8, linux/arm/v6)');
    expect(() => selectPlatform(index, 'windows/amd64')).toThrow(/windows\/amd64/);
    expect(() => parsePlatform('linux')).toThrow(/os\/arch/);
  });

  it('lists runnable platforms, without attestations and platform-less entries', () => {
    expect(listPlatforms(index).map((p) => [p.platform, p.descriptor.digest])).toEqual([
      ['linux/amd64', d(10)],
      ['linux/arm64/v8', d(11)],
      ['linux/arm/v6', d(12)],
    ]);
  });
});

describe('digests', () => {
  it('validates, computes and verifies', () => {
    const bytes = Buffer.from('hello');
    const digest = computeDigest(bytes);
    expect(digest).toBe('sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    expect(validateDigest(digest)).toBe(digest);
    expect(() => verifyDigest(bytes, digest, 'here')).not.toThrow();
    expect(() => verifyDigest(Buffer.from('hellO'), digest, 'here')).toThrow(DigestMismatchError);
    expect(() => verifyDigest(bytes, computeDigest(bytes, 'sha512'), 'here')).not.toThrow();
  });

  it('fails a stream at its end when the bytes are not the digest, naming the blob', async () => {
    const digest = computeDigest(Buffer.from('abc'));
    const read = async (data: string) => {
      const verifier = new DigestVerifier(digest, 'test-source');
      verifier.end(Buffer.from(data));
      const out: Buffer[] = [];
      for await (const chunk of verifier) out.push(chunk as Buffer);
      return Buffer.concat(out).toString();
    };
    expect(await read('abc')).toBe('abc');
    await expect(read('abd')).rejects.toThrow(`digest mismatch for ${digest} from test-source`);
  });
});
