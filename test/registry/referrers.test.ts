// OCI referrers (referrers.ts): pushed and found through the referrers tag schema of an OCI layout, and
// through the referrers API of a registry that has one — a small local server stands in for it, since the
// distribution 2.8 of the e2e harness has none — or falling back to the tag where the route is missing.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryError } from '../../src/registry/errors.js';
import { MAX_REFERRERS, type ImageStore } from '../../src/registry/image-store.js';
import { ManifestFormatError, MediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../../src/registry/media-types.js';
import { OciLayoutStore } from '../../src/registry/oci-layout.js';
import { findReferrers, pushReferrer, referrersTag } from '../../src/registry/referrers.js';
import { startServer, type TestServer } from './http-fixtures.js';
import { fastRetry, makeImage, pushImage, sha256 } from './registry-fixtures.js';

const SBOM = 'application/vnd.example.sbom.v1+json';
const SIGNATURE = 'application/vnd.example.signature.v1';
const EMPTY: Descriptor = { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 };

const work = mkdtempSync(join(tmpdir(), 'nydusify-referrers-'));
const servers: TestServer[] = [];
const clients: RegistryClient[] = [];
afterAll(async () => {
  await Promise.all([...servers, ...clients].map((x) => x.close()));
  rmSync(work, { recursive: true, force: true });
});

interface Referrer {
  bytes: Buffer;
  digest: string;
  payload: Buffer;
}

/** An artifact manifest of `artifactType` naming `subject`, its one layer random bytes. */
function makeReferrer(subject: Descriptor, artifactType: string, annotations?: Record<string, string>): Referrer {
  const payload = randomBytes(100);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType,
    config: EMPTY,
    layers: [{ mediaType: artifactType, digest: sha256(payload), size: payload.length }],
    subject,
    ...(annotations && { annotations }),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { bytes, digest: sha256(bytes), payload };
}

async function pushArtifact(store: ImageStore, referrer: Referrer): Promise<string> {
  await store.putBlob(EMPTY, Buffer.from('{}'));
  await store.putBlob({ digest: sha256(referrer.payload), size: referrer.payload.length }, referrer.payload);
  return pushReferrer(store, referrer.bytes, MediaType.ociManifest);
}

/** An image in `store` and its manifest's descriptor. */
async function subjectIn(store: ImageStore): Promise<Descriptor> {
  const image = makeImage(1000);
  await pushImage(store, image, `image-${randomBytes(3).toString('hex')}`);
  return { mediaType: MediaType.ociManifest, digest: image.manifestDigest, size: image.manifest.length };
}

const layout = (name: string) => OciLayoutStore.create(join(work, name));

describe('referrersTag', () => {
  it('is <alg>-<hex>, truncated as the tag schema says for long digests', () => {
    const hex = 'ab'.repeat(32);
    expect(referrersTag(`sha256:${hex}`)).toBe(`sha256-${hex}`);
    expect(referrersTag(`sha512:${'cd'.repeat(64)}`)).toBe(`sha512-${'cd'.repeat(32)}`);
    expect(() => referrersTag('sha256:abc')).toThrow(/invalid digest/);
  });
});

describe('referrers in an OCI layout (the tag schema)', () => {
  it('pushes two referrers of one subject, finds them with and without a filter, and re-pushes idempotently', async () => {
    const store = await layout('two');
    const subject = await subjectIn(store);
    expect(await findReferrers(store, subject.digest)).toEqual([]);

    const sbom = makeReferrer(subject, SBOM, { 'org.example.note': 'first' });
    const signature = makeReferrer(subject, SIGNATURE);
    expect(await pushArtifact(store, sbom)).toBe(sbom.digest);
    expect(await pushArtifact(store, signature)).toBe(signature.digest);

    const all = await findReferrers(store, subject.digest);
    expect(all).toEqual([
      { mediaType: MediaType.ociManifest, digest: sbom.digest, size: sbom.bytes.length, artifactType: SBOM, annotations: { 'org.example.note': 'first' } },
      { mediaType: MediaType.ociManifest, digest: signature.digest, size: signature.bytes.length, artifactType: SIGNATURE },
    ]);
    expect((await findReferrers(store, subject.digest, SIGNATURE)).map((d) => d.digest)).toEqual([signature.digest]);
    expect(await findReferrers(store, subject.digest, 'application/vnd.example.none')).toEqual([]);
    expect((await store.getManifest(sbom.digest)).parsed.subject).toEqual(subject);

    const tagged = await store.getManifest(referrersTag(subject.digest));
    expect(await pushArtifact(store, sbom)).toBe(sbom.digest);
    expect((await store.getManifest(referrersTag(subject.digest))).digest).toBe(tagged.digest);
    expect(await findReferrers(store, subject.digest)).toHaveLength(2);
    expect((await store.tags()).filter((t) => t === referrersTag(subject.digest))).toHaveLength(1);

    // another subject in the same layout has none
    expect(await findReferrers(store, (await subjectIn(store)).digest)).toEqual([]);
  });

  it('keeps what else the tag index holds', async () => {
    const store = await layout('kept');
    const subject = await subjectIn(store);
    const other = makeReferrer(subject, SBOM);
    await store.putBlob(EMPTY, Buffer.from('{}'));
    await store.putBlob({ digest: sha256(other.payload), size: other.payload.length }, other.payload);
    await store.putManifest(other.bytes, MediaType.ociManifest);
    const written: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [{ mediaType: MediaType.ociManifest, digest: other.digest, size: other.bytes.length, artifactType: SBOM }],
      annotations: { 'org.example.by': 'another tool' },
    };
    await store.putManifest(Buffer.from(JSON.stringify(written)), MediaType.ociIndex, referrersTag(subject.digest));

    const mine = makeReferrer(subject, SIGNATURE);
    await pushArtifact(store, mine);
    const index = await store.getManifest(referrersTag(subject.digest));
    expect(index.kind).toBe('index');
    expect(index.parsed.annotations).toEqual({ 'org.example.by': 'another tool' });
    expect((await findReferrers(store, subject.digest)).map((d) => d.digest)).toEqual([other.digest, mine.digest]);
  });

  it('refuses a referrer without a subject, and a referrers tag that is not an index', async () => {
    const store = await layout('bad');
    const subject = await subjectIn(store);
    const { subject: _, ...orphan } = JSON.parse(makeReferrer(subject, SBOM).bytes.toString()) as ImageManifest;
    await expect(pushReferrer(store, Buffer.from(JSON.stringify(orphan)), MediaType.ociManifest)).rejects.toBeInstanceOf(ManifestFormatError);
    const badSubject = Buffer.from(JSON.stringify({ ...orphan, subject: { ...subject, digest: 'sha256:short' } }));
    await expect(pushReferrer(store, badSubject, MediaType.ociManifest)).rejects.toThrow(/must name a subject by digest; this .* names "sha256:short"/);
    expect(await store.hasBlob(sha256(badSubject))).toBe(false);

    const image = makeImage(500);
    await pushImage(store, image, referrersTag(subject.digest));
    const err = await findReferrers(store, subject.digest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toBe(`${store.name}:${referrersTag(subject.digest)}: the referrers tag of ${subject.digest} holds a ${MediaType.ociManifest}, not an image index`);
    await expect(pushArtifact(store, makeReferrer(subject, SBOM))).rejects.toThrow(/not an image index/);
    await expect(findReferrers(store, 'sha256:nothex')).rejects.toThrow(/invalid digest/);
  });
});

interface FakeRegistry {
  store: ReturnType<RegistryClient['repository']>;
  /** `METHOD path?query` of every request, in order. */
  requests: string[];
}

interface FakeOptions {
  /** Serve GET /v2/r/referrers/<digest> from the manifests pushed (else 404, as distribution 2.8). */
  referrersApi: boolean;
  /** Answer the PUT of a manifest with a subject with OCI-Subject. */
  ociSubject?: boolean;
  /** Answers of the referrers route instead of the list, by request. */
  referrers?: (res: ServerResponse, digest: string, url: URL) => void;
}

const index = (manifests: Descriptor[]): string => JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests });

/** A registry of one repository `r` keeping manifests in memory; blobs are taken as present. */
async function fakeRegistry(options: FakeOptions): Promise<FakeRegistry> {
  const manifests = new Map<string, { bytes: Buffer; type: string }>();
  const requests: string[] = [];
  const server = await startServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://registry');
      requests.push(`${req.method} ${url.pathname}${url.search}`);
      const manifest = /^\/v2\/r\/manifests\/([^/]+)$/.exec(url.pathname)?.[1];
      const referrers = /^\/v2\/r\/referrers\/([^/]+)$/.exec(url.pathname)?.[1];
      if (manifest !== undefined && req.method === 'PUT') {
        const bytes = Buffer.concat(chunks);
        const entry = { bytes, type: req.headers['content-type'] ?? '' };
        manifests.set(sha256(bytes), entry).set(manifest, entry);
        const subject = (JSON.parse(bytes.toString()) as ImageManifest).subject?.digest;
        res.writeHead(201, { 'docker-content-digest': sha256(bytes), ...(options.ociSubject && subject !== undefined && { 'oci-subject': subject }) }).end();
      } else if (manifest !== undefined && req.method === 'GET' && manifests.has(manifest)) {
        const { bytes, type } = manifests.get(manifest)!;
        res.writeHead(200, { 'content-type': type, 'docker-content-digest': sha256(bytes) }).end(bytes);
      } else if (referrers !== undefined && options.referrers) {
        options.referrers(res, referrers, url);
      } else if (referrers !== undefined && options.referrersApi) {
        const naming = [...manifests].filter(([key, m]) => key.startsWith('sha256:') && (JSON.parse(m.bytes.toString()) as ImageManifest).subject?.digest === referrers);
        const listed = naming.map(([digest, m]): Descriptor => {
          const body = JSON.parse(m.bytes.toString()) as ImageManifest;
          return { mediaType: m.type, digest, size: m.bytes.length, ...(body.artifactType !== undefined && { artifactType: body.artifactType }) };
        });
        res.writeHead(200, { 'content-type': MediaType.ociIndex }).end(index(listed));
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'unknown' }] }));
      }
    });
  });
  servers.push(server);
  const client = new RegistryClient({ plainHttp: true, dockerConfig: false, retry: fastRetry });
  clients.push(client);
  return { store: client.repository(`${server.host}/r`), requests };
}

const subjectDescriptor = (): Descriptor => {
  const image = makeImage(100);
  return { mediaType: MediaType.ociManifest, digest: image.manifestDigest, size: image.manifest.length };
};

describe('referrers through a registry', () => {
  it('reads the referrers API, filtering by artifactType even where the registry does not', async () => {
    const { store, requests } = await fakeRegistry({ referrersApi: true });
    const subject = subjectDescriptor();
    const sbom = makeReferrer(subject, SBOM);
    const signature = makeReferrer(subject, SIGNATURE);
    // pushed without OCI-Subject in the answers: the tag index is written too, and not what is read
    await pushReferrer(store, sbom.bytes, MediaType.ociManifest);
    await pushReferrer(store, signature.bytes, MediaType.ociManifest);
    requests.length = 0;

    expect((await findReferrers(store, subject.digest)).map((d) => d.digest).sort()).toEqual([sbom.digest, signature.digest].sort());
    expect(await findReferrers(store, subject.digest, SBOM)).toEqual([{ mediaType: MediaType.ociManifest, digest: sbom.digest, size: sbom.bytes.length, artifactType: SBOM }]);
    expect(requests).toEqual([`GET /v2/r/referrers/${subject.digest}`, `GET /v2/r/referrers/${subject.digest}?artifactType=${encodeURIComponent(SBOM)}`]);
    expect(await findReferrers(store, subjectDescriptor().digest)).toEqual([]);
  });

  it('indexes nothing itself when the registry answers the PUT with OCI-Subject', async () => {
    const { store, requests } = await fakeRegistry({ referrersApi: true, ociSubject: true });
    const subject = subjectDescriptor();
    const sbom = makeReferrer(subject, SBOM);
    expect(await pushReferrer(store, sbom.bytes, MediaType.ociManifest)).toBe(sbom.digest);
    expect(requests).toEqual([`PUT /v2/r/manifests/${sbom.digest}`]);
    expect((await findReferrers(store, subject.digest)).map((d) => d.digest)).toEqual([sbom.digest]);
  });

  it('falls back to the referrers tag when the registry has no referrers route', async () => {
    const { store, requests } = await fakeRegistry({ referrersApi: false });
    const subject = subjectDescriptor();
    const tag = referrersTag(subject.digest);
    expect(await findReferrers(store, subject.digest)).toEqual([]);
    expect(requests).toEqual([`GET /v2/r/referrers/${subject.digest}`, `GET /v2/r/manifests/${tag}`]);

    const sbom = makeReferrer(subject, SBOM);
    requests.length = 0;
    await pushReferrer(store, sbom.bytes, MediaType.ociManifest);
    expect(requests).toEqual([`PUT /v2/r/manifests/${sbom.digest}`, `GET /v2/r/manifests/${tag}`, `PUT /v2/r/manifests/${tag}`]);
    expect(await findReferrers(store, subject.digest, SBOM)).toEqual([{ mediaType: MediaType.ociManifest, digest: sbom.digest, size: sbom.bytes.length, artifactType: SBOM }]);
    expect(await findReferrers(store, subject.digest, SIGNATURE)).toEqual([]);
  });

  it('follows Link pages on the same list only, and bounds the list', async () => {
    const subject = subjectDescriptor();
    const entry = (i: number): Descriptor => ({ mediaType: MediaType.ociManifest, digest: sha256(Buffer.from(String(i))), size: 100 + i, artifactType: SBOM });
    const paged = await fakeRegistry({
      referrersApi: true,
      referrers: (res, digest, url) => {
        const page = Number(url.searchParams.get('page') ?? 1);
        const link = page < 3 ? { link: `</v2/r/referrers/${digest}?page=${page + 1}>; rel="next"` } : {};
        res.writeHead(200, { 'content-type': MediaType.ociIndex, ...link }).end(index([entry(2 * page), entry(2 * page + 1)]));
      },
    });
    expect((await findReferrers(paged.store, subject.digest)).map((d) => d.size)).toEqual([102, 103, 104, 105, 106, 107]);

    const elsewhere = await fakeRegistry({
      referrersApi: true,
      referrers: (res) => res.writeHead(200, { 'content-type': MediaType.ociIndex, link: '<http://127.0.0.1:1/steal>; rel="next"' }).end(index([entry(1)])),
    });
    await expect(findReferrers(elsewhere.store, subject.digest)).rejects.toThrow(/the next page is linked as http:\/\/127.0.0.1:1\/steal, not on this list/);

    const endless = await fakeRegistry({
      referrersApi: true,
      referrers: (res, digest, url) => res.writeHead(200, { 'content-type': MediaType.ociIndex, link: `</v2/r/referrers/${digest}?last=${url.search.length}>; rel="next"` }).end(index([])),
    });
    await expect(findReferrers(endless.store, subject.digest)).rejects.toThrow(/run to more than \d+ pages/);

    const many = await fakeRegistry({
      referrersApi: true,
      referrers: (res) => res.writeHead(200, { 'content-type': MediaType.ociIndex }).end(index(Array.from({ length: MAX_REFERRERS + 1 }, (_, i) => entry(i)))),
    });
    await expect(findReferrers(many.store, subject.digest)).rejects.toThrow(`has more than ${MAX_REFERRERS} referrers`);
  });

  it('refuses a referrers answer that is not a well-formed index', async () => {
    const subject = subjectDescriptor();
    const answers: [string, string][] = [
      [JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: EMPTY, layers: [] }), 'not an image index'],
      [index([{ mediaType: MediaType.ociManifest, digest: 'sha256:1234', size: 1 }]), 'invalid digest'],
      [index([{ mediaType: MediaType.ociManifest, digest: subject.digest, size: -1 }]), 'size must be a non-negative integer'],
      ['{"schemaVersion": 2, "manifests": 7', 'not JSON'],
    ];
    for (const [body, problem] of answers) {
      const { store } = await fakeRegistry({ referrersApi: true, referrers: (res) => res.writeHead(200, { 'content-type': MediaType.ociIndex }).end(body) });
      await expect(findReferrers(store, subject.digest)).rejects.toThrow(problem);
    }
    const { store } = await fakeRegistry({ referrersApi: true, referrers: (res) => res.writeHead(403).end() });
    await expect(findReferrers(store, subject.digest)).rejects.toMatchObject({ status: 403 });
  });
});
