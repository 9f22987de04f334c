// One layer of a plain OCI image pulled whole: its blob streamed from the store (checked against its
// digest by the store, and against the size its descriptor gives), decompressed as it comes (gzip,
// zstd or none, by its first bytes), the tar's digest checked against the image config's diff_id;
// the entries written as they are parsed, either as files of a directory (apply-layer) or as an
// EROFS image the kernel mounts (a layer bootstrap and its uncompressed blob). Nothing is trusted
// until the end: a caller keeps what was written only when this resolves.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createLayer } from '../convert/create.js';
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

/** A layer made a kernel-mountable EROFS image: its bootstrap, and its blob device (none when it has no file data). */
export interface ErofsLayer {
  bootstrap: string;
  blob?: string;
  entries: number;
  bytes: number;
  /** Directories no entry describes, made 0755 root:root (containerd gives them the layers' below). */
  implicitDirs: string[][];
}

/** Pulls `layer` (whose uncompressed tar's digest is `diffId`) into `dir`, an empty directory. */
export async function pullLayerInto(store: ImageStore, layer: Pick<Descriptor, 'digest' | 'size'>, diffId: string, dir: string): Promise<AppliedLayer> {
  const tar = await checkedTar(store, layer, diffId);
  // drain: the tar's digest covers the padding after its end-of-archive marker too
  const applied = await applyLayer(parseTar(tar.bytes, { drain: true }), dir);
  tar.check();
  return applied;
}

/**
 * Pulls `layer` as an EROFS image in `dir` (an existing directory): a layer bootstrap (overlayfs
 * whiteouts) and its data uncompressed, laid out as the blob device the kernel's EROFS reads. Two
 * files written front to back, where unpacking writes one per entry.
 */
export async function pullLayerAsErofs(store: ImageStore, layer: Pick<Descriptor, 'digest' | 'size'>, diffId: string, dir: string): Promise<ErofsLayer> {
  const tar = await checkedTar(store, layer, diffId);
  const bootstrap = join(dir, 'layer.boot');
  const made = await createLayer({ source: tar.bytes, bootstrapPath: bootstrap, blobDir: dir, compressor: 'none', digester: 'blake3', chunkSize: EROFS_CHUNK_SIZE, overlayLayer: true });
  tar.check();
  return { bootstrap, ...(made.stats.distinctChunks > 0 ? { blob: made.blobPath } : {}), entries: made.stats.entries, bytes: made.stats.fileBytes, implicitDirs: made.implicitDirs };
}

/** Chunks of an EROFS layer: large (the kernel reads a chunk index per chunk), and a blob device needs no smaller. */
const EROFS_CHUNK_SIZE = 1 << 20;

/**
 * The layer's tar bytes as they stream (its blob checked by the store against its digest, its
 * size here), and a check, for once they are all read, that the tar is the diff_id's.
 */
async function checkedTar(store: ImageStore, layer: Pick<Descriptor, 'digest' | 'size'>, diffId: string): Promise<{ bytes: AsyncGenerator<Buffer>; check(): void }> {
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
  return {
    bytes: hashed(),
    check: () => {
      if (size !== layer.size) throw new Error(`layer ${layer.digest} ended after ${size} of the ${layer.size} bytes its descriptor says`);
      const actual = `sha256:${tarHash.digest('hex')}`;
      if (actual !== diffId) throw new LayerDiffIdError(layer.digest, diffId, actual);
    },
  };
}
