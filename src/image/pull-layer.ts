// One layer of a plain OCI image pulled whole into a directory: its blob streamed from the store
// (checked against its digest by the store, and against the size its descriptor gives),
// decompressed as it comes (gzip, zstd or none, by its first bytes), the tar's digest checked
// against the image config's diff_id, the entries written by apply-layer as they are parsed. Nothing
// is trusted until the end: a caller keeps the directory only when this resolves.
import { createHash } from 'node:crypto';
import { openLayerStream } from '../convert/tar/decompress.js';
import { parseTar } from '../convert/tar/parse.js';
import type { ImageStore } from '../registry/image-store.js';
import type { Descriptor } from '../registry/media-types.js';
import { type AppliedLayer, applyLayer } from './apply-layer.js';

export class LayerDiffIdError extends Error {
  constructor(readonly layer: string, readonly expected: string, readonly actual: string) {
    super(`layer ${layer}: its tar's digest is ${actual}, the image config says ${expected}`);
    this.name = 'LayerDiffIdError';
  }
}

/** Pulls `layer` (whose uncompressed tar's digest is `diffId`) into `dir`, an empty directory. */
export async function pullLayerInto(store: ImageStore, layer: Pick<Descriptor, 'digest' | 'size'>, diffId: string, dir: string): Promise<AppliedLayer> {
  const blob = await store.getBlob(layer.digest);
  let size = 0;
  async function* sized(): AsyncGenerator<Buffer> {
    for await (const piece of blob) {
      size += (piece as Buffer).length;
      if (size > layer.size) {
        blob.destroy();
        throw new Error(`layer ${layer.digest} is longer than the ${layer.size} bytes its descriptor says`);
      }
      yield piece as Buffer;
    }
  }
  const tarHash = createHash('sha256');
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const piece of openLayerStream(sized())) {
      tarHash.update(piece);
      yield piece;
    }
  }
  // drain: the tar's digest covers the padding after its end-of-archive marker too
  const applied = await applyLayer(parseTar(hashed(), { drain: true }), dir);
  if (size !== layer.size) throw new Error(`layer ${layer.digest} ended after ${size} of the ${layer.size} bytes its descriptor says`);
  const actual = `sha256:${tarHash.digest('hex')}`;
  if (actual !== diffId) throw new LayerDiffIdError(layer.digest, diffId, actual);
  return applied;
}
