// The hot pack of an optimized image: the uncompressed bytes of its hot region's chunks, in the
// region's order, compressed as a few large zstd frames instead of one frame per chunk. A cold start
// streams the whole region anyway, and small chunks (which waste no untouched bytes) compress badly
// on their own: packed, the same chunks cross the link in about half the bytes. The pack is a layer
// of its own beside the hot blob, which keeps every chunk as RAFS has it: a reader that knows
// nothing of packs (nydusd) reads the hot blob, and a chunk of a frame that does not arrive or does
// not verify is fetched from there. Every chunk out of a pack is checked against the bootstrap's
// digest, as any other. The frames are described in the pack layer's annotation (HotPackIndex).
import type { ChunkRef } from './tree.js';

/** Uncompressed bytes a frame is closed at (it may hold less: the region's end; more: never). */
export const HOT_PACK_FRAME_BYTES = 512 << 10;
/** Limits on an annotation read from a manifest (untrusted). */
const MAX_FRAMES = 16_384;
const MAX_FRAME_COMPRESSED = 64 << 20;

export interface HotPackFrame {
  /** Bytes of the frame in the pack (frames follow each other from offset 0). */
  compressedSize: number;
  /** Chunks of the region the frame holds, the next ones in region order. */
  chunks: number;
}

export interface HotPackIndex {
  /** The hot blob whose region the pack holds. */
  blobId: string;
  frames: HotPackFrame[];
}

/** A frame laid over the region: where it starts in the pack, its bytes there, and the chunks it holds. */
export interface PackFrame {
  offset: number;
  compressedSize: number;
  refs: ChunkRef[];
}

export class HotPackError extends Error {}

/** The chunks of a blob's hot region (`table`: its distinct chunks; `bytes`: the region's compressed length), in region order. */
export function hotRegionOf(table: readonly ChunkRef[], bytes: number): ChunkRef[] {
  return table.filter((r) => r.compressedOffset + r.compressedSize <= bytes).sort((x, y) => x.compressedOffset - y.compressedOffset || x.ciIndex - y.ciIndex);
}

/** How many chunks of sizes `sizes` (region order) each frame takes: frames close once they reach `frameBytes`. */
export function planFrames(sizes: readonly number[], frameBytes = HOT_PACK_FRAME_BYTES): number[] {
  const counts: number[] = [];
  let n = 0;
  let bytes = 0;
  for (const size of sizes) {
    if (n > 0 && bytes + size > frameBytes) {
      counts.push(n);
      n = 0;
      bytes = 0;
    }
    n++;
    bytes += size;
  }
  if (n > 0) counts.push(n);
  return counts;
}

export function formatHotPackIndex(index: HotPackIndex): string {
  return JSON.stringify({ blob: index.blobId, frames: index.frames.map((f) => [f.compressedSize, f.chunks]) });
}

/** The annotation's index, checked: a bad one is an error (the caller then streams the hot blob itself). */
export function parseHotPackIndex(text: string): HotPackIndex {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HotPackError('hot pack index: not JSON');
  }
  const { blob, frames } = (value ?? {}) as { blob?: unknown; frames?: unknown };
  if (typeof blob !== 'string' || !/^[0-9a-f]{64}$/.test(blob)) throw new HotPackError('hot pack index: blob is not a sha256 hex digest');
  if (!Array.isArray(frames) || frames.length === 0 || frames.length > MAX_FRAMES) throw new HotPackError(`hot pack index: 1 to ${MAX_FRAMES} frames expected`);
  const count = (v: unknown, max: number): v is number => Number.isSafeInteger(v) && (v as number) > 0 && (v as number) <= max;
  return {
    blobId: blob,
    frames: frames.map((f: unknown, i) => {
      if (!Array.isArray(f) || f.length !== 2 || !count(f[0], MAX_FRAME_COMPRESSED) || !count(f[1], HOT_PACK_FRAME_BYTES / 4096)) {
        throw new HotPackError(`hot pack index: frame ${i} is not [compressed size, chunks]`);
      }
      return { compressedSize: f[0] as number, chunks: f[1] as number };
    }),
  };
}

/** Bytes of the whole pack. */
export const hotPackBytes = (index: HotPackIndex): number => index.frames.reduce((n, f) => n + f.compressedSize, 0);

/** Each frame with where it starts in the pack and the region chunks it holds; an error if the index does not cover `region` exactly. */
export function framesOf(index: HotPackIndex, region: readonly ChunkRef[]): PackFrame[] {
  const total = index.frames.reduce((n, f) => n + f.chunks, 0);
  if (total !== region.length) throw new HotPackError(`hot pack index: ${total} chunks for a hot region of ${region.length}`);
  let offset = 0;
  let at = 0;
  return index.frames.map((f) => {
    const refs = region.slice(at, at + f.chunks);
    // (a chunk larger than a frame is a frame of its own)
    if (refs.length > 1 && refs.reduce((n, r) => n + r.uncompressedSize, 0) > HOT_PACK_FRAME_BYTES) throw new HotPackError(`hot pack index: a frame at ${offset} holds more than ${HOT_PACK_FRAME_BYTES} bytes`);
    const frame = { offset, compressedSize: f.compressedSize, refs };
    offset += f.compressedSize;
    at += f.chunks;
    return frame;
  });
}
