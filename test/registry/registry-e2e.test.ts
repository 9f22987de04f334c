// The registry client against the real distribution registry from ../shared/e2e (registry-up.sh --auth):
// plain :5000, basic auth :5001 (testuser/testpass), token server :5002 + token registry :5003.
// Every image is made here from random bytes and pushed to repositories named for this run only.
import { createHash, createSign, randomBytes, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { AuthenticationError, DigestMismatchError, RegistryError, RegistryUnreachableError } from '../../src/registry/errors.js';
import { openImageStore, resolveImage, type ImageStore } from '../../src/registry/image-store.js';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest } from '../../src/registry/media-types.js';
import { OciLayoutStore } from '../../src/registry/oci-layout.js';
import { listPlatforms } from '../../src/registry/platform.js';
import { getLogLevel, setLogLevel } from '../../src/util/log.js';
import { sharedDir } from '../helpers/trees.js';
import { forward, startServer, unusedPort, type TestServer } from './http-fixtures.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const PLAIN = '127.0.0.1:5000';
const BASIC = '127.0.0.1:5001';
const TOKEN_SERVER = '127.0.0.1:5002';
const TOKEN_REGISTRY = '127.0.0.1:5003';
const USER = { username: 'testuser', password: 'testpass' };
const run = randomBytes(4).toString('hex');
const repo = (purpose: string) => `nydusify-ts-test/${purpose}-${run}`;
const work = mkdtempSync(join(tmpdir(), 'nydusify-registry-'));
const fastRetry = { attempts: 3, baseDelayMs: 50, maxDelayMs: 200, maxElapsedMs: 5_000 };
const clients: RegistryClient[] = [];
const servers: TestServer[] = [];

function client(options: RegistryClientOptions = {}): RegistryClient {
  const c = new RegistryClient({ plainHttp: true, dockerConfig: false, retry: fastRetry, ...options });
  clients.push(c);
  return c;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const describeBlob = (mediaType: string, bytes: Buffer): Descriptor => ({ mediaType, digest: sha256(bytes), size: bytes.length });

interface TestImage {
  layer: Buffer;
  config: Buffer;
  manifest: Buffer;
  manifestDigest: string;
}

/** A random layer, a config naming `arch`, and a manifest without a top-level mediaType (as umoci writes them). */
function makeImage(layerSize = 64 * 1024, arch = 'amd64'): TestImage {
  const layer = randomBytes(layerSize);
  const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] }, nonce: randomBytes(8).toString('hex') }));
  const manifest: ImageManifest = { schemaVersion: 2, config: describeBlob(MediaType.ociConfig, config), layers: [describeBlob(MediaType.ociLayerGzip, layer)] };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { layer, config, manifest: bytes, manifestDigest: sha256(bytes) };
}

async function pushImage(store: ImageStore, image: TestImage, tag?: string): Promise<string> {
  await store.putBlob({ digest: sha256(image.layer), size: image.layer.length }, image.layer);
  await store.putBlob({ digest: sha256(image.config), size: image.config.length }, image.config);
  return store.putManifest(image.manifest, MediaType.ociManifest, tag);
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function logLines(name: string, since: number, needle: string): string[] {
  return readFileSync(join(e2eDir, 'logs', `${name}.log`), 'utf8').slice(since).split('\n').filter((line) => line.includes(needle));
}
const logSize = (name: string) => readFileSync(join(e2eDir, 'logs', `${name}.log`)).length;

const logLevel = getLogLevel();
beforeAll(() => {
  execFileSync(join(sharedDir(), 'e2e', 'registry-up.sh'), ['--auth'], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, E2E_DIR: e2eDir } });
  setLogLevel('error'); // retries warn by design; the tests check what they do
}, 60_000);

afterAll(async () => {
  setLogLevel(logLevel);
  await Promise.all([...clients.map((c) => c.close()), ...servers.map((s) => s.close())]);
  rmSync(work, { recursive: true, force: true });
});

describe('push and pull', () => {
  it('round-trips an image monolithically, skips blobs that are there, reads manifests by tag and digest', async () => {
    const store = client().repository(`${PLAIN}/${repo('roundtrip')}`);
    const image = makeImage();
    const layer = { digest: sha256(image.layer), size: image.layer.length };
    expect(await store.hasBlob(layer.digest)).toBe(false);
    expect(await store.putBlob(layer, image.layer)).toBe('uploaded');
    expect(await store.putBlob(layer, () => { throw new Error('must not be opened: the blob is there'); })).toBe('exists');
    expect(await store.hasBlob(layer.digest)).toBe(true);
    expect(await store.blobSize(layer.digest)).toBe(image.layer.length);
    expect(await pushImage(store, image, 'v1')).toBe(image.manifestDigest);

    const byTag = await store.getManifest('v1');
    expect(byTag).toMatchObject({ kind: 'manifest', mediaType: MediaType.ociManifest, digest: image.manifestDigest });
    expect(byTag.bytes.equals(image.manifest)).toBe(true);
    const byDigest = await store.getManifest(image.manifestDigest);
    expect(byDigest.bytes.equals(image.manifest)).toBe(true);
    expect(await readAll(await store.getBlob(layer.digest))).toEqual(image.layer);

    await expect(store.getManifest('no-such-tag')).rejects.toMatchObject({ status: 404, code: 'MANIFEST_UNKNOWN' });
    await expect(store.blobSize(sha256(randomBytes(8)))).rejects.toMatchObject({ status: 404 });
  });

  it('uploads large blobs in PATCH chunks with Content-Range', async () => {
    const name = repo('chunked');
    const store = client({ chunkedUploadThreshold: 1024 * 1024, uploadChunkSize: 1024 * 1024 }).repository(`${PLAIN}/${name}`);
    const blob = randomBytes(3.5 * 1024 * 1024);
    const since = logSize('registry');
    const path = join(work, 'chunked.bin');
    writeFileSync(path, blob);
    expect(await store.putBlob({ digest: sha256(blob), size: blob.length }, { path })).toBe('uploaded');
    expect(logLines('registry', since, `"PATCH /v2/${name}/blobs/uploads/`)).toHaveLength(4);
    expect(await readAll(await store.getBlob(sha256(blob)))).toEqual(blob);
  });

  it('pushes from a one-shot stream of known size and digest', async () => {
    const store = client().repository(`${PLAIN}/${repo('stream')}`);
    const blob = randomBytes(200_000);
    async function* pieces() {
      for (let i = 0; i < blob.length; i += 65_536) yield blob.subarray(i, i + 65_536);
    }
    expect(await store.putBlob({ digest: sha256(blob), size: blob.length }, pieces())).toBe('uploaded');
    expect(await readAll(await store.getBlob(sha256(blob)))).toEqual(blob);
  });

  it('mounts across repositories of one registry and uploads when the mount is refused', async () => {
    const c = client();
    const from = c.repository(`${PLAIN}/${repo('mount-src')}`);
    const to = c.repository(`${PLAIN}/${repo('mount-dst')}`);
    const blob = randomBytes(10_000);
    const ref = { digest: sha256(blob), size: blob.length };
    await from.putBlob(ref, blob);
    expect(await to.putBlob(ref, () => from.getBlob(ref.digest), { mountFrom: from })).toBe('mounted');
    expect(await to.hasBlob(ref.digest)).toBe(true);

    // the source does not have this one: the registry answers 202 and the client uploads into that session
    const other = randomBytes(5_000);
    expect(await to.putBlob({ digest: sha256(other), size: other.length }, other, { mountFrom: from })).toBe('uploaded');
    expect(await readAll(await to.getBlob(sha256(other)))).toEqual(other);
  });

  it('reads exact byte ranges', async () => {
    const store = client().repository(`${PLAIN}/${repo('range')}`);
    const blob = randomBytes(100_000);
    const digest = sha256(blob);
    await store.putBlob({ digest, size: blob.length }, blob);
    expect(await store.getBlobRange(digest, 1000, 1000)).toEqual(blob.subarray(1000, 2000));
    expect(await store.getBlobRange(digest, 99_990, 10)).toEqual(blob.subarray(99_990));
    expect(await store.getBlobRange(digest, 0, 0)).toEqual(Buffer.alloc(0));
    await expect(store.getBlobRange(digest, 100_000, 10)).rejects.toThrow(/bytes=100000-100009 is outside blob sha256:\w+ \(the blob is 100000 bytes\)/);
  });

  it('selects a platform from a pushed index and lists them all', async () => {
    const store = client().repository(`${PLAIN}/${repo('index')}`);
    const amd = makeImage(1000, 'amd64');
    const arm = makeImage(1000, 'arm64');
    await pushImage(store, amd);
    await pushImage(store, arm);
    const entry = (image: TestImage, architecture: string, variant?: string): Descriptor => ({
      mediaType: MediaType.ociManifest,
      digest: image.manifestDigest,
      size: image.manifest.length,
      platform: { os: 'linux', architecture, ...(variant && { variant }) },
    });
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [entry(amd, 'amd64'), entry(arm, 'arm64', 'v8')] };
    await store.putManifest(Buffer.from(JSON.stringify(index)), MediaType.ociIndex, 'multi');

    const top = await store.getManifest('multi');
    expect(top.kind).toBe('index');
    if (top.kind === 'index') expect(listPlatforms(top.parsed).map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
    expect((await resolveImage(store, 'multi')).manifest.digest).toBe(amd.manifestDigest);
    const resolved = await resolveImage(store, 'multi', 'linux/arm64');
    expect(resolved.manifest.digest).toBe(arm.manifestDigest);
    expect(resolved.index?.digest).toBe(top.digest);
  });
});

describe('verification', () => {
  it('fails the stream of a blob corrupted in the registry storage, naming the blob', async () => {
    const store = client().repository(`${PLAIN}/${repo('corrupt')}`);
    const blob = randomBytes(50_000);
    const digest = sha256(blob);
    await store.putBlob({ digest, size: blob.length }, blob);
    const hex = digest.slice('sha256:'.length);
    const data = join(e2eDir, 'registry', 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    const corrupted = Buffer.from(blob);
    corrupted[25_000]! ^= 0xff;
    writeFileSync(data, corrupted);
    try {
      const err = await readAll(await store.getBlob(digest)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DigestMismatchError);
      expect((err as Error).message).toContain(`digest mismatch for ${digest} from ${PLAIN}/${repo('corrupt')}`);
      // ranges are not verifiable against the blob digest; they return the stored bytes
      expect(await store.getBlobRange(digest, 25_000, 1)).toEqual(corrupted.subarray(25_000, 25_001));
    } finally {
      writeFileSync(data, blob);
    }
  });

  it('verifies a manifest fetched by digest', async () => {
    const store = client().repository(`${PLAIN}/${repo('manifest-digest')}`);
    const image = makeImage(1000);
    await pushImage(store, image, 'v1');
    const wrong = sha256(randomBytes(4));
    await expect(store.getManifest(wrong)).rejects.toMatchObject({ status: 404 });
    expect((await store.getManifest(image.manifestDigest)).digest).toBe(image.manifestDigest);
  });
});

describe('authentication', () => {
  it('basic auth: credentials work, a wrong password and no credentials are clear errors', async () => {
    const image = makeImage(2000);
    const name = `${BASIC}/${repo('basic')}`;
    const good = client({ credentials: { [BASIC]: USER } }).repository(name);
    await pushImage(good, image, 'v1');
    expect((await good.getManifest('v1')).digest).toBe(image.manifestDigest);

    const wrong = client({ credentials: { [BASIC]: { username: 'testuser', password: 'nope' } } }).repository(name);
    const err = await wrong.getManifest('v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect((err as Error).message).toMatch(/^authentication failed for 127\.0\.0\.1:5001: 401 UNAUTHORIZED/);

    await expect(client().repository(name).getManifest('v1')).rejects.toThrow('authentication required by 127.0.0.1:5001 (Basic) and no username/password is configured for it');
  });

  it('reads credentials from a docker config file', async () => {
    const path = join(work, 'docker-config.json');
    writeFileSync(path, JSON.stringify({ auths: { [`http://${BASIC}`]: { auth: Buffer.from('testuser:testpass').toString('base64') } } }));
    const store = client({ dockerConfig: path }).repository(`${BASIC}/${repo('dockercfg')}`);
    await pushImage(store, makeImage(1000), 'v1');
    expect((await store.getManifest('v1')).kind).toBe('manifest');
  });

  it('token auth: OAuth2 POST with a password, anonymous GET for pulls, and refresh_token from an identity token', async () => {
    const name = repo('token');
    const image = makeImage(3000);
    const since = logSize('token-server');
    const pusher = client({ credentials: { [TOKEN_REGISTRY]: USER } }).repository(`${TOKEN_REGISTRY}/${name}`);
    await pushImage(pusher, image, 'v1');
    const anonymous = client().repository(`${TOKEN_REGISTRY}/${name}`);
    expect(await readAll(await anonymous.getBlob(sha256(image.layer)))).toEqual(image.layer);
    const path = join(work, 'docker-config-token.json');
    writeFileSync(path, JSON.stringify({ auths: { [TOKEN_REGISTRY]: { auth: Buffer.from('<token>:').toString('base64'), identitytoken: 'e2e-refresh-testuser' } } }));
    const refresher = client({ dockerConfig: path }).repository(`${TOKEN_REGISTRY}/${repo('token-refresh')}`);
    await pushImage(refresher, makeImage(1000), 'v1');

    const lines = logLines('token-server', since, `"name":"nydusify-ts-test/`).filter((l) => l.includes(run));
    expect(lines.some((l) => / POST \/token form:password user=testuser .*"actions":\["pull","push"\]/.test(l) && l.includes(name))).toBe(true);
    expect(lines.some((l) => / GET \/token\?\S+ +anonymous .*"actions":\["pull"\]/.test(l) && l.includes(name))).toBe(true);
    expect(lines.some((l) => / POST \/token form:refresh_token user=testuser /.test(l) && l.includes(repo('token-refresh')))).toBe(true);
  });

  it('token auth: a wrong password fails at the token server; an anonymous push is refused', async () => {
    const name = `${TOKEN_REGISTRY}/${repo('token-denied')}`;
    const wrong = client({ credentials: { [TOKEN_REGISTRY]: { username: 'testuser', password: 'nope' } } }).repository(name);
    await expect(wrong.getManifest('v1')).rejects.toThrow(`authentication failed for ${TOKEN_REGISTRY}: token server http://${TOKEN_SERVER}/token answered 401: bad credentials`);
    const blob = randomBytes(100);
    const err = await client().repository(name).putBlob({ digest: sha256(blob), size: 100 }, blob).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect((err as Error).message).toContain(`authentication failed for ${TOKEN_REGISTRY}: 401 UNAUTHORIZED`);
    expect((err as Error).message).toContain('(no credentials are configured for 127.0.0.1:5003)');
  });

  describe('through a proxy that owns the token realm', () => {
    let proxy: TestServer;
    const tokenRequests: string[] = [];
    let handOutExpired = false;
    let refusePost = false;

    /** An RS256 JWT the registry trusts (same key and x5c as token-server.mjs) that expired a minute ago. */
    function expiredToken(repository: string): string {
      const dir = join(e2eDir, 'registry');
      const cert = new X509Certificate(readFileSync(join(dir, 'token-cert.pem'))).raw.toString('base64');
      const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url');
      const now = Math.floor(Date.now() / 1000);
      const claims = { iss: 'e2e-issuer', sub: 'testuser', aud: 'e2e-registry', exp: now - 60, nbf: now - 600, iat: now - 600, jti: randomBytes(8).toString('hex'), access: [{ type: 'repository', name: repository, actions: ['pull', 'push'] }] };
      const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [cert] }))}.${b64url(JSON.stringify(claims))}`;
      const signature = createSign('RSA-SHA256').update(input).sign(readFileSync(join(dir, 'token-key.pem')));
      return `${input}.${b64url(signature)}`;
    }

    beforeAll(async () => {
      proxy = await startServer((req, res) => {
        if (req.url?.startsWith('/token')) {
          tokenRequests.push(req.method ?? '');
          if (refusePost && req.method === 'POST') return void res.writeHead(405).end();
          if (handOutExpired) {
            handOutExpired = false;
            const token = expiredToken(repo('expired'));
            // the server claims a long life: only the registry's 401 tells the client it is stale
            return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300, issued_at: new Date().toISOString() }));
          }
          return forward(req, res, TOKEN_SERVER);
        }
        forward(req, res, TOKEN_REGISTRY, (headers) => {
          const challenge = headers['www-authenticate'];
          if (typeof challenge === 'string') headers['www-authenticate'] = challenge.replace(`http://${TOKEN_SERVER}/token`, `http://${proxy.host}/token`);
          return headers;
        });
      });
      servers.push(proxy);
    });

    it('falls back to the GET token flow with Basic credentials when the realm refuses POST', async () => {
      refusePost = true;
      tokenRequests.length = 0;
      const since = logSize('token-server');
      try {
        const store = client({ credentials: { [proxy.host]: USER } }).repository(`${proxy.host}/${repo('get-fallback')}`);
        await pushImage(store, makeImage(1000), 'v1');
      } finally {
        refusePost = false;
      }
      expect(tokenRequests.slice(0, 2)).toEqual(['POST', 'GET']);
      const lines = logLines('token-server', since, repo('get-fallback'));
      expect(lines.some((l) => / GET \/token\?\S+ +user=testuser .*"actions":\["pull","push"\]/.test(l))).toBe(true);
    });

    it('drops a token the registry calls expired, fetches a new one and retries once', async () => {
      const image = makeImage(1000);
      await pushImage(client({ credentials: { [proxy.host]: USER } }).repository(`${proxy.host}/${repo('expired')}`), image, 'v1');
      const c = client({ credentials: { [proxy.host]: USER } });
      await c.repository(`${proxy.host}/${repo('expired-warmup')}`).hasBlob(sha256(image.layer)); // learns the realm
      tokenRequests.length = 0;
      handOutExpired = true;
      // the realm is known now, so the token is fetched before the request; the expired one gets a 401
      expect((await c.repository(`${proxy.host}/${repo('expired')}`).getManifest('v1')).digest).toBe(image.manifestDigest);
      expect(handOutExpired).toBe(false);
      expect(tokenRequests).toEqual(['POST', 'POST']);
    });
  });
});

describe('failures and retries', () => {
  it('reports a registry that is down after bounded retries', async () => {
    const port = await unusedPort();
    const started = Date.now();
    const err = await client().repository(`127.0.0.1:${port}/x`).getManifest('latest').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryUnreachableError);
    expect((err as Error).message).toMatch(new RegExp(`^registry 127\\.0\\.0\\.1:${port} unreachable: connect ECONNREFUSED 127\\.0\\.0\\.1:${port} \\(3 attempts\\)$`));
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('retries 5xx answers with backoff, then succeeds; gives up with the last error after the bounded attempts', async () => {
    const store = client().repository(`${PLAIN}/${repo('flaky')}`);
    const image = makeImage(1000);
    await pushImage(store, image, 'v1');
    let failures = 2;
    let requests = 0;
    const flaky = await startServer((req, res) => {
      requests++;
      if (failures-- > 0) return void res.writeHead(503, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}');
      forward(req, res, PLAIN);
    });
    servers.push(flaky);
    const viaFlaky = client().repository(`${flaky.host}/${repo('flaky')}`);
    expect((await viaFlaky.getManifest('v1')).digest).toBe(image.manifestDigest);
    expect(requests).toBe(3);

    failures = 10;
    requests = 0;
    const err = await viaFlaky.getManifest('v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    expect((err as Error).message).toMatch(/503 UNAVAILABLE: try later \(3 attempts\)$/);
    expect(requests).toBe(3);
  });

  it('restarts a blob upload that hit a 5xx', async () => {
    let failPut = true;
    const flaky = await startServer((req, res) => {
      if (req.method === 'PUT' && req.url?.includes('/blobs/uploads/') && failPut) {
        failPut = false;
        req.resume();
        return void res.writeHead(500).end();
      }
      forward(req, res, PLAIN);
    });
    servers.push(flaky);
    const store = client().repository(`${flaky.host}/${repo('upload-restart')}`);
    const blob = randomBytes(20_000);
    const path = join(work, 'restart.bin');
    writeFileSync(path, blob);
    expect(await store.putBlob({ digest: sha256(blob), size: blob.length }, { path })).toBe('uploaded');
    expect(failPut).toBe(false);
    expect(await readAll(await store.getBlob(sha256(blob)))).toEqual(blob);
  });

  it('slices a 200 answer to a range request from a server that ignores Range', async () => {
    const blob = randomBytes(300_000);
    const digest = sha256(blob);
    const server = await startServer((req, res) => {
      if (req.url === `/v2/ignores/range/blobs/${digest}`) return void res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
      res.writeHead(404).end();
    });
    servers.push(server);
    const store = client().repository(`${server.host}/ignores/range`);
    expect(await store.getBlobRange(digest, 123_456, 70_000)).toEqual(blob.subarray(123_456, 193_456));
    await expect(store.getBlobRange(digest, 299_000, 2_000)).rejects.toThrow(/past its end/);
  });

  it('is https unless told otherwise and never falls back to http', async () => {
    const store = new RegistryClient({ dockerConfig: false, retry: { ...fastRetry, attempts: 1 } });
    clients.push(store);
    const err = await store.repository(`${PLAIN}/x`).getManifest('v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).not.toMatch(/MANIFEST_UNKNOWN/); // it never reached the registry over http
    expect(logLines('registry', 0, 'x/manifests/v1"')).toEqual([]);
  });
});

describe('OCI image layout', () => {
  it('copies an image from the registry into a layout and back, under the same interface', async () => {
    const c = client();
    const source = c.repository(`${PLAIN}/${repo('layout-src')}`);
    const image = makeImage(80_000);
    await pushImage(source, image, 'v1');

    const dir = join(work, 'layout');
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
    expect(await readAll(await reopened.getBlob(sha256(image.layer)))).toEqual(image.layer);
    expect(await reopened.getBlobRange(sha256(image.layer), 70_000, 10_000)).toEqual(image.layer.subarray(70_000));
    await expect(reopened.getManifest('missing')).rejects.toThrow('no image tagged "missing" (tags: copied)');

    const target = c.repository(`${PLAIN}/${repo('layout-dst')}`);
    const { manifest: again } = await resolveImage(reopened, 'copied');
    for (const blob of [again.parsed.config, ...again.parsed.layers]) {
      expect(await target.putBlob(blob, () => reopened.getBlob(blob.digest), { mountFrom: reopened })).toBe('uploaded');
    }
    expect(await target.putManifest(again.bytes, again.mediaType, 'v1')).toBe(image.manifestDigest);
    expect(await readAll(await target.getBlob(sha256(image.layer)))).toEqual(image.layer);
  });

  it('verifies what it writes and what it reads', async () => {
    const layout = await OciLayoutStore.create(join(work, 'layout-verify'));
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
    await expect(OciLayoutStore.open(join(work, 'nowhere'))).rejects.toThrow(/not an OCI image layout/);
  });
});
