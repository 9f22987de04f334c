// A plain OCI image (gzip layers, unmodified) served lazily through a gzip index: an OCI artifact
// beside the image, found through the referrers of its manifest, holding for each layer a RAFS
// layer bootstrap whose one blob is that layer with its checkpoints (convert/targz-ref.ts). `index`
// builds and pushes it; a mount finds it, checks each layer bootstrap against the layer it claims,
// and merges them as a stargz image's layer models are merged. Reading goes through the same chunk
// path: a chunk is decoded from its checkpoint and checked against its sha256.
//
// The index is the image owner's metadata, trusted as the manifest is: chunk digests come from it.
// What it may not do is reach outside the image: every layer bootstrap must read its own layer, and
// nothing else, and the cache checks every hit against the reader's own digests (cache.ts).
import type { BuiltBootstraps } from '../blobcache/built-bootstraps.js';
import { DEFAULT_SPAN, gzipLayerModel } from '../convert/targz-ref.js';
import { compress, decompress } from '../native/index.js';
import { BlobFeature } from '../rafs/blob-table.js';
import { RafsImage } from '../rafs/reader.js';
import type { Bootstrap } from '../rafs/tree.js';
import { writeBootstrap } from '../rafs/writer.js';
import { indexedChainBootstrap } from './stargz-image.js';
import { computeDigest } from '../registry/digest.js';
import { readBlob, type FetchedManifest, type ImageStore } from '../registry/image-store.js';
import { type Descriptor, type ImageManifest, MediaType } from '../registry/media-types.js';
import { findReferrers, pushReferrer } from '../registry/referrers.js';
import { forEachLimited } from '../util/concurrency.js';
import { log } from '../util/log.js';

export const GZIP_INDEX_ARTIFACT_TYPE = 'application/vnd.nydusify-ts.gzip-index.v1';
/** A layer bootstrap, zstd-compressed. */
export const GZIP_INDEX_LAYER_MEDIA_TYPE = 'application/vnd.nydusify-ts.gzip-index.layer.v1.rafs+zstd';
/** On each index layer: the image layer (digest) its bootstrap serves. */
export const INDEXED_LAYER_ANNOTATION = 'org.nydusify-ts.gzip-index.layer';
const EMPTY_CONFIG: Descriptor = { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 };
/** The largest layer bootstrap an index may hold, compressed and not. */
const MAX_LAYER_BOOTSTRAP = 256 << 20;
/** Bumped whenever the bootstrap built from the same index would change. */
const BUILD_VERSION = 'nydusify-ts gzip index chain 1';
const GZIP_LAYER_TYPES = new Set<string>([MediaType.ociLayerGzip, MediaType.dockerLayerGzip]);

/** A plain image with no gzip index (nor SOCI index): it cannot be mounted lazily (`index --push` makes one). */
export class NoGzipIndexError extends Error {
  constructor(readonly store: string, readonly image: string) {
    super(`${store}: image ${image} is a plain OCI image with no gzip index (nor SOCI index) to serve it lazily (make one: nydusify-ts index --source REF --push)`);
    this.name = 'NoGzipIndexError';
  }
}

/** Whether every layer is a plain gzip layer (what a gzip index serves). */
export const isPlainGzipImage = (layers: readonly Descriptor[]): boolean => layers.length > 0 && layers.every((l) => GZIP_LAYER_TYPES.has(l.mediaType));

export interface GzipIndexOptions {
  chunkSize: number;
  span?: number;
  /** Layers indexed at once (each one streams its whole layer once). */
  parallel?: number;
}

export interface GzipIndexResult {
  /** The index manifest and its digest (pushed or not). */
  manifest: Buffer;
  digest: string;
  layers: { layer: string; layerSize: number; indexSize: number; chunks: number; checkpoints: number }[];
  /** The index's blobs over the image's layers, in bytes. */
  indexBytes: number;
  layerBytes: number;
}

/**
 * Streams each layer of the image `image` (a fetched manifest of `store`) once and builds its layer
 * bootstrap; pushes them and the index manifest (a referrer of the image) when `push` is set.
 */
export async function buildGzipIndex(store: ImageStore, image: FetchedManifest, opts: GzipIndexOptions & { push?: boolean }): Promise<GzipIndexResult> {
  if (image.kind !== 'manifest') throw new Error(`${store.name}: ${image.digest} is an index, not an image manifest`);
  const layers = image.parsed.layers;
  const notGzip = layers.filter((l) => !GZIP_LAYER_TYPES.has(l.mediaType));
  if (layers.length === 0 || notGzip.length > 0) {
    throw new Error(`${store.name}: a gzip index serves images of gzip layers only; ${notGzip.map((l) => `${l.digest} is ${l.mediaType}`).join(', ') || 'the image has no layers'}`);
  }
  const blobs: { descriptor: Descriptor; bytes: Buffer; chunks: number; checkpoints: number }[] = new Array(layers.length);
  await forEachLimited([...layers.entries()], opts.parallel ?? 2, async ([i, layer]) => {
    const { model, stats } = await gzipLayerModel({
      source: await store.getBlob(layer.digest), blobSize: layer.size, blobId: layer.digest.slice('sha256:'.length), chunkSize: opts.chunkSize, span: opts.span ?? DEFAULT_SPAN,
    });
    const bytes = compress('zstd', writeBootstrap(model), 9);
    const descriptor: Descriptor = {
      mediaType: GZIP_INDEX_LAYER_MEDIA_TYPE, digest: computeDigest(bytes), size: bytes.length,
      annotations: { [INDEXED_LAYER_ANNOTATION]: layer.digest },
    };
    blobs[i] = { descriptor, bytes, chunks: stats.chunks, checkpoints: stats.checkpoints };
    log.info('layer indexed', { layer: layer.digest, layerSize: layer.size, indexSize: bytes.length, ...stats });
  });
  const manifest: ImageManifest & { mediaType: string } = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: GZIP_INDEX_ARTIFACT_TYPE,
    config: EMPTY_CONFIG,
    layers: blobs.map((b) => b.descriptor),
    subject: { mediaType: image.mediaType, digest: image.digest, size: image.bytes.length },
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  if (opts.push) {
    await store.putBlob(EMPTY_CONFIG, Buffer.from('{}'));
    for (const b of blobs) await store.putBlob(b.descriptor, b.bytes);
    await pushReferrer(store, bytes, MediaType.ociManifest);
  }
  return {
    manifest: bytes,
    digest: computeDigest(bytes),
    layers: blobs.map((b, i) => ({ layer: layers[i]!.digest, layerSize: layers[i]!.size, indexSize: b.bytes.length, chunks: b.chunks, checkpoints: b.checkpoints })),
    indexBytes: blobs.reduce((n, b) => n + b.bytes.length, 0),
    layerBytes: layers.reduce((n, l) => n + l.size, 0),
  };
}

/** An index manifest found for an image. */
export interface GzipIndex {
  parsed: ImageManifest;
  digest: string;
}

/**
 * The gzip index of image manifest `subject` (the newest one that covers every layer, by its
 * position in the referrers list), read and checked; undefined when the image has none.
 */
export async function findGzipIndex(store: ImageStore, subject: string, layers: readonly Descriptor[]): Promise<GzipIndex | undefined> {
  const found = await findReferrers(store, subject, GZIP_INDEX_ARTIFACT_TYPE);
  for (const d of [...found].reverse()) {
    const fetched = await store.getManifest(d.digest);
    if (fetched.kind !== 'manifest') continue;
    const problem = indexProblem(fetched.parsed, subject, layers);
    if (!problem) return { parsed: fetched.parsed, digest: fetched.digest };
    log.warn('gzip index skipped', { image: store.name, index: d.digest, problem });
  }
  return undefined;
}

/** Why an index cannot serve these layers of the image it names (undefined when it can). */
function indexProblem(index: ImageManifest, subject: string, layers: readonly Descriptor[]): string | undefined {
  if (index.artifactType !== GZIP_INDEX_ARTIFACT_TYPE) return `artifact type ${String(index.artifactType)}`;
  if (index.subject?.digest !== subject) return `its subject is ${String(index.subject?.digest)}`;
  const indexed = new Map(index.layers.map((l) => [l.annotations?.[INDEXED_LAYER_ANNOTATION], l]));
  const missing = layers.filter((l) => indexed.get(l.digest)?.mediaType !== GZIP_INDEX_LAYER_MEDIA_TYPE);
  return missing.length > 0 ? `no layer bootstrap for ${missing.map((l) => l.digest).join(', ')}` : undefined;
}

/** One image layer's model from its index layer: fetched, decompressed and checked to read that layer only. */
async function layerModel(store: ImageStore, index: ImageManifest, layer: Descriptor): Promise<Bootstrap> {
  const entry = index.layers.find((l) => l.annotations?.[INDEXED_LAYER_ANNOTATION] === layer.digest)!;
  const bytes = decompress('zstd', await readBlob(store, entry, MAX_LAYER_BOOTSTRAP), { maxSize: MAX_LAYER_BOOTSTRAP });
  const rafs = RafsImage.open(bytes);
  const wrong = rafs.blobs.find((b) => `sha256:${b.blobId}` !== layer.digest || b.compressedSize !== layer.size || !(b.features & BlobFeature.CHECKPOINTS));
  if (wrong) throw new Error(`${store.name}: the gzip index's bootstrap for layer ${layer.digest} reads blob sha256:${wrong.blobId} (${wrong.compressedSize} bytes), not that layer`);
  return rafs.toBootstrap();
}

/**
 * A plain gzip image's bootstrap from its gzip index (of the layers up to `upToLayer`, when given):
 * kept in `built` for exactly this index and these layers, else built (and kept there).
 */
export function gzipIndexImageBootstrap(
  store: ImageStore, manifest: ImageManifest, index: GzipIndex, upToLayer?: string, built?: BuiltBootstraps,
): Promise<{ bootstrap: Buffer; rafs: RafsImage }> {
  const readModel = (layer: Descriptor): Promise<Bootstrap> => layerModel(store, index.parsed, layer);
  return indexedChainBootstrap(store, manifest, { build: BUILD_VERSION, digest: index.digest }, readModel, upToLayer, built);
}
