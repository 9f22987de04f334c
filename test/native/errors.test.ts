// Bad input must end in a thrown Error with a stable `code`: never a crash of the process and
// never a result that is silently wrong.
import { describe, expect, it } from 'vitest';
import {
  type Codec,
  compress,
  decompress,
  decompressBatch,
  decompressInto,
  digest,
  type DigestAlgorithm,
  lz4BlockCompress,
  zstdCompress,
} from '../../src/native/index.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { cli, codeOf, MiB, rejectionOf, sample } from './helpers.js';

const CORRUPT = 'ERR_NATIVE_CORRUPT';
const SIZE = 'ERR_NATIVE_SIZE';
const ARGUMENT = 'ERR_NATIVE_ARGUMENT';

const data = sample('node binary 1 MiB');
const codecs: Codec[] = ['zstd', 'lz4_block', 'gzip', 'deflate'];
const unsizedCodecs: Codec[] = ['zstd', 'gzip', 'deflate'];

describe.each(codecs)('%s', (codec) => {
  const packed = compress(codec, data);

  it('truncated to half: rejected with or without the size', () => {
    const half = packed.subarray(0, packed.length >> 1);
    expect(codeOf(() => decompress(codec, half, { size: data.length }))).toMatch(/^ERR_NATIVE_(CORRUPT|SIZE)$/);
    if (codec !== 'lz4_block') expect(codeOf(() => decompress(codec, half))).toBe(CORRUPT);
  });

  it('one byte short of the end: rejected', () => {
    const cut = packed.subarray(0, packed.length - 1);
    expect(codeOf(() => decompress(codec, cut, { size: data.length }))).toMatch(/^ERR_NATIVE_(CORRUPT|SIZE)$/);
  });

  it('expected size one larger than the data: ERR_NATIVE_SIZE', () => {
    expect(codeOf(() => decompress(codec, packed, { size: data.length + 1 }))).toBe(SIZE);
    expect(codeOf(() => decompressInto(codec, packed, Buffer.alloc(data.length + 1)))).toBe(SIZE);
  });

  it('expected size one smaller than the data: rejected', () => {
    // a raw lz4 block cannot tell a short output buffer from malformed input
    const expected = codec === 'lz4_block' ? CORRUPT : SIZE;
    expect(codeOf(() => decompress(codec, packed, { size: data.length - 1 }))).toBe(expected);
    expect(codeOf(() => decompressInto(codec, packed, Buffer.alloc(data.length - 1)))).toBe(expected);
  });

  it('expected size 0 for non-empty data: rejected', () => {
    expect(codeOf(() => decompress(codec, packed, { size: 0 }))).toMatch(/^ERR_NATIVE_(CORRUPT|SIZE)$/);
  });

  it('bytes that are not compressed data at all: ERR_NATIVE_CORRUPT', () => {
    const text = Buffer.from('this is not compressed data, just some text '.repeat(10));
    expect(codeOf(() => decompress(codec, text, { size: 100 }))).toMatch(/^ERR_NATIVE_(CORRUPT|SIZE)$/);
    if (codec !== 'lz4_block') expect(codeOf(() => decompress(codec, text))).toBe(CORRUPT);
  });

  it('random bit flips: an error or output of the expected size (gzip: the original bytes)', () => {
    // only gzip carries a checksum (CRC-32) in what the addon writes: for zstd frames, deflate and
    // lz4 blocks a flip inside a literal can decode "successfully", which is what chunk digests catch
    const checksummed = codec === 'gzip';
    const original = data.subarray(0, 64 * 1024);
    const small = compress(codec, original);
    const random = seededRandom(0x5eed);
    for (let i = 0; i < 300; i++) {
      const bad = Buffer.from(small);
      bad[Math.floor(random() * bad.length)]! ^= 1 << Math.floor(random() * 8);
      let out: Buffer | undefined;
      try {
        out = decompress(codec, bad, { size: original.length });
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code, `flip #${i}`).toMatch(/^ERR_NATIVE_(CORRUPT|SIZE)$/);
      }
      if (out) expect(out.length).toBe(original.length);
      if (out && checksummed) expect(out.equals(original), `flip #${i} decoded to other bytes`).toBe(true);
    }
  });
});

describe('zstd frames with a checksum (as the zstd CLI writes them)', () => {
  const frame = cli('zstd', ['-c', '-3'], data);

  it('bytes flipped in the middle of the frame: ERR_NATIVE_CORRUPT', () => {
    const bad = Buffer.from(frame);
    const mid = bad.length >> 1;
    for (let i = mid; i < mid + 8; i++) bad[i]! ^= 0xff;
    expect(codeOf(() => decompress('zstd', bad, { size: data.length }))).toBe(CORRUPT);
    expect(codeOf(() => decompress('zstd', bad))).toBe(CORRUPT);
  });

  it('random bit flips: an error or the original bytes, never other bytes', () => {
    const random = seededRandom(0xc0ffee);
    const smallData = data.subarray(0, 64 * 1024);
    const small = cli('zstd', ['-c', '-3'], smallData);
    for (let i = 0; i < 300; i++) {
      const bad = Buffer.from(small);
      bad[Math.floor(random() * bad.length)]! ^= 1 << Math.floor(random() * 8);
      let out: Buffer | undefined;
      try {
        out = decompress('zstd', bad);
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code, `flip #${i}`).toMatch(/^ERR_NATIVE_(CORRUPT|SIZE)$/);
      }
      if (out) expect(out.equals(smallData), `flip #${i} decoded to other bytes`).toBe(true);
    }
  });
});

describe('decompression bombs', () => {
  const zeros = Buffer.alloc(64 * MiB);

  it('zstd frame with its content size: ERR_NATIVE_SIZE past maxSize', () => {
    expect(codeOf(() => decompress('zstd', zstdCompress(zeros), { maxSize: MiB }))).toBe(SIZE);
  });

  it('zstd frame without a content size (zstd -c from a pipe): ERR_NATIVE_SIZE past maxSize', () => {
    expect(codeOf(() => decompress('zstd', cli('zstd', ['-c'], zeros), { maxSize: MiB }))).toBe(SIZE);
  });

  it.each(['gzip', 'deflate'] as const)('%s: ERR_NATIVE_SIZE past maxSize', (codec) => {
    expect(codeOf(() => decompress(codec, compress(codec, zeros, 1), { maxSize: MiB }))).toBe(SIZE);
  });

  it.each(codecs)('%s: a chunk claiming 4 KiB that expands to 64 MiB is refused by every entry point', async (codec) => {
    const bomb = compress(codec, zeros);
    const expected = codec === 'lz4_block' ? CORRUPT : SIZE;
    expect(codeOf(() => decompress(codec, bomb, { size: 4096 }))).toBe(expected);
    expect(codeOf(() => decompressInto(codec, bomb, Buffer.alloc(4096)))).toBe(expected);
    expect((await rejectionOf(decompressBatch(codec, [bomb], [4096]))).code).toBe(expected);
  });

  it.each(unsizedCodecs)('%s: exactly maxSize bytes still decode', (codec) => {
    expect(decompress(codec, compress(codec, zeros.subarray(0, MiB)), { maxSize: MiB }).length).toBe(MiB);
  });
});

describe('arguments', () => {
  const notBuffers: unknown[] = ['a string', 42, [1, 2, 3], undefined, null, new ArrayBuffer(8), { length: 3 }];

  it('unknown codec: ERR_NATIVE_ARGUMENT from every entry point', () => {
    const codec = 'brotli' as Codec;
    expect(codeOf(() => compress(codec, data))).toBe(ARGUMENT);
    expect(codeOf(() => decompress(codec, data, { size: 1 }))).toBe(ARGUMENT);
    expect(codeOf(() => decompressInto(codec, data, Buffer.alloc(1)))).toBe(ARGUMENT);
  });

  it('unknown digest algorithm: ERR_NATIVE_ARGUMENT', () => {
    expect(codeOf(() => digest('md5' as DigestAlgorithm, data))).toBe(ARGUMENT);
  });

  it.each(notBuffers)('input %o instead of bytes: ERR_NATIVE_ARGUMENT', (bad) => {
    const input = bad as Uint8Array;
    expect(codeOf(() => compress('zstd', input))).toBe(ARGUMENT);
    expect(codeOf(() => decompress('gzip', input))).toBe(ARGUMENT);
    expect(codeOf(() => decompressInto('zstd', zstdCompress(data), input))).toBe(ARGUMENT);
    expect(codeOf(() => digest('blake3', input))).toBe(ARGUMENT);
  });

  it('lz4_block without a size: ERR_NATIVE_ARGUMENT', () => {
    expect(codeOf(() => decompress('lz4_block', lz4BlockCompress(data)))).toBe(ARGUMENT);
  });

  it.each([-1, 1.5, NaN, Infinity])('size %d: ERR_NATIVE_ARGUMENT', (size) => {
    expect(codeOf(() => decompress('zstd', zstdCompress(data), { size }))).toBe(ARGUMENT);
  });

  it.each([
    ['zstd', 23],
    ['gzip', 13],
    ['deflate', -1],
  ] as const)('%s level %i out of range: ERR_NATIVE_ARGUMENT', (codec, level) => {
    expect(codeOf(() => compress(codec, data, level))).toBe(ARGUMENT);
  });
});
