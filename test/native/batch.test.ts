// The thread-pool batch API must agree with the synchronous calls item for item, and say which
// item failed; decompressInto must write exactly into the slice it is given.
import { describe, expect, it } from 'vitest';
import {
  type Codec,
  compress,
  compressBatch,
  decompress,
  decompressBatch,
  decompressInto,
  digest,
  digestBatch,
} from '../../src/native/index.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { codeOf, KiB, rejectionOf, sample } from './helpers.js';

const codecs: Codec[] = ['zstd', 'lz4_block', 'gzip', 'deflate'];

/** 64 chunks of real data of uneven sizes (0 to ~200 KiB), as a chunker would cut them. */
function chunks(): Buffer[] {
  const src = sample('node binary 16 MiB');
  const random = seededRandom(64);
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; i < 64; i++) {
    const n = i === 10 ? 0 : Math.floor(random() * 200 * KiB);
    out.push(src.subarray(off, off + n));
    off += n;
  }
  return out;
}

const inputs = chunks();
const sizes = inputs.map((c) => c.length);

describe.each(codecs)('%s batches', (codec) => {
  const packed = inputs.map((c) => compress(codec, c));

  it('compressBatch = compress, item for item', async () => {
    const out = await compressBatch(codec, inputs);
    expect(out.length).toBe(inputs.length);
    out.forEach((b, i) => expect(b.equals(packed[i]!), `item ${i}`).toBe(true));
  });

  it('decompressBatch with sizes = the original chunks', async () => {
    const out = await decompressBatch(codec, packed, sizes);
    out.forEach((b, i) => expect(b.equals(inputs[i]!), `item ${i}`).toBe(true));
  });

  it.each([5, 37, 63])('a corrupt item %i rejects naming that item', async (bad) => {
    const broken = [...packed];
    broken[bad] = Buffer.from('definitely not compressed data, long enough to be parsed as some');
    const err = await rejectionOf(decompressBatch(codec, broken, sizes));
    expect(err.message).toMatch(new RegExp(`^item ${bad}: `));
    expect(err.code).toMatch(/^ERR_NATIVE_(CORRUPT|SIZE)$/);
  });

  it('a wrong size for item 37 rejects naming that item with ERR_NATIVE_SIZE', async () => {
    const wrong = [...sizes];
    wrong[37] = sizes[37]! + 1;
    const err = await rejectionOf(decompressBatch(codec, packed, wrong));
    expect(err.message).toMatch(/^item 37: /);
    expect(err.code).toBe('ERR_NATIVE_SIZE');
  });
});

describe.each(['zstd', 'gzip', 'deflate'] as const)('%s batches without sizes', (codec) => {
  it('= decompress without size = the original chunks', async () => {
    const packed = inputs.map((c) => compress(codec, c));
    const out = await decompressBatch(codec, packed);
    out.forEach((b, i) => {
      expect(b.equals(decompress(codec, packed[i]!)), `item ${i}`).toBe(true);
      expect(b.equals(inputs[i]!), `item ${i}`).toBe(true);
    });
  });
});

describe('batch arguments', () => {
  it('a non-buffer at index 40 rejects naming index 40', async () => {
    const bad: unknown[] = [...inputs];
    bad[40] = 'not a buffer';
    const err = await rejectionOf(compressBatch('zstd', bad as Uint8Array[]));
    expect(err.code).toBe('ERR_NATIVE_ARGUMENT');
    expect(err.message).toMatch(/\b40\b/);
  });

  it('lz4_block without sizes rejects with ERR_NATIVE_ARGUMENT', async () => {
    const err = await rejectionOf(decompressBatch('lz4_block', [compress('lz4_block', inputs[0]!)]));
    expect(err.code).toBe('ERR_NATIVE_ARGUMENT');
  });

  it('a sizes array of another length rejects', async () => {
    await expect(decompressBatch('zstd', [compress('zstd', inputs[0]!)], [1, 2])).rejects.toThrow(RangeError);
  });

  it('an unknown codec rejects with ERR_NATIVE_ARGUMENT', async () => {
    const err = await rejectionOf(compressBatch('brotli' as Codec, inputs));
    expect(err.code).toBe('ERR_NATIVE_ARGUMENT');
  });

  it('empty batches resolve to empty arrays', async () => {
    expect(await compressBatch('zstd', [])).toEqual([]);
    expect(await decompressBatch('zstd', [])).toEqual([]);
    expect(await digestBatch('blake3', [])).toEqual([]);
  });
});

describe.each(['blake3', 'sha256'] as const)('digestBatch(%s)', (algo) => {
  it('= digest, item for item', async () => {
    const out = await digestBatch(algo, inputs);
    expect(out.length).toBe(inputs.length);
    out.forEach((d, i) => expect(d.equals(digest(algo, inputs[i]!)), `item ${i}`).toBe(true));
  });
});

describe.each(codecs)('%s decompressInto a pooled buffer', (codec) => {
  it('fills each slot exactly, leaving the guard bytes around it alone', () => {
    // one allocation for every chunk, as a reader pool does; a guard byte between slots catches
    // writes past the end and the slots' non-zero byteOffset catches writes from the start of the pool
    const GUARD = 0xa5;
    const total = sizes.reduce((a, n) => a + n + 1, 1);
    const pool = Buffer.alloc(total, GUARD);
    let off = 1;
    inputs.forEach((chunk, i) => {
      const slot = pool.subarray(off, off + chunk.length);
      expect(decompressInto(codec, compress(codec, chunk), slot), `item ${i}`).toBe(chunk.length);
      expect(slot.equals(chunk), `item ${i}`).toBe(true);
      off += chunk.length + 1;
      expect(pool[off - 1], `guard after item ${i}`).toBe(GUARD);
    });
    expect(pool[0]).toBe(GUARD);
  });

  it('into a small Buffer from Node\'s shared allocation pool', () => {
    const chunk = inputs[1]!.subarray(0, 3000);
    const slot = Buffer.allocUnsafe(chunk.length); // < Buffer.poolSize / 2: carved from the shared pool
    expect(slot.buffer.byteLength).toBeGreaterThan(slot.length);
    expect(decompressInto(codec, compress(codec, chunk), slot)).toBe(chunk.length);
    expect(slot.equals(chunk)).toBe(true);
  });

  it('a slot of the wrong size is rejected with ERR_NATIVE_SIZE or ERR_NATIVE_CORRUPT', () => {
    const chunk = inputs[1]!;
    expect(codeOf(() => decompressInto(codec, compress(codec, chunk), Buffer.alloc(chunk.length + 100)))).toBe('ERR_NATIVE_SIZE');
    expect(codeOf(() => decompressInto(codec, compress(codec, chunk), Buffer.alloc(chunk.length - 100)))).toMatch(
      /^ERR_NATIVE_(CORRUPT|SIZE)$/,
    );
  });
});
