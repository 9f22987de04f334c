// One layer of a plain OCI image pulled whole: its blob's bytes as they stream (checked against its
// digest by whoever reads them, and here against the size its descriptor gives), decompressed as they come (gzip,
// zstd or none, by its first bytes), the tar's digest checked against the image config's diff_id;
// the entries written as they are parsed, either as files of a directory (apply-layer) or as an
// EROFS image the kernel mounts (a layer bootstrap and its uncompressed blob). Nothing is trusted
// until the end: a caller keeps what was written only when this resolves.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createLayer } from '../convert/create.js';
import { openLayerStream } from '../convert/tar/decompress.js';
import { parseTar } from '../convert/tar/parse.js';
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

/** The blob of one layer: its bytes, and its descriptor's digest and size. */
export interface LayerBlob {
  bytes: AsyncIterable<Uint8Array>;
  layer: Pick<Descriptor, 'digest' | 'size'>;
}

/** Pulls `blob` (whose uncompressed tar's digest is `diffId`) into `dir`, an empty directory. */
export async function pullLayerInto(blob: LayerBlob, diffId: string, dir: string): Promise<AppliedLayer> {
  const tar = checkedTar(blob, diffId);
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
export async function pullLayerAsErofs(blob: LayerBlob, diffId: string, dir: string): Promise<ErofsLayer> {
  const tar = checkedTar(blob, diffId);
  const bootstrap = join(dir, 'layer.boot');
  const made = await createLayer({ source: tar.bytes, bootstrapPath: bootstrap, blobDir: dir, compressor: 'none', digester: 'blake3', chunkSize: EROFS_CHUNK_SIZE, overlayLayer: true });
  tar.check();
  return { bootstrap, ...(made.stats.distinctChunks > 0 ? { blob: made.blobPath } : {}), entries: made.stats.entries, bytes: made.stats.fileBytes, implicitDirs: made.implicitDirs };
}

/** Chunks of an EROFS layer: large (the kernel reads a chunk index per chunk), and a blob device needs no smaller. */
const EROFS_CHUNK_SIZE = 1 << 20;

/**
 * The layer's tar bytes as they stream (its blob's size checked here), and a check, for once they
 * are all read, that the tar is the diff_id's.
 */
function checkedTar({ bytes, layer }: LayerBlob, diffId: string): { bytes: AsyncGenerator<Buffer>; check(): void } {
  let size = 0;
  async function* sized(): AsyncGenerator<Uint8Array> {
    for await (const piece of bytes) {
      size += piece.length;
      if (size > layer.size) throw new Error(`layer ${layer.digest} is longer than the ${layer.size} bytes its descriptor says`);
      yield piece;
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
