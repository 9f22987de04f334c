// An image whose layers are eStargz (or legacy stargz, or zstd:chunked), served lazily as they are,
// with no conversion: each layer's TOC, checked against the digest its manifest annotation gives,
// becomes a RAFS layer model whose one blob is the unmodified layer (src/stargz); the layers are
// merged as a Nydus image's are, and the image is read through the same chunk path: a chunk is a
// gzip member or zstd frame of the layer, decoded and checked against its chunkDigest.
import { mergeLayers } from '../convert/merge.js';
import { RafsImage } from '../rafs/reader.js';
import { writeBootstrap } from '../rafs/writer.js';
import type { ImageStore } from '../registry/image-store.js';
import type { Descriptor, ImageManifest } from '../registry/media-types.js';
import { isStargzLayer } from '../registry/stargz-layers.js';
import { stargzBootstrap, stargzChunkSize } from '../stargz/bootstrap.js';
import { readStargzToc, type StargzToc } from '../stargz/toc.js';
import { forEachLimited } from '../util/concurrency.js';

/** Whether the manifest is one we serve as stargz layers: every layer announces its TOC. */
export const isStargzImage = (layers: readonly Descriptor[]): boolean => layers.length > 0 && layers.every(isStargzLayer);

/** A stargz image's TOCs read and verified, merged into one bootstrap (of the layers up to `upToLayer`, when given). */
export async function stargzImageBootstrap(store: ImageStore, manifest: ImageManifest, upToLayer?: string): Promise<{ bootstrap: Buffer; rafs: RafsImage }> {
  const top = upToLayer === undefined ? manifest.layers.length - 1 : manifest.layers.findIndex((l) => l.digest === upToLayer);
  if (top < 0) throw new Error(`${store.name}: the image has no layer ${upToLayer}`);
  const layers = manifest.layers.slice(0, top + 1);
  const tocs: StargzToc[] = new Array<StargzToc>(layers.length);
  await forEachLimited([...layers.entries()], 4, async ([i, layer]) => {
    if (!isStargzLayer(layer)) throw new Error(`${store.name}: layer ${i} (${layer.digest}) is not an eStargz or zstd:chunked layer: the image cannot be served lazily`);
    const read = (offset: number, length: number): Promise<Buffer> => store.getBlobRange(layer.digest, offset, length);
    tocs[i] = await readStargzToc(read, layer.size, { annotations: layer.annotations ?? {} });
  });
  // one bootstrap has one chunk grid: the largest any layer needs (single pieces fit a larger one; a
  // layer whose files are split at another size is refused by stargzBootstrap)
  const chunkSize = Math.max(...tocs.map(stargzChunkSize));
  const models = tocs.map((toc, i) => stargzBootstrap(toc, { blobId: layers[i]!.digest.slice('sha256:'.length), blobSize: layers[i]!.size, chunkSize }));
  const bootstrap = writeBootstrap(mergeLayers(models, { prefetch: models.flatMap((m) => m.prefetch ?? []) }));
  return { bootstrap, rafs: RafsImage.open(bootstrap) };
}
