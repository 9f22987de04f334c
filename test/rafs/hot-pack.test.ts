import { describe, expect, it } from 'vitest';
import { formatHotPackIndex, framesOf, HOT_PACK_FRAME_BYTES, HotPackError, hotPackBytes, hotRegionOf, parseHotPackIndex, planFrames } from '../../src/rafs/hot-pack.js';
import type { ChunkRef } from '../../src/rafs/tree.js';

const ref = (ciIndex: number, compressedOffset: number, compressedSize: number, uncompressedSize = 8192): ChunkRef => ({
  blobIndex: 0, ciIndex, digest: Buffer.alloc(32), compressedOffset, compressedSize, uncompressedOffset: ciIndex * 8192, uncompressedSize, compressed: true, fileOffset: 0,
});
const BLOB = 'ab'.repeat(32);

describe('hot pack', () => {
  it('takes a blob\'s region chunks by where they are stored', () => {
    const table = [ref(2, 300, 100), ref(0, 0, 100), ref(1, 100, 200), ref(3, 400, 50)];
    expect(hotRegionOf(table, 400).map((r) => r.ciIndex)).toEqual([0, 1, 2]);
  });

  it('closes frames at the frame size, a chunk larger than a frame being one of its own', () => {
    expect(planFrames([200, 200, 200, 200], 500)).toEqual([2, 2]);
    expect(planFrames([100, 900, 100], 500)).toEqual([1, 1, 1]);
    expect(planFrames([])).toEqual([]);
    expect(planFrames(Array(129).fill(4096))).toEqual([128, 1]);
  });

  it('reads back what it writes, and lays the frames over the region', () => {
    const index = { blobId: BLOB, frames: [{ compressedSize: 10, chunks: 2 }, { compressedSize: 7, chunks: 1 }] };
    const parsed = parseHotPackIndex(formatHotPackIndex(index));
    expect(parsed).toEqual(index);
    expect(hotPackBytes(parsed)).toBe(17);
    const region = [ref(0, 0, 10), ref(1, 10, 10), ref(2, 20, 10)];
    expect(framesOf(parsed, region).map((f) => [f.offset, f.compressedSize, f.refs.map((r) => r.ciIndex)])).toEqual([[0, 10, [0, 1]], [10, 7, [2]]]);
  });

  it('refuses an index that does not cover the region, or holds a frame larger than frames are', () => {
    const region = [ref(0, 0, 10), ref(1, 10, 10)];
    expect(() => framesOf({ blobId: BLOB, frames: [{ compressedSize: 5, chunks: 3 }] }, region)).toThrow(/3 chunks for a hot region of 2/);
    const big = [ref(0, 0, 10, HOT_PACK_FRAME_BYTES), ref(1, 10, 10, 4096)];
    expect(() => framesOf({ blobId: BLOB, frames: [{ compressedSize: 5, chunks: 2 }] }, big)).toThrow(/holds more than/);
    expect(framesOf({ blobId: BLOB, frames: [{ compressedSize: 5, chunks: 1 }, { compressedSize: 5, chunks: 1 }] }, big)).toHaveLength(2);
  });

  it('refuses hostile annotations with a HotPackError', () => {
    for (const text of ['', 'null', '[]', '{"blob":"x","frames":[[1,1]]}', `{"blob":"${BLOB}","frames":[]}`, `{"blob":"${BLOB}","frames":[[0,1]]}`,
      `{"blob":"${BLOB}","frames":[[1,0]]}`, `{"blob":"${BLOB}","frames":[[1.5,1]]}`, `{"blob":"${BLOB}","frames":[[1,1,1]]}`, `{"blob":"${BLOB}","frames":[[1e20,1]]}`,
      `{"blob":"${BLOB}","frames":[[1,1000]]}`, `{"blob":"${BLOB}","frames":${JSON.stringify(Array(20_000).fill([1, 1]))}}`]) {
      expect(() => parseHotPackIndex(text), text.slice(0, 60)).toThrow(HotPackError);
    }
  });
});
