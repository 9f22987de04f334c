// The real distribution registry from scripts/e2e (registry-up.sh --auth) for end-to-end tests: plain
// :5000, basic auth :5001 (testuser/testpass), token server :5002 + token registry :5003. Images are made
// from random bytes and pushed to repositories named for one test file's run only.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import type { ImageStore } from '../../src/registry/image-store.js';
import { MediaType, type Descriptor, type ImageManifest } from '../../src/registry/media-types.js';
import type { RetryPolicy } from '../../src/registry/retry.js';
import { getLogLevel, setLogLevel } from '../../src/util/log.js';
import { E2E_DIR, e2eUp } from '../helpers/e2e.js';
import type { TestServer } from './http-fixtures.js';

export const e2eDir = E2E_DIR;
export const PLAIN = '127.0.0.1:5000';
export const BASIC = '127.0.0.1:5001';
export const TOKEN_SERVER = '127.0.0.1:5002';
export const TOKEN_REGISTRY = '127.0.0.1:5003';
export const USER = { username: 'testuser', password: 'testpass' };
export const fastRetry: RetryPolicy = { attempts: 3, baseDelayMs: 50, maxDelayMs: 200, maxElapsedMs: 5_000 };

export const run = randomBytes(4).toString('hex');
/** A repository name no other run (or test) uses. */
export const repo = (purpose: string) => `nydusify-ts-test/${purpose}-${run}`;

export const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const describeBlob = (mediaType: string, bytes: Buffer): Descriptor => ({ mediaType, digest: sha256(bytes), size: bytes.length });

export interface TestImage {
  layer: Buffer;
  config: Buffer;
  manifest: Buffer;
  manifestDigest: string;
}

/** A random layer, a config naming `arch`, and a manifest without a top-level mediaType (as umoci writes them). */
export function makeImage(layerSize = 64 * 1024, arch = 'amd64'): TestImage {
  const layer = randomBytes(layerSize);
  const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] }, nonce: randomBytes(8).toString('hex') }));
  const manifest: ImageManifest = { schemaVersion: 2, config: describeBlob(MediaType.ociConfig, config), layers: [describeBlob(MediaType.ociLayerGzip, layer)] };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return { layer, config, manifest: bytes, manifestDigest: sha256(bytes) };
}

export async function pushImage(store: ImageStore, image: TestImage, tag?: string): Promise<string> {
  await store.putBlob({ digest: sha256(image.layer), size: image.layer.length }, image.layer);
  await store.putBlob({ digest: sha256(image.config), size: image.config.length }, image.config);
  return store.putManifest(image.manifest, MediaType.ociManifest, tag);
}

/** All of a stream. Compare results by digest: vitest's deep equality walks a Buffer byte by byte, seconds per MiB. */
export async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const logPath = (name: string) => join(e2eDir, 'logs', `${name}.log`);
/** Bytes in an e2e daemon's log now, to read only what comes after. */
export const logSize = (name: string) => readFileSync(logPath(name)).length;
/** Lines of an e2e daemon's log written after byte `since` that contain `needle`. */
export function logLines(name: string, since: number, needle: string): string[] {
  return readFileSync(logPath(name)).subarray(since).toString('utf8').split('\n').filter((line) => line.includes(needle));
}

export interface RegistryTestContext {
  /** A scratch directory, removed after the file's tests. */
  work: string;
  /** A client for the loopback registries (plain HTTP, no docker config, fast retries), closed after the tests. */
  client(options?: RegistryClientOptions): RegistryClient;
  /** Closes `resource` (a test server or a client) after the tests. */
  track<T extends TestServer | RegistryClient>(resource: T): T;
}

/** Starts the registries before the file's tests (idempotent) and cleans up after them. */
export function useRegistries(): RegistryTestContext {
  const work = mkdtempSync(join(tmpdir(), 'nydusify-registry-'));
  const resources: (TestServer | RegistryClient)[] = [];
  const logLevel = getLogLevel();
  beforeAll(() => {
    e2eUp('registry-up.sh', ['--auth']);
    setLogLevel('error'); // retries warn by design; the tests check what they do
  }, 60_000);
  afterAll(async () => {
    setLogLevel(logLevel);
    await Promise.all(resources.map((r) => r.close()));
    rmSync(work, { recursive: true, force: true });
  });
  const track = <T extends TestServer | RegistryClient>(resource: T): T => {
    resources.push(resource);
    return resource;
  };
  return {
    work,
    track,
    client: (options = {}) => track(new RegistryClient({ plainHttp: true, dockerConfig: false, retry: fastRetry, ...options })),
  };
}
