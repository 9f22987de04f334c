// A Nydus image in an image store (registry or OCI layout): its manifest checked against the
// Nydus conventions, its bootstrap pulled from the last layer, its blobs read by range.
import { createGunzip } from 'node:zlib';
import type { BlobBackend } from '../blobcache/backend.js';
import { ChunkReader } from '../blobcache/chunk-reader.js';
import { parseTar } from '../convert/tar/parse.js';
import { RafsImage } from '../rafs/reader.js';
import { RegistryClient } from '../registry/client.js';
import { openImageStore, resolveImage, type ImageStore } from '../registry/image-store.js';
import { parseReference } from '../registry/reference.js';
import type { ImageManifest } from '../registry/media-types.js';
import { BOOTSTRAP_PATH, isNydusBlob, isNydusBootstrap } from './nydus-image.js';

/** Serves blob ranges from an image store, so the chunk reader (and later the cache) can use it. */
export class StoreBackend implements BlobBackend {
  constructor(private readonly store: ImageStore) {}

  readRange(blobId: string, offset: number, length: number, progress?: (buf: Buffer, filled: number) => void, signal?: AbortSignal): Promise<Buffer> {
    return this.store.getBlobRange(`sha256:${blobId}`, offset, length, progress, signal);
  }

  size(blobId: string): Promise<number> {
    return this.store.blobSize(`sha256:${blobId}`);
  }

  async close(): Promise<void> {}
}

export interface RemoteNydusImage {
  manifest: ImageManifest;
  bootstrap: Buffer;
  rafs: RafsImage;
  chunks: ChunkReader;
}

/** Problems with a manifest as a Nydus image (empty when it is one). */
export function nydusManifestProblems(manifest: ImageManifest, diffIds: unknown): string[] {
  const problems: string[] = [];
  const layers = manifest.layers;
  const last = layers[layers.length - 1];
  if (!last || !isNydusBootstrap(last)) problems.push('the last layer is not a Nydus bootstrap layer (annotation containerd.io/snapshot/nydus-bootstrap=true)');
  layers.slice(0, -1).forEach((l, i) => {
    if (!isNydusBlob(l)) problems.push(`layer ${i + 1} (${l.digest}) is not a Nydus blob layer`);
  });
  if (!Array.isArray(diffIds) || diffIds.length !== layers.length) problems.push(`config rootfs.diff_ids has ${Array.isArray(diffIds) ? diffIds.length : 'no'} entries for ${layers.length} layers`);
  else layers.slice(0, -1).forEach((l, i) => {
    if (diffIds[i] !== l.digest) problems.push(`diff_id ${i + 1} is ${String(diffIds[i])}, the blob layer is ${l.digest}`);
  });
  return problems;
}

export async function openRemoteNydusImage(store: ImageStore, reference: string | undefined, platform?: string): Promise<RemoteNydusImage & { problems: string[] }> {
  const { manifest } = await resolveImage(store, reference, platform);
  const last = manifest.parsed.layers[manifest.parsed.layers.length - 1];
  if (!last) throw new Error(`${store.name}: the manifest has no layers`);
  // both at once: a mount waits for them, and each is a round trip
  const [configBytes, bootstrap] = await Promise.all([store.getBlob(manifest.parsed.config.digest).then(readAll), extractBootstrap(store, last.digest)]);
  const config = JSON.parse(configBytes.toString('utf8')) as { rootfs?: { diff_ids?: unknown } };
  const problems = nydusManifestProblems(manifest.parsed, config.rootfs?.diff_ids);
  const rafs = RafsImage.open(bootstrap);
  const inManifest = new Set(manifest.parsed.layers.map((l) => l.digest));
  for (const blob of rafs.blobs) {
    if (!inManifest.has(`sha256:${blob.blobId}`)) problems.push(`the bootstrap refers to blob ${blob.blobId}, which is not a layer of the image`);
  }
  return { manifest: manifest.parsed, bootstrap, rafs, chunks: new ChunkReader(new StoreBackend(store), rafs.blobs), problems };
}

/** `image/image.boot` (or `image.boot`) from a gzip tar layer. */
async function extractBootstrap(store: ImageStore, digest: string): Promise<Buffer> {
  const gunzip = (await store.getBlob(digest)).pipe(createGunzip());
  for await (const entry of parseTar(gunzip)) {
    const path = entry.path.replace(/^\.?\//, '');
    // awaited here: leaving the loop closes the stream the body is read from
    if (entry.type === 'file' && (path === BOOTSTRAP_PATH || path === 'image.boot')) return await entry.readAll(1 << 30);
  }
  throw new Error(`${store.name}: layer ${digest} has no ${BOOTSTRAP_PATH}`);
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p);
  return Buffer.concat(parts);
}

/** A registry host to read blobs from before the image's own registry. */
export interface RegistryMirror {
  host: string;
  plainHttp?: boolean;
  insecure?: boolean;
}

export interface RegistryAccess {
  plainHttp?: boolean;
  insecure?: boolean;
  /** Retries per request (with backoff) before a backend gives up. */
  retries?: number;
  mirrors?: readonly RegistryMirror[];
}

export interface ConnectedNydusImage {
  image: RemoteNydusImage & { problems: string[] };
  /** Where its blobs can be read, most preferred first: each mirror, then the image's registry. */
  backends: BlobBackend[];
  close(): Promise<void>;
}

/** A Nydus image in a registry, opened for lazy reading of its blobs (through mirrors first, if any). */
export async function connectNydusImage(target: string, access: RegistryAccess = {}): Promise<ConnectedNydusImage> {
  const ref = parseReference(target);
  const hosts: Record<string, { plainHttp?: boolean; insecure?: boolean }> = { [ref.host]: { plainHttp: access.plainHttp, insecure: access.insecure } };
  for (const m of access.mirrors ?? []) hosts[m.host] = { plainHttp: m.plainHttp, insecure: m.insecure };
  const client = new RegistryClient({ hosts, retry: { attempts: (access.retries ?? 3) + 1 } });
  try {
    const { store, reference } = await openImageStore({ kind: 'registry', ...ref }, client);
    const image = await openRemoteNydusImage(store, reference);
    const mirrors = (access.mirrors ?? []).map((m) => new StoreBackend(client.repository({ ...ref, host: m.host })));
    return { image, backends: [...mirrors, new StoreBackend(store)], close: () => client.close() };
  } catch (err) {
    await client.close();
    throw err;
  }
}
