import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { detectCompression, openLayerStream } from '../../../src/convert/tar/decompress.js';
import { LayerDecompressError } from '../../../src/convert/tar/errors.js';
import { zstdCompress } from '../../../src/native/index.js';
import { EOA, chunked, fileEntry, parseAll, sh } from './helpers.js';

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of it) parts.push(p);
  return Buffer.concat(parts);
}

const payload = Buffer.concat([fileEntry('a.txt', 'hello'), fileEntry('big', Buffer.alloc(300_000, 7)), EOA]);

/** A zstd skippable frame (what zstd:chunked puts its metadata in). */
const skippable = (data: Buffer): Buffer => {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(0x184d2a50, 0);
  h.writeUInt32LE(data.length, 4);
  return Buffer.concat([h, data]);
};

async function decompressError(data: Buffer, chunk?: number): Promise<LayerDecompressError> {
  try {
    await collect(openLayerStream(chunked(data, chunk)));
  } catch (err) {
    expect(err).toBeInstanceOf(LayerDecompressError);
    return err as LayerDecompressError;
  }
  throw new Error('expected a LayerDecompressError');
}

describe('detectCompression', () => {
  it('sniffs gzip, zstd (also skippable frames), plain; refuses xz and bzip2 by name', () => {
    expect(detectCompression(Buffer.from([0x1f, 0x8b, 8, 0]))).toBe('gzip');
    expect(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(detectCompression(skippable(Buffer.alloc(4)))).toBe('zstd');
    expect(detectCompression(payload.subarray(0, 16))).toBe('none');
    expect(detectCompression(Buffer.alloc(0))).toBe('none');
    expect(() => detectCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))).toThrow(/xz-compressed layers are not supported/);
    expect(() => detectCompression(Buffer.from('BZh91AY'))).toThrow(/bzip2/);
  });
});

describe('openLayerStream', () => {
  it('plain tar passes through untouched, in any chunking, from a Readable too', async () => {
    expect((await collect(openLayerStream(chunked(payload, 333, true)))).equals(payload)).toBe(true);
    expect((await collect(openLayerStream(Readable.from([payload])))).equals(payload)).toBe(true);
    expect(await collect(openLayerStream(chunked(Buffer.alloc(0))))).toEqual(Buffer.alloc(0));
  });

  it('gzip, including multi-member (concatenated) streams, fed in small pieces', async () => {
    const gz = Buffer.concat([gzipSync(payload.subarray(0, 100_000)), gzipSync(payload.subarray(100_000))]);
    expect((await collect(openLayerStream(chunked(gz, 1)))).equals(payload)).toBe(true);
    const entries = await parseAll(openLayerStream(chunked(gz, 4096)));
    expect(entries.map((e) => [e.path, e.size])).toEqual([['a.txt', 5], ['big', 300_000]]);
  });

  it('gzip made by the gzip tool', async () => {
    const gz = Buffer.from(sh('gzip', ['-c', '-9'], { input: payload }), 'latin1');
    expect((await collect(openLayerStream(chunked(gz, 1000)))).equals(payload)).toBe(true);
  });

  it('zstd: multi-frame, skippable frames, fed in small pieces (native streaming decoder)', async () => {
    const zst = Buffer.concat([skippable(Buffer.from('metadata')), zstdCompress(payload.subarray(0, 1000)), zstdCompress(payload.subarray(1000))]);
    expect((await collect(openLayerStream(chunked(zst, 1)))).equals(payload)).toBe(true);
    expect((await collect(openLayerStream(chunked(zst, 7000, true)))).equals(payload)).toBe(true);
  });

  it('zstd made by the zstd tool (streamed frame without a content size)', async () => {
    const zst = Buffer.from(sh('sh', ['-c', 'zstd -q -c --no-content-size -'], { input: payload }), 'latin1');
    const entries = await parseAll(openLayerStream(chunked(zst, 512)));
    expect(entries.map((e) => e.path)).toEqual(['a.txt', 'big']);
  });

  it('a custom zstd decoder can be supplied; each input\'s output is pulled until empty', async () => {
    let pushed = 0;
    let pieces = 0;
    const out = await collect(openLayerStream(chunked(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 1, 2])), {
      zstdDecoder: () => ({
        push: (c) => {
          pushed += c.length;
          pieces = 2;
        },
        pull: () => (pieces > 0 ? Buffer.from(`x${pieces--}`) : Buffer.alloc(0)),
        end: () => undefined,
      }),
    }));
    expect(out.toString()).toBe('x2x1');
    expect(pushed).toBe(6);
  });

  it('corrupt gzip → LayerDecompressError', async () => {
    const gz = gzipSync(payload);
    const bad = Buffer.from(gz);
    for (let i = 20; i < 200; i++) bad[i] ^= 0x55;
    const err = await decompressError(bad, 100);
    expect(err.format).toBe('gzip');
    expect(err.message).toMatch(/corrupt gzip layer/);
  });

  it('truncated gzip → LayerDecompressError', async () => {
    const gz = gzipSync(payload);
    expect((await decompressError(gz.subarray(0, gz.length - 100))).message).toMatch(/corrupt gzip layer: unexpected end of file/);
  });

  it('corrupt and truncated zstd → LayerDecompressError', async () => {
    const zst = zstdCompress(payload);
    const bad = Buffer.from(zst);
    for (let i = 10; i < zst.length; i += 7) bad[i] ^= 0xff;
    expect((await decompressError(bad, 100)).format).toBe('zstd');
    const err = await decompressError(zst.subarray(0, zst.length - 10), 100);
    expect(err.message).toMatch(/corrupt zstd layer/);
  });

  it('errors of the source itself pass through unchanged', async () => {
    async function* failing(): AsyncGenerator<Buffer> {
      yield gzipSync(payload).subarray(0, 50);
      throw new Error('network reset');
    }
    await expect(collect(openLayerStream(failing()))).rejects.toThrow('network reset');
  });

  it('stopping early closes the source', async () => {
    let closed = false;
    const gz = gzipSync(payload);
    async function* src(): AsyncGenerator<Buffer> {
      try {
        for (let i = 0; i < gz.length; i += 100) yield gz.subarray(i, i + 100);
      } finally {
        closed = true;
      }
    }
    for await (const _ of openLayerStream(src())) break;
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(true);
  });
});
