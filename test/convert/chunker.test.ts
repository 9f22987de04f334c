import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CHUNK_SIZE, assertChunkSize, fixedSizeChunks } from '../../src/convert/chunker.js';

async function collect(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, chunkSize: number): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of fixedSizeChunks(source, chunkSize)) chunks.push(chunk);
  return chunks;
}

/** `data` cut into pieces of the given sizes, repeating the pattern until it is used up. */
function pieces(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0, i = 0; offset < data.length; i++) {
    const size = sizes[i % sizes.length];
    out.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return out;
}

describe('fixedSizeChunks', () => {
  it('re-cuts pieces of any size into full chunks and one shorter tail', async () => {
    const data = randomBytes(3 * 4096 + 100);
    const chunks = await collect(pieces(data, [1, 4095, 7000, 3, 20000]), 4096);
    expect(chunks.map((chunk) => chunk.length)).toEqual([4096, 4096, 4096, 100]);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });

  it('yields no empty tail when the data is a whole number of chunks, and nothing for no data', async () => {
    expect((await collect([randomBytes(8192)], 4096)).map((chunk) => chunk.length)).toEqual([4096, 4096]);
    expect(await collect([], 4096)).toEqual([]);
    expect(await collect([Buffer.alloc(0)], 4096)).toEqual([]);
  });

  it('reads a Node stream and uses 1 MiB chunks by default', async () => {
    const data = randomBytes(DEFAULT_CHUNK_SIZE + 1);
    const chunks: Buffer[] = [];
    for await (const chunk of fixedSizeChunks(Readable.from(pieces(data, [65536])))) chunks.push(chunk);
    expect(chunks.map((chunk) => chunk.length)).toEqual([DEFAULT_CHUNK_SIZE, 1]);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });

  it('copies, so a source that reuses its buffer cannot change chunks already yielded', async () => {
    const reused = Buffer.alloc(3000);
    async function* source() {
      for (let i = 1; i <= 3; i++) yield reused.fill(i);
    }
    const chunks = await collect(source(), 4096);
    expect(chunks[0].subarray(0, 3000).every((byte) => byte === 1)).toBe(true);
    expect(chunks[0].subarray(3000).every((byte) => byte === 2)).toBe(true);
    expect(chunks[1].every((byte, i) => byte === (i < 3000 + 3000 - 4096 ? 2 : 3))).toBe(true);
  });

  it('gives the short tail a buffer of its own size', async () => {
    const [tail] = await collect([Buffer.from('hostname\n')], DEFAULT_CHUNK_SIZE);
    expect(tail.buffer.byteLength).toBeLessThan(DEFAULT_CHUNK_SIZE);
  });
});

describe('assertChunkSize', () => {
  it('accepts the powers of two nydus-image accepts, 4 KiB to 16 MiB', () => {
    for (const size of [0x1000, 0x100000, 0x1000000]) expect(() => assertChunkSize(size)).not.toThrow();
  });

  it('rejects everything else', () => {
    for (const size of [0, -4096, 0x800, 0x1001, 3 * 4096, 0x2000000, 4096.5, NaN]) {
      expect(() => assertChunkSize(size), String(size)).toThrow(RangeError);
    }
  });

  it('is checked before any input is read', async () => {
    await expect(collect([Buffer.alloc(10)], 1000)).rejects.toThrow(/power of two from 4096 to 16777216, got 1000/);
  });
});
