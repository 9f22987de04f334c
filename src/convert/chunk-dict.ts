// A chunk dictionary (nydusify --chunk-dict, nydus-image create --chunk-dict): the chunks of another
// Nydus image that a conversion refers to instead of storing them again. A chunk whose digest the
// dictionary has becomes a reference to the dictionary's blob, and that blob a data layer of the
// converted image. Only the dictionary's blobs of the conversion's chunk size and digester are
// used (a file's chunks lie in blobs of one chunk size); chunks inside compressed members (an
// eStargz layer kept as it is) are not. What a dictionary says of a chunk is checked where it counts:
// a reader checks every chunk against its digest, so a lying dictionary gives EIO, never other bytes.
import type { RafsImage } from '../rafs/reader.js';
import { LAYER_AS_IS } from '../rafs/blob-table.js';
import type { BlobInfo, ChunkRef, Digester } from '../rafs/tree.js';
import type { ImageStore } from '../registry/image-store.js';
import type { Descriptor } from '../registry/media-types.js';

export interface ChunkDict {
  /** The dictionary's usable blobs. */
  blobs: BlobInfo[];
  /**
   * Their chunks by digest (hex), with the blob indexes a layer bootstrap gives them: the
   * dictionary's blobs first, in `blobs` order, then the layer's own.
   */
  chunks: ReadonlyMap<string, ChunkRef>;
  /** The image the dictionary is, and its data layers by digest (none: a bootstrap file, whose blobs the target must have already). */
  image?: { store: ImageStore; layers: ReadonlyMap<string, Descriptor> };
}

export class ChunkDictError extends Error {}

/** The dictionary of bootstrap `rafs` for a conversion of `chunkSize` chunks digested with `digester`. */
export function chunkDict(rafs: RafsImage, chunkSize: number, digester: Digester, image?: ChunkDict['image']): ChunkDict {
  if (rafs.digester !== digester) throw new ChunkDictError(`the chunk dictionary's chunks are digested with ${rafs.digester}, this conversion's with ${digester}`);
  const blobs: BlobInfo[] = [];
  const layerIndex = new Map<number, number>();
  rafs.blobs.forEach((blob, i) => {
    if (blob.chunkSize !== chunkSize || blob.digester !== digester || (blob.features & LAYER_AS_IS) !== 0) return;
    layerIndex.set(i, blobs.length);
    blobs.push(blob);
  });
  if (blobs.length === 0) throw new ChunkDictError(`the chunk dictionary has no blob of ${chunkSize}-byte chunks digested with ${digester}`);
  const chunks = new Map<string, ChunkRef>();
  for (const ref of rafs.chunkInfoTable()) {
    const blobIndex = layerIndex.get(ref.blobIndex);
    const key = ref.digest.toString('hex');
    if (blobIndex !== undefined && !chunks.has(key)) chunks.set(key, { ...ref, blobIndex });
  }
  return { blobs, chunks, ...(image ? { image } : {}) };
}

/** nydusify's `bootstrap:registry:REF` or `bootstrap:local:PATH`. */
export function parseChunkDictSpec(spec: string): { registry: string } | { local: string } {
  const m = /^bootstrap:(registry|local):(.+)$/.exec(spec);
  if (!m) throw new ChunkDictError(`chunk dict ${JSON.stringify(spec)}: expected bootstrap:registry:REF or bootstrap:local:PATH`);
  return m[1] === 'registry' ? { registry: m[2]! } : { local: m[2]! };
}
