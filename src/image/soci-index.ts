// A plain gzip image indexed by soci-snapshotter (a SOCI index), served lazily as SOCI serves it, with
// no index of ours: a SOCI v2 index is named by the image manifest's annotation, a v1 index refers
// to the image (OCI referrers). Its zTOCs, each checked against its descriptor, become layer models
// (convert/ztoc-ref.ts); a layer the index leaves out (soci indexes only layers of 10 MiB and more by
// default) is read once, whole, and indexed here (convert/targz-ref.ts), as SOCI pulls such layers.
// The models are merged as a stargz image's are.
//
// The SOCI index is metadata whoever pushed it vouches for, as SOCI trusts it: the zTOCs' digests
// come from it, the spans' digests from them. It may not reach outside the image: each zTOC must
// name a layer of the image and index that layer's size, and the blob it makes reads that layer only.
import type { BuiltBootstraps } from '../blobcache/built-bootstraps.js';
import { DEFAULT_GZIP_CHUNK_SIZE, gzipLayerModel } from '../convert/targz-ref.js';
import { ztocLayerModel } from '../convert/ztoc-ref.js';
import { RafsImage } from '../rafs/reader.js';
import type { Bootstrap } from '../rafs/tree.js';
import { readBlob, type ImageStore } from '../registry/image-store.js';
import type { Descriptor, ImageManifest } from '../registry/media-types.js';
import { findReferrers } from '../registry/referrers.js';
import { log } from '../util/log.js';
import { indexedChainBootstrap } from './stargz-image.js';

export const SOCI_INDEX_V1 = 'application/vnd.amazon.soci.index.v1+json';
export const SOCI_INDEX_V2 = 'application/vnd.amazon.soci.index.v2+json';
/** On a SOCI-enabled (v2) image manifest: the digest of its SOCI index manifest. */
export const SOCI_INDEX_DIGEST_ANNOTATION = 'com.amazon.soci.index-digest';
/** On each zTOC descriptor of a SOCI index: the image layer it indexes. */
export const SOCI_LAYER_ANNOTATION = 'com.amazon.soci.image-layer-digest';
const ZTOC_MEDIA_TYPE = 'application/octet-stream';
/** A zTOC is about 32 KiB per span plus the tar TOC. */
const MAX_ZTOC = 256 << 20;
/** Bumped whenever the bootstrap built from the same index would change. */
const BUILD_VERSION = 'nydusify-ts soci chain 1';

/** A SOCI index manifest found for an image. */
export interface SociIndex {
  parsed: ImageManifest;
  digest: string;
  version: 1 | 2;
}

const artifactTypeOf = (m: ImageManifest): string | undefined => m.artifactType ?? m.config?.mediaType;

/**
 * The SOCI index of image manifest `image` (digest `subject`): the v2 one its annotation names, else
 * the newest v1 referrer; undefined when it has none. An index that is not a SOCI index of this
 * image is skipped with a warning.
 */
export async function findSociIndex(store: ImageStore, subject: string, image: ImageManifest): Promise<SociIndex | undefined> {
  const named = image.annotations?.[SOCI_INDEX_DIGEST_ANNOTATION];
  const candidates: { digest: string; version: 1 | 2 }[] = named ? [{ digest: named, version: 2 }] : [];
  for (const d of [...(await findReferrers(store, subject, SOCI_INDEX_V1))].reverse()) candidates.push({ digest: d.digest, version: 1 });
  for (const c of candidates) {
    const fetched = await store.getManifest(c.digest);
    const problem = fetched.kind !== 'manifest' ? 'an index, not a manifest' : indexProblem(fetched.parsed, c.version, subject);
    if (!problem && fetched.kind === 'manifest') return { parsed: fetched.parsed, digest: fetched.digest, version: c.version };
    log.warn('SOCI index skipped', { image: store.name, index: c.digest, problem });
  }
  return undefined;
}

function indexProblem(index: ImageManifest, version: 1 | 2, subject: string): string | undefined {
  const type = artifactTypeOf(index);
  if (type !== (version === 2 ? SOCI_INDEX_V2 : SOCI_INDEX_V1)) return `artifact type ${String(type)}`;
  if (version === 1 && index.subject?.digest !== subject) return `its subject is ${String(index.subject?.digest)}`;
  return undefined;
}

/** The zTOC descriptor the index gives for `layer`, if any. */
const ztocOf = (index: ImageManifest, layer: Descriptor): Descriptor | undefined =>
  index.layers.find((l) => l.mediaType === ZTOC_MEDIA_TYPE && l.annotations?.[SOCI_LAYER_ANNOTATION] === layer.digest);

/** One image layer's model: from its zTOC, or (none given) from the layer read whole. */
async function layerModel(store: ImageStore, index: ImageManifest, layer: Descriptor): Promise<Bootstrap> {
  const ztoc = ztocOf(index, layer);
  if (ztoc) {
    const bytes = await readBlob(store, ztoc, MAX_ZTOC);
    try {
      return ztocLayerModel({ ztoc: bytes, layerDigest: layer.digest, layerSize: layer.size, chunkSize: DEFAULT_GZIP_CHUNK_SIZE }).model;
    } catch (err) {
      throw new Error(`${store.name}: the SOCI index's zTOC ${ztoc.digest} for layer ${layer.digest}: ${(err as Error).message}`);
    }
  }
  const { model } = await gzipLayerModel({
    source: await store.getBlob(layer.digest), blobSize: layer.size, blobId: layer.digest.slice('sha256:'.length), chunkSize: DEFAULT_GZIP_CHUNK_SIZE,
  });
  return model;
}

/** A SOCI-indexed image's bootstrap (of the layers up to `upToLayer`, when given), kept in `built` when given. */
export function sociImageBootstrap(
  store: ImageStore, manifest: ImageManifest, index: SociIndex, upToLayer?: string, built?: BuiltBootstraps,
): Promise<{ bootstrap: Buffer; rafs: RafsImage }> {
  const readModel = (layer: Descriptor): Promise<Bootstrap> => layerModel(store, index.parsed, layer);
  return indexedChainBootstrap(store, manifest, { build: BUILD_VERSION, digest: index.digest }, readModel, upToLayer, built);
}
