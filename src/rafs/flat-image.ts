// The block map of a flat disk image (docs/rafs-v6.md §3.10): the bootstrap at byte 0, and each blob's
// uncompressed image at its device slot's mapped_blkaddr, so the kernel's EROFS reads the whole image
// from one device. Every byte of the image is bootstrap metadata, one chunk's decompressed data, or a
// hole (zeros). `export --block` writes the map out; block mode serves ranges of it on demand.
import { RafsFormatError } from './errors.js';
import type { RafsImage } from './reader.js';
import { S_IFMT, S_IFREG, type ChunkRef } from './tree.js';

/** A piece of a range of the flat image, in order: bootstrap bytes, zeros, or part of one chunk. */
export type FlatPiece =
  | { kind: 'meta'; offset: number; length: number }
  | { kind: 'hole'; length: number }
  | { kind: 'chunk'; chunk: ChunkRef; start: number; length: number };

/** One blob's region of the image: its chunks sorted by where their data starts. */
interface BlobRegion {
  start: number;
  end: number;
  starts: Float64Array;
  chunks: ChunkRef[];
}

/** Every chunk the image's files can refer to (the chunk info table, or a walk when there is none). */
export function* imageChunks(rafs: RafsImage): Generator<ChunkRef> {
  let any = false;
  for (const ref of rafs.chunkInfoTable()) {
    any = true;
    yield ref;
  }
  if (any) return;
  for (const entry of rafs.walk()) if ((entry.inode.mode & S_IFMT) === S_IFREG && !entry.seen) yield* rafs.chunks(entry.nid);
}

export class FlatImageMap {
  /** Bytes in the image: whole blocks, the end of the last blob region or of the bootstrap. */
  readonly size: number;

  private constructor(readonly metaLength: number, private readonly regions: BlobRegion[]) {
    this.size = Math.max(metaLength, ...regions.map((r) => r.end));
  }

  /**
   * The map of `rafs` (whose bootstrap is `metaLength` bytes) over `chunks` (see imageChunks). Refused:
   * a blob region that overlaps the bootstrap or another region, and chunks that overlap each other or
   * end outside their blob's region — each byte of the image must have one meaning.
   */
  static build(rafs: RafsImage, metaLength: number, chunks: Iterable<ChunkRef>): FlatImageMap {
    const bs = rafs.blockSize;
    const byBlob: ChunkRef[][] = rafs.devices.map(() => []);
    for (const ref of chunks) {
      const list = byBlob[ref.blobIndex];
      if (!list) throw new RafsFormatError('chunk', ref.ciIndex, `chunk of blob index ${ref.blobIndex}, which has no device slot`);
      list.push(ref);
    }
    const regions = rafs.devices.map((d, i): BlobRegion => {
      const start = d.mappedBlkaddr * bs;
      if (start < metaLength) throw new RafsFormatError('device table', i, `blob ${i} is mapped at block ${d.mappedBlkaddr}, inside the bootstrap: not a flat-image bootstrap`);
      const sorted = sortedChunks(byBlob[i]!, d.blocks, bs, i);
      return { start, end: start + d.blocks * bs, starts: Float64Array.from(sorted, (c) => c.uncompressedOffset), chunks: sorted };
    });
    const byStart = [...regions].sort((a, b) => a.start - b.start);
    for (let i = 1; i < byStart.length; i++) {
      if (byStart[i]!.start < byStart[i - 1]!.end) throw new RafsFormatError('device table', i, 'two blobs are mapped over the same blocks');
    }
    return new FlatImageMap(metaLength, byStart);
  }

  /** [offset, offset + length) of the image as pieces, in order; the range must lie inside the image. */
  pieces(offset: number, length: number): FlatPiece[] {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`range ${offset}+${length} is outside the ${this.size}-byte image`);
    }
    const out: FlatPiece[] = [];
    const hole = (n: number): void => {
      const last = out[out.length - 1];
      if (last?.kind === 'hole') last.length += n;
      else if (n > 0) out.push({ kind: 'hole', length: n });
    };
    let at = offset;
    const end = offset + length;
    if (at < this.metaLength) {
      const n = Math.min(end, this.metaLength) - at;
      out.push({ kind: 'meta', offset: at, length: n });
      at += n;
    }
    for (const r of this.regions) {
      if (at >= end) break;
      if (r.end <= at) continue;
      if (r.start >= end) break;
      if (r.start > at) {
        hole(r.start - at);
        at = r.start;
      }
      at = this.regionPieces(r, at, Math.min(end, r.end), out, hole);
    }
    hole(end - at);
    return out;
  }

  private regionPieces(r: BlobRegion, from: number, to: number, out: FlatPiece[], hole: (n: number) => void): number {
    let at = from;
    // the last chunk starting at or before `at` may cover it
    let i = Math.max(0, upperBound(r.starts, at - r.start) - 1);
    for (; i < r.chunks.length && at < to; i++) {
      const c = r.chunks[i]!;
      const cStart = r.start + c.uncompressedOffset;
      const cEnd = cStart + c.uncompressedSize;
      if (cEnd <= at) continue;
      if (cStart >= to) break;
      if (cStart > at) {
        hole(cStart - at);
        at = cStart;
      }
      const n = Math.min(cEnd, to) - at;
      out.push({ kind: 'chunk', chunk: c, start: at - cStart, length: n });
      at += n;
    }
    hole(to - at);
    return to;
  }
}

/** The blob's chunks sorted by offset, one per CI index, none overlapping another or the region's end. */
function sortedChunks(refs: ChunkRef[], blocks: number, blockSize: number, blobIndex: number): ChunkRef[] {
  const byCi = new Map<number, ChunkRef>();
  for (const r of refs) if (!byCi.has(r.ciIndex)) byCi.set(r.ciIndex, r);
  const sorted = [...byCi.values()].sort((a, b) => a.uncompressedOffset - b.uncompressedOffset);
  let end = 0;
  for (const c of sorted) {
    if (c.uncompressedOffset < end) throw new RafsFormatError('chunk', c.ciIndex, `chunk ${c.ciIndex} of blob ${blobIndex} overlaps the chunk before it`);
    end = c.uncompressedOffset + c.uncompressedSize;
    if (end > blocks * blockSize) throw new RafsFormatError('chunk', c.ciIndex, `chunk ${c.ciIndex} of blob ${blobIndex} ends past the blob's ${blocks} blocks`);
  }
  return sorted;
}

/** Index of the first element greater than `x` in an ascending array. */
function upperBound(a: Float64Array, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
