import { describe, expect, it } from 'vitest';
import { BlobFeature } from '../../src/rafs/blob-table.js';
import { CHECKPOINT_ENTRY_SIZE, type Checkpoint, decodeCheckpointTable, encodeCheckpointTable, MAX_WINDOW_FRAME } from '../../src/rafs/checkpoints.js';
import { RafsFormatError } from '../../src/rafs/errors.js';
import type { BlobInfo } from '../../src/rafs/tree.js';

const blob = (features: number, checkpoints?: Checkpoint[]): BlobInfo => ({
  blobId: 'a'.repeat(64), chunkCount: 1, chunkSize: 1 << 20, compressor: 'gzip', digester: 'sha256', features,
  compressedSize: 10 << 20, uncompressedSize: 1 << 20, ciCompressor: 'none', ciOffset: 0, ciCompressedSize: 0, ciUncompressedSize: 0,
  tocSize: 0, tocDigest: Buffer.alloc(32), checkpoints,
});
/** Stands for a window's zstd frame: the table does not decode it. */
const window = (size: number, fill: number): Buffer => Buffer.alloc(size, fill);
const cps: Checkpoint[] = [
  { input: 10, output: 0, bits: 0, window: window(9, 0) },
  { input: 5000, output: 20_000, bits: 3, window: window(2000, 1) },
  { input: 90_000, output: 1 << 20, bits: 7, window: window(3000, 2) },
];
const feature = BlobFeature.ALIGNED | BlobFeature.CHECKPOINTS;
const blobs = [blob(BlobFeature.ALIGNED), blob(feature, cps)];

describe('checkpoint table', () => {
  it('round-trips each blob\'s checkpoints, windows included', () => {
    const table = encodeCheckpointTable(blobs);
    expect(table.length).toBe(3 * CHECKPOINT_ENTRY_SIZE + 9 + 2000 + 3000);
    const padded = Buffer.concat([Buffer.alloc(100), table]);
    expect(decodeCheckpointTable(padded, 100, table.length, blobs)).toEqual([[], cps]);
    expect(decodeCheckpointTable(padded, 0, 0, blobs)).toEqual([[], []]);
  });

  const mutated = (at: number, write: (b: Buffer) => void): Buffer => {
    const table = encodeCheckpointTable(blobs);
    write(table.subarray(at));
    return table;
  };
  const entry = (i: number): number => i * CHECKPOINT_ENTRY_SIZE;

  it.each([
    ['a blob without the feature', mutated(entry(1), (b) => b.writeUInt32LE(0, 0)), /has no checkpoints/],
    ['a blob not in the table', mutated(entry(1), (b) => b.writeUInt32LE(7, 0)), /has no checkpoints/],
    ['bits over 7', mutated(entry(1), (b) => b.writeUInt32LE(8, 4)), /bits 8/],
    ['an empty window frame', mutated(entry(2), (b) => b.writeUInt32LE(0, 8)), /window frame of 0 bytes/],
    ['a window frame larger than a window can need', mutated(entry(2), (b) => b.writeUInt32LE(MAX_WINDOW_FRAME + 1, 8)), /window frame of/],
    ['a window outside the table', mutated(entry(2), (b) => b.writeUInt32LE(0xfffff000, 12)), /window outside/],
    ['a window over the entries', mutated(entry(2), (b) => b.writeUInt32LE(0, 12)), /window outside/],
    ['entries not a whole number', mutated(entry(0), (b) => b.writeUInt32LE(40, 12)), /whole number of entries/],
    ['a first checkpoint past the output\'s start', mutated(entry(0), (b) => b.writeUInt32LE(7, 24)), /first checkpoint is not at the start/],
    ['checkpoints out of order', mutated(entry(2), (b) => b.writeUInt32LE(4000, 16)), /stream order/],
    ['an input beyond the blob', mutated(entry(2), (b) => b.writeUInt32LE(0x7fffffff, 16)), /beyond the blob/],
  ])('refuses %s', (_name, table, message) => {
    expect(() => decodeCheckpointTable(table, 0, table.length, blobs)).toThrow(RafsFormatError);
    expect(() => decodeCheckpointTable(table, 0, table.length, blobs)).toThrow(message);
  });

  it('refuses a table that runs past the bootstrap', () => {
    const table = encodeCheckpointTable(blobs);
    expect(() => decodeCheckpointTable(table, 0, table.length + 1, blobs)).toThrow(RafsFormatError);
  });
});
