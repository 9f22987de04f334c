// RegistryRepository end to end against the real registry: push and pull (monolithic, chunked, streamed,
// mounted), ranges, platform selection, verification of corrupted blobs, retries, upload restarts, TLS.
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer } from 'node:http';
import { networkInterfaces } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RegistryClient } from '../../../src/registry/client.js';
import { DigestMismatchError, RegistryError, RegistryUnreachableError } from '../../../src/registry/errors.js';
import { resolveImage } from '../../../src/registry/image-store.js';
import { MediaType, type Descriptor, type ImageIndex } from '../../../src/registry/media-types.js';
import { listPlatforms } from '../../../src/registry/platform.js';
import { forward, startServer, unusedPort } from '../../registry/http-fixtures.js';
import { e2eDir, fastRetry, logLines, logSize, makeImage, PLAIN, pushImage, readAll, repo, sha256, useRegistries, type TestImage } from '../../registry/registry-fixtures.js';

const ctx = useRegistries();

describe('push and pull', () => {
  it('round-trips an image monolithically, skips blobs that are there, reads manifests by tag and digest', async () => {
    const store = ctx.client().repository(`${PLAIN}/${repo('roundtrip')}`);
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
    expect(sha256(await readAll(await store.getBlob(layer.digest)))).toBe(sha256(image.layer));

    await expect(store.getManifest('no-such-tag')).rejects.toMatchObject({ status: 404, code: 'MANIFEST_UNKNOWN' });
    await expect(store.blobSize(sha256(randomBytes(8)))).rejects.toMatchObject({ status: 404 });
  });

  it('uploads large blobs in PATCH chunks with Content-Range', async () => {
    const name = repo('chunked');
    const store = ctx.client({ chunkedUploadThreshold: 1024 * 1024, uploadChunkSize: 1024 * 1024 }).repository(`${PLAIN}/${name}`);
    const blob = randomBytes(3.5 * 1024 * 1024);
    const since = logSize('registry');
    const path = join(ctx.work, 'chunked.bin');
    writeFileSync(path, blob);
    expect(await store.putBlob({ digest: sha256(blob), size: blob.length }, { path })).toBe('uploaded');
    expect(logLines('registry', since, `"PATCH /v2/${name}/blobs/uploads/`)).toHaveLength(4);
    expect(sha256(await readAll(await store.getBlob(sha256(blob))))).toBe(sha256(blob));
  });

  it('pushes from a one-shot stream of known size and digest', async () => {
    const store = ctx.client().repository(`${PLAIN}/${repo('stream')}`);
    const blob = randomBytes(200_000);
    async function* pieces() {
      for (let i = 0; i < blob.length; i += 65_536) yield blob.subarray(i, i + 65_536);
    }
    expect(await store.putBlob({ digest: sha256(blob), size: blob.length }, pieces())).toBe('uploaded');
    expect(sha256(await readAll(await store.getBlob(sha256(blob))))).toBe(sha256(blob));
  });

  it('mounts across repositories of one registry and uploads when the mount is refused', async () => {
    const c = ctx.client();
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
    expect(sha256(await readAll(await to.getBlob(sha256(other))))).toBe(sha256(other));
  });

  it('reads exact byte ranges', async () => {
    const store = ctx.client().repository(`${PLAIN}/${repo('range')}`);
    const blob = randomBytes(100_000);
    const digest = sha256(blob);
    await store.putBlob({ digest, size: blob.length }, blob);
    expect(await store.getBlobRange(digest, 1000, 1000)).toEqual(blob.subarray(1000, 2000));
    expect(await store.getBlobRange(digest, 99_990, 10)).toEqual(blob.subarray(99_990));
    expect(await store.getBlobRange(digest, 0, 0)).toEqual(Buffer.alloc(0));
    await expect(store.getBlobRange(digest, 100_000, 10)).rejects.toThrow(/bytes=100000-100009 is outside blob sha256:\w+ \(the blob is 100000 bytes\)/);
  });

  it('reads a blob\'s tail and size in one suffix range, the whole blob when it is shorter', async () => {
    const store = ctx.client().repository(`${PLAIN}/${repo('tail')}`);
    const blob = randomBytes(100_000);
    const digest = sha256(blob);
    await store.putBlob({ digest, size: blob.length }, blob);
    const since = logSize('registry');
    expect(await store.getBlobTail(digest, 4096)).toEqual({ bytes: blob.subarray(100_000 - 4096), size: 100_000 });
    expect(logLines('registry', since, `"GET /v2/`)).toHaveLength(1);
    expect(await store.getBlobTail(digest, 1 << 20)).toEqual({ bytes: blob, size: 100_000 });
    await expect(store.getBlobTail(digest, 0)).rejects.toThrow(RangeError);
  });

  it('selects a platform from a pushed index and lists them all', async () => {
    const store = ctx.client().repository(`${PLAIN}/${repo('index')}`);
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
    const store = ctx.client().repository(`${PLAIN}/${repo('corrupt')}`);
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
    const store = ctx.client().repository(`${PLAIN}/${repo('manifest-digest')}`);
    const image = makeImage(1000);
    await pushImage(store, image, 'v1');
    const wrong = sha256(randomBytes(4));
    await expect(store.getManifest(wrong)).rejects.toMatchObject({ status: 404 });
    expect((await store.getManifest(image.manifestDigest)).digest).toBe(image.manifestDigest);
  });
});

describe('retries and transport', () => {
  it('reports a registry that is down after bounded retries', async () => {
    const port = await unusedPort();
    const started = Date.now();
    const err = await ctx.client().repository(`127.0.0.1:${port}/x`).getManifest('latest').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryUnreachableError);
    expect((err as Error).message).toMatch(new RegExp(`^registry 127\\.0\\.0\\.1:${port} unreachable: connect ECONNREFUSED 127\\.0\\.0\\.1:${port} \\(3 attempts\\)$`));
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('retries 5xx answers with backoff, then succeeds; gives up with the last error after the bounded attempts', async () => {
    const store = ctx.client().repository(`${PLAIN}/${repo('flaky')}`);
    const image = makeImage(1000);
    await pushImage(store, image, 'v1');
    let failures = 2;
    let requests = 0;
    const flaky = await startServer((req, res) => {
      requests++;
      if (failures-- > 0) return void res.writeHead(503, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}');
      forward(req, res, PLAIN);
    });
    ctx.track(flaky);
    const viaFlaky = ctx.client().repository(`${flaky.host}/${repo('flaky')}`);
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
    ctx.track(flaky);
    const store = ctx.client().repository(`${flaky.host}/${repo('upload-restart')}`);
    const blob = randomBytes(20_000);
    const path = join(ctx.work, 'restart.bin');
    writeFileSync(path, blob);
    expect(await store.putBlob({ digest: sha256(blob), size: blob.length }, { path })).toBe('uploaded');
    expect(failPut).toBe(false);
    expect(sha256(await readAll(await store.getBlob(sha256(blob))))).toBe(sha256(blob));
  });

  it('slices a 200 answer to a range request from a server that ignores Range', async () => {
    const blob = randomBytes(300_000);
    const digest = sha256(blob);
    const server = await startServer((req, res) => {
      if (req.url === `/v2/ignores/range/blobs/${digest}`) return void res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
      res.writeHead(404).end();
    });
    ctx.track(server);
    const store = ctx.client().repository(`${server.host}/ignores/range`);
    expect(await store.getBlobRange(digest, 123_456, 70_000)).toEqual(blob.subarray(123_456, 193_456));
    await expect(store.getBlobRange(digest, 299_000, 2_000)).rejects.toThrow(/past its end/);
  });

  it('is https unless told otherwise, verifies certificates unless insecure; a loopback registry answering in plain HTTP is asked so', async () => {
    const manifest = makeImage(10).manifest;
    const dir = join(e2eDir, 'registry');
    const server = createHttpsServer({ key: readFileSync(join(dir, 'token-key.pem')), cert: readFileSync(join(dir, 'token-cert.pem')) }, (req, res) => {
      if (req.url === '/v2/tls/image/manifests/v1') return void res.writeHead(200, { 'content-type': MediaType.ociManifest }).end(manifest);
      if (req.url?.startsWith('/v2/tls/image/blobs/')) return void res.writeHead(307, { location: `http://${PLAIN}${req.url}` }).end();
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const once = { dockerConfig: false, retry: { ...fastRetry, attempts: 1 } } as const;
      const verifying = new RegistryClient(once);
      const insecure = new RegistryClient({ ...once, insecure: true });
      const plainForThatHost = new RegistryClient({ ...once, hosts: { [host]: { plainHttp: true } } });
      [verifying, insecure, plainForThatHost].forEach(ctx.track);
      await expect(verifying.repository(`${host}/tls/image`).getManifest('v1')).rejects.toThrow(`GET https://${host}/v2/tls/image/manifests/v1: self-signed certificate`);
      expect((await insecure.repository(`${host}/tls/image`).getManifest('v1')).digest).toBe(sha256(manifest));
      await expect(plainForThatHost.repository(`${host}/tls/image`).getManifest('v1')).rejects.toThrow();
      const blob = sha256(manifest);
      await expect(insecure.repository(`${host}/tls/image`).getBlob(blob)).rejects.toThrow(`refusing redirect from https to http://${PLAIN}/v2/tls/image/blobs/${blob}`);

      // the plain registry on :5000, a loopback one, is asked in plain HTTP once its handshake gets a plain answer (as containerd does)
      const name = repo('loopback-plain');
      await expect(verifying.repository(`${PLAIN}/${name}`).getManifest('v1')).rejects.toThrow(`GET http://${PLAIN}/v2/${name}/manifests/v1: 404 MANIFEST_UNKNOWN`);
      expect(logLines('registry', 0, name).length).toBeGreaterThan(0);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  // a plain-HTTP server on the machine's own non-loopback address (none: nothing to show)
  const external = Object.values(networkInterfaces()).flat().find((i) => i?.family === 'IPv4' && !i.internal)?.address;
  it.skipIf(external === undefined)(`regression: never falls back to plain HTTP for a host off loopback${external ? '' : ' (no non-loopback address here)'}`, async () => {
    const server = createHttpServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, external, resolve));
    const host = `${external}:${(server.address() as AddressInfo).port}`;
    let requests = 0;
    server.on('request', () => requests++);
    try {
      const client = ctx.track(new RegistryClient({ dockerConfig: false, retry: { ...fastRetry, attempts: 1 } }));
      const err = await client.repository(`${host}/x/y`).getManifest('v1').catch((e: unknown) => e);
      expect((err as Error).message).toBe(`GET https://${host}/v2/x/y/manifests/v1: TLS handshake failed: ${host} does not speak TLS (a plain-HTTP registry must be named as one; only a loopback one is asked in plain HTTP by itself)`);
      expect(requests).toBe(0);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('follows a blob redirect to another origin without the registry credentials', async () => {
    const blob = randomBytes(5_000);
    const digest = sha256(blob);
    const seenByStorage: (string | undefined)[] = [];
    const storage = ctx.track(
      await startServer((req, res) => {
        seenByStorage.push(req.headers.authorization);
        res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
      }),
    );
    const registry = ctx.track(
      await startServer((req, res) => {
        if (!req.headers.authorization) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' }).end();
        res.writeHead(307, { location: `http://${storage.host}/data?sig=1` }).end();
      }),
    );
    const store = ctx.client({ credentials: { [registry.host]: { username: 'u', password: 'p' } } }).repository(`${registry.host}/redirected`);
    expect(sha256(await readAll(await store.getBlob(digest)))).toBe(digest);
    expect(seenByStorage).toEqual([undefined]);
  });
});
