import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ImageStore } from '../../src/registry/image-store.js';
import { BlobTails, tailLength } from '../../src/snapshotter/blob-tails.js';

const blob = randomBytes(200_000);
const DIGEST = `sha256:${'a'.repeat(64)}`;

/** A store over `blob` that counts its requests (tails or not, as `tails` says). */
function store(tails = true) {
  const ranges: [number, number][] = [];
  let tailReads = 0;
  const s = {
    getBlobRange: async (_d: string, offset: number, length: number) => {
      ranges.push([offset, length]);
      return Buffer.from(blob.subarray(offset, offset + length));
    },
    ...(tails ? {
      getBlobTail: async (_d: string, length: number) => {
        tailReads++;
        return { bytes: Buffer.from(blob.subarray(Math.max(0, blob.length - length))), size: blob.length };
      },
    } : {}),
  } as unknown as ImageStore;
  return { s, ranges, tailReads: () => tailReads };
}

describe('BlobTails', () => {
  it('serves reads inside the tail from it, one request for the tail', async () => {
    const { s, ranges, tailReads } = store();
    const tails = new BlobTails(Promise.resolve(s));
    tails.prefetch(DIGEST, 65_536);
    tails.prefetch(DIGEST, 65_536);
    expect(await tails.read(DIGEST, blob.length - 51, 51)).toEqual(blob.subarray(blob.length - 51));
    expect(await tails.read(DIGEST, blob.length - 60_000, 59_949)).toEqual(blob.subarray(blob.length - 60_000, blob.length - 51));
    expect(tailReads()).toBe(1);
    expect(ranges).toEqual([]);
  });

  it('reads the part before the tail, and what lies wholly outside it, from the store', async () => {
    const { s, ranges } = store();
    const tails = new BlobTails(Promise.resolve(s));
    tails.prefetch(DIGEST, 65_536);
    const tailStart = blob.length - 65_536;
    expect(await tails.read(DIGEST, tailStart - 1000, 3000)).toEqual(blob.subarray(tailStart - 1000, tailStart + 2000));
    expect(await tails.read(DIGEST, 0, 100)).toEqual(blob.subarray(0, 100));
    expect(ranges).toEqual([[tailStart - 1000, 1000], [0, 100]]);
  });

  it('without a tail (none asked for, or a store without suffix ranges) every read goes to the store', async () => {
    const { s, ranges } = store(false);
    const tails = new BlobTails(Promise.resolve(s));
    tails.prefetch(DIGEST, 65_536);
    expect(await tails.read(DIGEST, blob.length - 51, 51)).toEqual(blob.subarray(blob.length - 51));
    expect(await tails.read(`sha256:${'b'.repeat(64)}`, 5, 5)).toEqual(blob.subarray(5, 10));
    expect(ranges).toEqual([[blob.length - 51, 51], [5, 5]]);
  });

  it('a failed tail read falls back to the store', async () => {
    const { s, ranges } = store();
    (s as { getBlobTail: unknown }).getBlobTail = () => Promise.reject(new Error('connection reset'));
    const tails = new BlobTails(Promise.resolve(s));
    tails.prefetch(DIGEST, 4096);
    expect(await tails.read(DIGEST, 10, 10)).toEqual(blob.subarray(10, 20));
    expect(ranges).toEqual([[10, 10]]);
  });

  it('sizes a tail by its layer: 1/128 of it, 64 KiB to 1 MiB', () => {
    expect(tailLength(1000)).toBe(64 << 10);
    expect(tailLength(52_071_976)).toBe(406_813);
    expect(tailLength(1 << 30)).toBe(1 << 20);
  });
});
