// An image whose layers are eStargz (or legacy stargz, or zstd:chunked), served lazily as they are,
// with no conversion: each layer's TOC, checked against the digest its manifest annotation gives,
// becomes a RAFS layer model whose one blob is the unmodified layer (src/stargz); the layers are
// merged as a Nydus image's are, and the image is read through the same chunk path: a chunk is a
// gzip member or zstd frame of the layer, decoded and checked against its chunkDigest.
import { createHash } from 'node:crypto';
import type { BuiltBootstraps } from '../blobcache/built-bootstraps.js';
import { mergeLayers } from '../convert/merge.js';
import { RafsImage } from '../rafs/reader.js';
import { storedBlobId } from '../rafs/span-blob.js';
import type { Bootstrap } from '../rafs/tree.js';
import { writeBootstrap } from '../rafs/writer.js';
import type { ImageStore } from '../registry/image-store.js';
import type { Descriptor, ImageManifest } from '../registry/media-types.js';
import { isStargzLayer } from '../registry/stargz-layers.js';
import { stargzBootstrap } from '../stargz/bootstrap.js';
import { readStargzToc } from '../stargz/toc.js';
import { forEachLimited } from '../util/concurrency.js';

/** Bumped whenever the bootstrap built from the same layers would change. */
const BUILD_VERSION = 'nydusify-ts stargz chain 2';

/** Whether the manifest is one we serve as stargz layers: every layer announces its TOC. */
export const isStargzImage = (layers: readonly Descriptor[]): boolean => layers.length > 0 && layers.every(isStargzLayer);

/** One layer as a RAFS layer model, its TOC read and verified (the snapshotter passes one that keeps the models it made while pulling). */
export type LayerModelReader = (layer: Descriptor) => Promise<Bootstrap>;

/** `length` bytes at `offset` of blob `digest` (an image store's getBlobRange, or a worker's way to it). */
export type BlobRangeReader = (digest: string, offset: number, length: number) => Promise<Buffer>;

/**
 * Reads a layer's TOC through `read`, verified against the digest its annotations give, and makes
 * it a layer model whose one blob is the layer (its own chunk grid: RAFS v6 chunk sizes are per file).
 * `name` names the image in messages; `beforeParse`, awaited once a layer's TOC bytes are in, orders
 * the parses of TOCs read at once.
 */
export function rangeModelReader(name: string, read: BlobRangeReader, beforeParse?: (layer: Descriptor) => Promise<void>): LayerModelReader {
  return async (layer) => {
    if (!isStargzLayer(layer)) throw new Error(`${name}: layer ${layer.digest} is not an eStargz or zstd:chunked layer: the image cannot be served lazily`);
    const toc = await readStargzToc((offset, length) => read(layer.digest, offset, length), layer.size, {
      annotations: layer.annotations ?? {}, ...(beforeParse ? { beforeParse: () => beforeParse(layer) } : {}),
    });
    return stargzBootstrap(toc, { blobId: layer.digest.slice('sha256:'.length), blobSize: layer.size });
  };
}

/** rangeModelReader over an image store. */
export const storeModelReader = (store: ImageStore): LayerModelReader =>
  rangeModelReader(store.name, (digest, offset, length) => store.getBlobRange(digest, offset, length));

/** The layers of the chain that ends at `upToLayer` (default: the whole image). */
export function stargzChain(store: ImageStore, manifest: ImageManifest, upToLayer?: string): Descriptor[] {
  const top = upToLayer === undefined ? manifest.layers.length - 1 : manifest.layers.findIndex((l) => l.digest === upToLayer);
  if (top < 0) throw new Error(`${store.name}: the image has no layer ${upToLayer}`);
  return manifest.layers.slice(0, top + 1);
}

/**
 * What a chain's bootstrap is built from, as a key: every layer's digest, size, media type and
 * annotations (the TOC digest a TOC is checked against among them), and the build version.
 */
export function stargzChainKey(layers: readonly Descriptor[]): string {
  const hash = createHash('sha256').update(`${BUILD_VERSION}\n`);
  for (const l of layers) {
    const annotations = Object.entries(l.annotations ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    hash.update(`${JSON.stringify([l.digest, l.size, l.mediaType, annotations])}\n`);
  }
  return hash.digest('hex');
}

/** The chain's layer models (read a few at a time) merged into one bootstrap. */
export async function buildStargzChain(layers: readonly Descriptor[], readModel: LayerModelReader): Promise<Buffer> {
  const models = new Array<Bootstrap>(layers.length);
  await forEachLimited([...layers.entries()], 4, async ([i, layer]) => {
    models[i] = await readModel(layer);
  });
  // a turn between the steps: a snapshotter building this while containerd pulls answers its calls between them
  await nextTurn();
  const merged = mergeLayers(models, { prefetch: models.flatMap((m) => m.prefetch ?? []) });
  await nextTurn();
  return writeBootstrap(merged);
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A stargz image's bootstrap (of the layers up to `upToLayer`, when given): the one kept in `built`
 * for exactly these layers if there is one (or one being built there now, waited for), else built
 * from their TOCs (and kept there).
 */
export async function stargzImageBootstrap(store: ImageStore, manifest: ImageManifest, upToLayer?: string, built?: BuiltBootstraps): Promise<{ bootstrap: Buffer; rafs: RafsImage }> {
  const layers = stargzChain(store, manifest, upToLayer);
  const build = (): Promise<Buffer> => buildStargzChain(layers, storeModelReader(store));
  const { bootstrap, opened } = built ? await built.getOrBuild(stargzChainKey(layers), (kept) => openBuiltChain(kept, layers), build) : { bootstrap: await build() };
  return { bootstrap, rafs: opened ?? RafsImage.open(bootstrap) };
}

/**
 * The bootstrap of the chain up to `upToLayer` of a plain image whose layer models come from an index
 * beside it (`readModel`): kept in `built` under the index (`build`: what made it, `digest`: which) and
 * the chain's layers, else built (and kept there).
 */
export async function indexedChainBootstrap(
  store: ImageStore, manifest: ImageManifest, index: { build: string; digest: string }, readModel: LayerModelReader, upToLayer?: string, built?: BuiltBootstraps,
): Promise<{ bootstrap: Buffer; rafs: RafsImage }> {
  const layers = stargzChain(store, manifest, upToLayer);
  const build = (): Promise<Buffer> => buildStargzChain(layers, readModel);
  const key = createHash('sha256').update(`${index.build}\n${index.digest}\n`);
  for (const l of layers) key.update(`${l.digest} ${l.size}\n`);
  const { bootstrap, opened } = built ? await built.getOrBuild(key.digest('hex'), (kept) => openBuiltChain(kept, layers), build) : { bootstrap: await build() };
  return { bootstrap, rafs: opened ?? RafsImage.open(bootstrap) };
}

/** A kept bootstrap, if it opens and reads no blob but the chain's own layers (else it is built again). */
export function openBuiltChain(bootstrap: Buffer, layers: readonly Descriptor[]): RafsImage | undefined {
  const own = new Set(layers.map((l) => l.digest));
  try {
    const rafs = RafsImage.open(bootstrap);
    return rafs.blobs.every((b) => own.has(`sha256:${storedBlobId(b)}`)) ? rafs : undefined;
  } catch {
    return undefined;
  }
}
