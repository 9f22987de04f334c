// A Nydus image in an image store (registry or OCI layout): its manifest checked against the
// Nydus conventions, its bootstrap pulled from the last layer, its blobs read by range.
import { createGunzip } from 'node:zlib';
import type { BlobBackend } from '../blobcache/backend.js';
import type { BuiltBootstraps } from '../blobcache/built-bootstraps.js';
import { ChunkReader } from '../blobcache/chunk-reader.js';
import { EarlyRangeBackend } from '../blobcache/early-range.js';
import { StoreBackend } from '../blobcache/store-backend.js';
import { parseTar } from '../convert/tar/parse.js';
import { RafsImage } from '../rafs/reader.js';
import { findGzipIndex, type GzipIndex, gzipIndexImageBootstrap, isPlainGzipImage, NoGzipIndexError } from './gzip-index.js';
import { findSociIndex, type SociIndex, sociImageBootstrap } from './soci-index.js';
import { isStargzImage, stargzImageBootstrap } from './stargz-image.js';
import { RegistryClient } from '../registry/client.js';
import type { ProxyOptions } from '../registry/transport.js';
import { MAX_CONFIG_BYTES, readBlob, resolveImage, type ImageStore } from '../registry/image-store.js';
import { openImageStore } from '../registry/open-image-store.js';
import { parseReference } from '../registry/reference.js';
import type { Descriptor, ImageManifest } from '../registry/media-types.js';
import { Annotation, BOOTSTRAP_PATH, hotRegionBytes, isNydusBlob, isNydusBootstrap, NYDUS_BLOB_MEDIA_TYPE } from '../registry/nydus-layers.js';
import { type HotPackIndex, hotPackBytes, parseHotPackIndex } from '../rafs/hot-pack.js';
import { log } from '../util/log.js';
import { isStargzLayer } from '../registry/stargz-layers.js';

export interface RemoteNydusImage {
  manifest: ImageManifest;
  bootstrap: Buffer;
  rafs: RafsImage;
  chunks: ChunkReader;
}

/**
 * Problems with a manifest as a Nydus image (empty when it is one). A data layer is a Nydus blob, or
 * a stargz-family layer kept as it is (`convert --keep-stargz`), whose diff_id is its own (the digest
 * of its uncompressed tar, not checked here: that takes the whole layer).
 */
export function nydusManifestProblems(manifest: ImageManifest, diffIds: unknown): string[] {
  const problems: string[] = [];
  const layers = manifest.layers;
  const last = layers[layers.length - 1];
  if (!last || !isNydusBootstrap(last)) problems.push('the last layer is not a Nydus bootstrap layer (annotation containerd.io/snapshot/nydus-bootstrap=true)');
  layers.slice(0, -1).forEach((l, i) => {
    if (!isNydusBlob(l) && !isStargzLayer(l)) problems.push(`layer ${i + 1} (${l.digest}) is neither a Nydus blob layer nor an eStargz / zstd:chunked layer`);
  });
  if (!Array.isArray(diffIds) || diffIds.length !== layers.length) problems.push(`config rootfs.diff_ids has ${Array.isArray(diffIds) ? diffIds.length : 'no'} entries for ${layers.length} layers`);
  else layers.slice(0, -1).forEach((l, i) => {
    if (isNydusBlob(l) ? diffIds[i] !== l.digest : !isSha256Digest(diffIds[i])) problems.push(`diff_id ${i + 1} is ${String(diffIds[i])}, the layer is ${l.digest}`);
  });
  return problems;
}

const isSha256Digest = (d: unknown): boolean => typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d);

/** The largest bootstrap (and bootstrap layer, compressed) an image may have. */
const MAX_BOOTSTRAP_BYTES = 1 << 30;
/** An image config is JSON of a few KiB; a larger one is a broken or hostile registry. */

/**
 * A Nydus image (data blob layers and a bootstrap layer), an image whose every layer is eStargz or
 * zstd:chunked (stargz-image.ts), or a plain gzip image with a gzip index (gzip-index.ts): either way
 * a verified bootstrap and the blobs it reads. A stargz or indexed image's bootstrap is built from
 * its TOCs or index, or taken from `built` when it was built before.
 */
export async function openRemoteNydusImage(
  store: ImageStore, reference: string | undefined, platform?: string, upToLayer?: string, built?: BuiltBootstraps, onFetched?: (manifest: ImageManifest) => void,
): Promise<RemoteNydusImage & { problems: string[] }> {
  const { manifest } = await resolveImage(store, reference, platform);
  const layers = manifest.parsed.layers;
  if (isStargzImage(layers)) {
    const { bootstrap, rafs } = await stargzImageBootstrap(store, manifest.parsed, upToLayer, built);
    return { manifest: manifest.parsed, bootstrap, rafs, chunks: new ChunkReader(new StoreBackend(store), rafs.blobs), problems: [] };
  }
  if (isPlainGzipImage(layers) && !layers.some(isNydusBootstrap)) {
    const { bootstrap, rafs } = await indexedImageBootstrap(store, manifest, upToLayer, built);
    return { manifest: manifest.parsed, bootstrap, rafs, chunks: new ChunkReader(new StoreBackend(store), rafs.blobs), problems: [] };
  }
  if (upToLayer !== undefined) throw new Error(`${store.name}: only a stargz-family or gzip-indexed image is served up to a layer`);
  const last = layers[layers.length - 1];
  if (!last) throw new Error(`${store.name}: the manifest has no layers`);
  // both at once: a mount waits for them, and each is a round trip
  const [configBytes, bootstrapLayer] = await Promise.all([readBlob(store, manifest.parsed.config, MAX_CONFIG_BYTES), readBlob(store, last, MAX_BOOTSTRAP_BYTES)]);
  onFetched?.(manifest.parsed);
  const bootstrap = await extractBootstrap(store, last, bootstrapLayer);
  const config = JSON.parse(configBytes.toString('utf8')) as { rootfs?: { diff_ids?: unknown } };
  const problems = nydusManifestProblems(manifest.parsed, config.rootfs?.diff_ids);
  const rafs = RafsImage.open(bootstrap);
  // the bootstrap says which blobs to read; only the image's own data layers may be among them, or one
  // image could make the daemon read (and cache, and serve) another image's blobs
  const dataLayers = new Set(layers.slice(0, -1).map((l) => l.digest));
  const foreign = rafs.blobs.map((b) => b.blobId).filter((id) => !dataLayers.has(`sha256:${id}`));
  if (foreign.length) throw new Error(`${store.name}: the bootstrap refers to blob ${foreign.join(', ')}, which is not a data layer of the image`);
  return { manifest: manifest.parsed, bootstrap, rafs, chunks: new ChunkReader(new StoreBackend(store), rafs.blobs), problems };
}

/** The index a plain gzip image is served lazily through: its gzip index (ours), else its SOCI index; undefined when it has neither. */
export async function findPlainImageIndex(
  store: ImageStore, manifest: { digest: string; parsed: ImageManifest },
): Promise<{ kind: 'gzip'; index: GzipIndex } | { kind: 'soci'; index: SociIndex } | undefined> {
  const index = await findGzipIndex(store, manifest.digest, manifest.parsed.layers);
  if (index) return { kind: 'gzip', index };
  const soci = await findSociIndex(store, manifest.digest, manifest.parsed);
  return soci ? { kind: 'soci', index: soci } : undefined;
}

/** A plain gzip image's bootstrap from the index findPlainImageIndex finds. */
async function indexedImageBootstrap(store: ImageStore, manifest: { digest: string; parsed: ImageManifest }, upToLayer?: string, built?: BuiltBootstraps): Promise<{ bootstrap: Buffer; rafs: RafsImage }> {
  const found = await findPlainImageIndex(store, manifest);
  if (!found) throw new NoGzipIndexError(store.name, manifest.digest);
  return found.kind === 'gzip'
    ? gzipIndexImageBootstrap(store, manifest.parsed, found.index, upToLayer, built)
    : sociImageBootstrap(store, manifest.parsed, found.index, upToLayer, built);
}

/**
 * `image/image.boot` (or `image.boot`) from a gzip tar layer, read whole by readBlob, which checked it
 * against its digest: nothing of it is unpacked, let alone mounted, unless it is the layer the manifest names.
 */
async function extractBootstrap(store: ImageStore, layer: Descriptor, bytes: Buffer): Promise<Buffer> {
  const gunzip = createGunzip();
  gunzip.end(bytes);
  for await (const entry of parseTar(gunzip)) {
    const path = entry.path.replace(/^\.?\//, '');
    // awaited here: leaving the loop closes the stream the body is read from
    if (entry.type === 'file' && (path === BOOTSTRAP_PATH || path === 'image.boot')) return await entry.readAll(MAX_BOOTSTRAP_BYTES);
    // skipping an entry inflates it: a gzip bomb ahead of the bootstrap ends the search, not the machine
    if (entry.dataOffset + entry.size > MAX_BOOTSTRAP_BYTES) break;
  }
  throw new Error(`${store.name}: layer ${layer.digest} has no ${BOOTSTRAP_PATH}`);
}

/** A registry host to read blobs from before the image's own registry. */
export interface RegistryMirror {
  host: string;
  plainHttp?: boolean;
  insecure?: boolean;
  /** Sent with every request to the mirror (nydusd's mirror headers: Dragonfly's X-Dragonfly-Registry). */
  headers?: Record<string, string>;
}

export interface RegistryAccess {
  plainHttp?: boolean;
  insecure?: boolean;
  /** Retries per request (with backoff) before a backend gives up. */
  retries?: number;
  mirrors?: readonly RegistryMirror[];
  /**
   * Credentials for `host` (default: the image's registry), over those of the docker config: a user
   * and password, or a bearer token sent as it is (nydusd's registry_token).
   */
  auth?: { host?: string } & ({ username: string; password: string } | { registryToken: string });
  /** Every request through this forward proxy (else the environment's HTTP_PROXY / HTTPS_PROXY). */
  proxy?: ProxyOptions;
}

export interface ConnectedNydusImage {
  image: RemoteNydusImage & { problems: string[] };
  /** Where its blobs can be read, most preferred first: each mirror, then the image's registry. */
  backends: BlobBackend[];
  /** Lets go of the hot regions read ahead since the manifest came (see early-range.ts). */
  releaseEarly(): void;
  close(): Promise<void>;
}

/** Each blob's declared hot region (an optimized image's): its compressed bytes at the blob's start, by blob id. */
export function hotRegions(manifest: ImageManifest): Map<string, number> {
  const hot = new Map<string, number>();
  for (const layer of manifest.layers) {
    const bytes = hotRegionBytes(layer);
    if (bytes !== undefined && layer.digest.startsWith('sha256:')) hot.set(layer.digest.slice('sha256:'.length), bytes);
  }
  return hot;
}

/** A hot pack (rafs/hot-pack.ts) an optimized image's manifest declares: its layer's blob id and frames. */
export interface HotPackLayer {
  packId: string;
  index: HotPackIndex;
}

/**
 * The hot pack of each blob with a hot region, by that blob's id: a pack layer whose annotation
 * parses and whose size is its frames' (an annotation is untrusted; a bad one declares no pack, and
 * the region is streamed from the hot blob).
 */
export function hotPacks(manifest: ImageManifest): Map<string, HotPackLayer> {
  const regions = hotRegions(manifest);
  const packs = new Map<string, HotPackLayer>();
  for (const layer of manifest.layers) {
    const text = layer.annotations?.[Annotation.HOT_PACK];
    if (text === undefined || !/^sha256:[0-9a-f]{64}$/.test(layer.digest)) continue;
    try {
      const index = parseHotPackIndex(text);
      if (regions.has(index.blobId) && hotPackBytes(index) === layer.size) packs.set(index.blobId, { packId: layer.digest.slice('sha256:'.length), index });
    } catch (err) {
      log.warn('hot pack annotation ignored', { layer: layer.digest, error: (err as Error).message });
    }
  }
  return packs;
}

/** A registry client for `target`'s registry and the access's mirrors. */
export function registryClientFor(target: string, access: RegistryAccess = {}): RegistryClient {
  const ref = parseReference(target);
  const hosts: Record<string, { plainHttp?: boolean; insecure?: boolean }> = { [ref.host]: { plainHttp: access.plainHttp, insecure: access.insecure } };
  for (const m of access.mirrors ?? []) hosts[m.host] = { plainHttp: m.plainHttp, insecure: m.insecure, ...(m.headers ? { headers: m.headers } : {}) };
  const auth = access.auth;
  const credentials = auth ? { [auth.host ?? ref.host]: 'registryToken' in auth ? { registryToken: auth.registryToken } : { username: auth.username, password: auth.password } } : undefined;
  return new RegistryClient({ hosts, retry: { attempts: (access.retries ?? 3) + 1 }, ...(credentials ? { credentials } : {}), ...(access.proxy ? { proxy: access.proxy } : {}) });
}

/**
 * A Nydus (or stargz) image in a registry, opened for lazy reading of its blobs (through mirrors
 * first, if any); a stargz chain's bootstrap kept in `built` is used, one built is kept there.
 */
/** `earlyHotRegions`: read each hot region ahead from the moment the manifest is known (a mount that streams them). */
export async function connectNydusImage(target: string, access: RegistryAccess = {}, upToLayer?: string, built?: BuiltBootstraps, earlyHotRegions = false, platform?: string): Promise<ConnectedNydusImage> {
  const ref = parseReference(target);
  const client = registryClientFor(target, access);
  try {
    const { store, reference } = await openImageStore({ kind: 'registry', ...ref }, client);
    const mirrors = (access.mirrors ?? []).map((m) => new StoreBackend(client.repository({ ...ref, host: m.host })));
    // an optimized image's hot regions are asked for once the bootstrap is in (its sizes are on the
    // manifest), through the backend tried first, while the bootstrap is opened and the mount made
    const early = new EarlyRangeBackend(mirrors[0] ?? new StoreBackend(store));
    const image = await openRemoteNydusImage(store, reference, platform, upToLayer, built, (manifest) => {
      if (!earlyHotRegions) return;
      // a region with a pack is fetched as the pack
      const packs = hotPacks(manifest);
      for (const [blobId, bytes] of hotRegions(manifest)) {
        const pack = packs.get(blobId);
        if (pack) early.start(pack.packId, hotPackBytes(pack.index));
        else early.start(blobId, bytes);
      }
    });
    const backends = [early, ...mirrors.slice(1), ...(mirrors.length > 0 ? [new StoreBackend(store)] : [])];
    return { image, backends, releaseEarly: () => early.release(), close: () => (early.release(), client.close()) };
  } catch (err) {
    await client.close();
    throw err;
  }
}

/**
 * A local bootstrap whose blobs are read lazily from a registry repository (`host[:port]/repo`), as
 * nydusd reads them with a registry backend naming host and repo: no manifest, the bootstrap says
 * which blobs, each chunk is checked against the bootstrap's digest like any other. Its "manifest"
 * lists those blobs, sizes from the bootstrap, so the mount accounts for them as for an image's.
 */
export function connectBootstrap(bootstrap: Buffer, repository: string, access: RegistryAccess = {}): ConnectedNydusImage {
  const ref = parseReference(repository);
  const client = registryClientFor(repository, access);
  const store = client.repository(ref);
  const mirrors = (access.mirrors ?? []).map((m) => new StoreBackend(client.repository({ ...ref, host: m.host })));
  const rafs = RafsImage.open(bootstrap);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 0 },
    layers: rafs.blobs.map((b) => ({ mediaType: NYDUS_BLOB_MEDIA_TYPE, digest: `sha256:${b.blobId}`, size: b.compressedSize })),
  };
  const backends = [...mirrors, new StoreBackend(store)];
  return {
    image: { manifest, bootstrap, rafs, chunks: new ChunkReader(backends[0]!, rafs.blobs), problems: [] },
    backends,
    releaseEarly: () => undefined,
    close: () => client.close(),
  };
}
