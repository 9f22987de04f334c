// Fuzzing what the registry client makes of a registry's answers (src/registry): manifest and
// index bodies (mutated real-shaped documents, and generated ones with arbitrary field values),
// Content-Type hints, platform selection from an index, and image references. Only the module's
// typed errors may come out (ManifestFormatError, InvalidDigestError, InvalidReferenceError, and
// the "no image for platform" / "invalid platform" errors of platform.ts), what parses is what it
// claims to be, and no case takes a second.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bareMediaType, InvalidDigestError, InvalidReferenceError, listPlatforms, ManifestFormatError, manifestKindOf, MediaType, parseImageLocation, parseManifest,
  parseReference, selectPlatform,
} from '../../src/registry/index.js';
import { isDigest } from '../../src/registry/digest.js';
import { applyMutations, caseCount, describeEdits, expectTyped, fuzz, mutationsArb, timeoutFor } from './harness.js';

const RUNS = caseCount(3000);
const d = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
const platform = (os: string, architecture: string, variant?: string) => ({ architecture, os, ...(variant ? { variant } : {}) });

/** Documents shaped as registries serve them (skopeo/buildkit/docker output). */
const DOCUMENTS: { name: string; body: unknown; hint?: string }[] = [
  { name: 'oci manifest', body: { schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: d(1), size: 1469 }, layers: [{ mediaType: MediaType.ociLayerGzip, digest: d(2), size: 2_811_478, annotations: { 'containerd.io/snapshot/nydus-blob': 'true' } }], annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' } } },
  { name: 'umoci manifest without mediaType', body: { schemaVersion: 2, config: { mediaType: MediaType.ociConfig, digest: d(3), size: 300 }, layers: [] } },
  { name: 'docker manifest', body: { schemaVersion: 2, mediaType: MediaType.dockerManifest, config: { mediaType: MediaType.dockerConfig, digest: d(4), size: 1500 }, layers: [{ mediaType: MediaType.dockerLayerGzip, digest: d(5), size: 100, urls: ['https://example.invalid/l'] }] }, hint: MediaType.dockerManifest },
  { name: 'oci index', body: { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [
    { mediaType: MediaType.ociManifest, digest: d(6), size: 500, platform: platform('linux', 'amd64') },
    { mediaType: MediaType.ociManifest, digest: d(7), size: 500, platform: platform('linux', 'arm64', 'v8') },
    { mediaType: MediaType.ociManifest, digest: d(8), size: 500, platform: platform('linux', 'arm', 'v7') },
    { mediaType: MediaType.ociManifest, digest: d(9), size: 500, platform: platform('unknown', 'unknown'), annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
  ] }, hint: `${MediaType.ociIndex}; charset=utf-8` },
  { name: 'docker manifest list', body: { schemaVersion: 2, mediaType: MediaType.dockerManifestList, manifests: [
    { mediaType: MediaType.dockerManifest, digest: d(10), size: 528, platform: { architecture: 'x86_64', os: 'Linux', 'os.features': ['sse4'] } },
    { mediaType: MediaType.dockerManifest, digest: d(11), size: 528, platform: { architecture: 'aarch64', os: 'linux', variant: 'V8' } },
  ] } },
];
const SEEDS = DOCUMENTS.map((doc) => Buffer.from(JSON.stringify(doc.body, null, doc.name.length % 2 === 0 ? 2 : 0)));
const HINTS = [undefined, '', ';', 'application/json', MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, `${MediaType.dockerManifest}; charset=utf-8`, ` ${MediaType.ociIndex.toUpperCase()} `, MediaType.ociLayerGzip];
const PLATFORMS = ['linux/amd64', 'linux/arm64', 'linux/arm64/v8', 'linux/arm', 'windows/amd64', 'unknown/unknown', 'linux', 'linux//v7', '/', 'a/b/c/d'];

/** Any JSON value, small. */
const jsonValue = fc.jsonValue({ maxDepth: 2 });
/** A field's value: usually one that makes sense, sometimes anything. */
const maybe = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 3, arbitrary: good }, { weight: 1, arbitrary: jsonValue }, { weight: 1, arbitrary: fc.constant(undefined) });
const digestArb = fc.oneof(fc.nat().map(d), fc.constantFrom('sha256:', `sha512:${'a'.repeat(128)}`, `SHA256:${'a'.repeat(64)}`, `sha256:${'A'.repeat(64)}`, 'md5:00', ':x'), fc.string());
const platformArb = fc.record({ os: maybe(fc.constantFrom('linux', 'Linux', 'windows', 'unknown', '')), architecture: maybe(fc.constantFrom('amd64', 'x86_64', 'arm64', 'aarch64', 'arm', 'armhf', '')), variant: maybe(fc.constantFrom('v7', 'v8', 'V8', 'v1', '')) }, { requiredKeys: [] });
const descriptorArb = fc.record({
  mediaType: maybe(fc.constantFrom(...Object.values(MediaType))),
  digest: maybe(digestArb),
  size: maybe(fc.oneof(fc.nat(), fc.constantFrom(-1, 0.5, 2 ** 53, Number.MAX_SAFE_INTEGER))),
  platform: maybe(platformArb),
  urls: maybe(fc.array(fc.webUrl(), { maxLength: 2 })),
  annotations: maybe(fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 })),
}, { requiredKeys: [] });
const documentArb = fc.record({
  schemaVersion: maybe(fc.constantFrom(2, 1, 3, '2')),
  mediaType: maybe(fc.constantFrom(...Object.values(MediaType), 'application/json', '')),
  config: maybe(descriptorArb),
  layers: maybe(fc.array(descriptorArb, { maxLength: 4 })),
  manifests: maybe(fc.array(descriptorArb, { maxLength: 4 })),
}, { requiredKeys: [] });

/** Errors of platform.ts that say what is wrong with the request, not a crash. */
const isPlatformError = (err: unknown): boolean => err instanceof Error && err.constructor === Error && /^(no image for platform|invalid platform)/.test(err.message);

function exercise(bytes: Buffer, hint: string | undefined, want: string): void {
  try {
    const m = parseManifest(bytes, hint);
    if (manifestKindOf(m.mediaType) !== m.kind) throw new Error(`parsed as ${m.kind} with media type ${m.mediaType}`);
    const descriptors = m.kind === 'index' ? m.parsed.manifests : [m.parsed.config, ...m.parsed.layers];
    for (const desc of descriptors) if (!isDigest(desc.digest) || !Number.isSafeInteger(desc.size) || desc.size < 0) throw new Error(`descriptor ${JSON.stringify(desc)} accepted`);
    if (m.kind === 'index') {
      listPlatforms(m.parsed);
      selectPlatform(m.parsed, want);
    }
  } catch (err) {
    if (isPlatformError(err)) return;
    expectTyped(err, [ManifestFormatError, InvalidDigestError], `${bytes.toString('latin1').slice(0, 2000)} (hint ${String(hint)}, platform ${want})`);
  }
}

describe('fuzz: registry manifests, indexes, platforms, references', () => {
  it('parses the seed documents and picks platforms from the indexes', () => {
    DOCUMENTS.forEach((doc, i) => expect(parseManifest(SEEDS[i]!, doc.hint).kind).toBe('manifests' in (doc.body as object) ? 'index' : 'manifest'));
    expect(selectPlatform(parseManifest(SEEDS[3]!).parsed as never, 'linux/arm64').digest).toBe(d(7));
    expect(selectPlatform(parseManifest(SEEDS[4]!).parsed as never, 'linux/amd64').digest).toBe(d(10));
    expect(bareMediaType(HINTS[8])).toBe(MediaType.ociIndex);
  });

  it('regression: an index entry\'s platform is checked (null, a number for os, no architecture were TypeErrors in platform selection)', () => {
    for (const platform of [null, { os: 5, architecture: 'amd64' }, { os: 'linux' }, { os: 'linux', architecture: 'amd64', variant: 7 }]) {
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.ociManifest, digest: d(1), size: 1, platform }] }));
      expect(() => parseManifest(body), JSON.stringify(platform)).toThrow(ManifestFormatError);
    }
  });

  it(`mutated manifests and indexes (${RUNS} cases)`, async () => {
    const arb = fc.record({ seed: fc.nat(SEEDS.length - 1), edits: mutationsArb([], { shifts: true }), hint: fc.constantFrom(...HINTS), want: fc.constantFrom(...PLATFORMS) });
    const describe = ({ seed, edits }: { seed: number; edits: Parameters<typeof describeEdits>[1] }) => describeEdits(DOCUMENTS[seed]!.name, edits);
    const stats = await fuzz('registry: mutated manifests', arb, ({ seed, edits, hint, want }) => exercise(applyMutations(SEEDS[seed]!, edits), hint, want), { runs: RUNS, seed: 0x0c1, describe });
    expect(stats.cases).toBe(RUNS);
  }, timeoutFor(RUNS, 1));

  it(`generated manifests and indexes with arbitrary field values (${RUNS} cases)`, async () => {
    const arb = fc.record({ doc: documentArb, hint: fc.constantFrom(...HINTS), want: fc.oneof(fc.constantFrom(...PLATFORMS), fc.string()) });
    const stats = await fuzz('registry: generated manifests', arb, ({ doc, hint, want }) => exercise(Buffer.from(JSON.stringify(doc) ?? 'null'), hint, want), { runs: RUNS, seed: 0x0c2 });
    expect(stats.cases).toBe(RUNS);
  }, timeoutFor(RUNS, 1));

  it(`image references (${RUNS} cases)`, async () => {
    const seeds = ['127.0.0.1:5000/busybox:latest', 'docker.io/library/alpine@' + d(1), 'localhost/a/b:c', '[::1]:5000/x/y', 'oci:/tmp/dir:tag', 'ubuntu'];
    const arb = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), fc.record({ seed: fc.nat(seeds.length - 1), edits: mutationsArb([], { shifts: true, max: 3 }) }).map(({ seed, edits }) => applyMutations(Buffer.from(seeds[seed]!), edits).toString('latin1')));
    const stats = await fuzz('registry: references', arb, (input) => {
      try {
        const ref = parseReference(input);
        if (ref.repository === '' || (ref.digest !== undefined && !isDigest(ref.digest))) throw new Error(`accepted ${JSON.stringify(input)} as ${JSON.stringify(ref)}`);
        parseImageLocation(input);
      } catch (err) {
        expectTyped(err, [InvalidReferenceError], JSON.stringify(input));
      }
    }, { runs: RUNS, seed: 0x0c3 });
    expect(stats.cases).toBe(RUNS);
  }, timeoutFor(RUNS, 1));
});
