// `convert --keep-stargz`: a source layer that is eStargz / zstd:chunked is not re-chunked. The target
// image keeps the layer blob as it is (same descriptor), and its layer model is the one the TOC gives
// (src/stargz): chunks are the layer's gzip members / zstd frames, verified by their sha256 on read.
import type { Bootstrap } from '../rafs/tree.js';
import type { ImageStore } from '../registry/image-store.js';
import type { Descriptor } from '../registry/media-types.js';
import { stargzBootstrap } from '../stargz/bootstrap.js';
import { readStargzToc, type StargzToc } from '../stargz/toc.js';

export interface KeptStargzLayer {
  kind: StargzToc['footer']['kind'];
  /** The layer as a RAFS model whose one blob is the layer blob itself (none when no file has data). */
  model: Bootstrap;
  entries: number;
}

/**
 * The model of a stargz-family layer of `store`, from its TOC checked against the digest its
 * annotation gives: a TOC nothing vouches for is refused, as the image would then serve whatever
 * the layer's TOC claims.
 */
export async function keptStargzLayer(store: ImageStore, layer: Descriptor): Promise<KeptStargzLayer> {
  const read = (offset: number, length: number): Promise<Buffer> => store.getBlobRange(layer.digest, offset, length);
  const toc = await readStargzToc(read, layer.size, { annotations: layer.annotations ?? {} });
  if (toc.verifiedBy === undefined) throw new Error(`layer ${layer.digest} has no TOC digest annotation to verify its TOC against`);
  const model = stargzBootstrap(toc, { blobId: layer.digest.slice('sha256:'.length), blobSize: layer.size });
  return { kind: toc.footer.kind, model, entries: toc.entries.length };
}
