// Digests against b3sum and sha256sum, one-shot and incremental.
import { describe, expect, it } from 'vitest';
import { blake3, blake3Raw, digest, type DigestAlgorithm, Hasher, sha256, sha256Raw } from '../../src/native/index.js';
import { cli, codeOf, sample, samples } from './helpers.js';

const b3sum = (data: Uint8Array): string => cli('b3sum', ['--no-names'], data).toString().trim();
const sha256sum = (data: Uint8Array): string => cli('sha256sum', ['-'], data).toString().split(' ')[0]!;

describe.each(samples())('$name', ({ data }) => {
  it('blake3 = b3sum', () => {
    const hex = blake3(data);
    expect(hex).toBe(b3sum(data));
    expect(blake3Raw(data).toString('hex')).toBe(hex);
  });

  it('sha256 = sha256sum', () => {
    const hex = sha256(data);
    expect(hex).toBe(sha256sum(data));
    expect(sha256Raw(data).toString('hex')).toBe(hex);
  });
});

describe('inputs that are views into a larger buffer', () => {
  // the addon must honour byteOffset/byteLength, not hash the whole ArrayBuffer behind a view
  const whole = sample('node binary 1 MiB');
  const view = new Uint8Array(whole.buffer, whole.byteOffset + 1000, 70_001);

  it('blake3 and sha256 of a Uint8Array view = the CLIs on those bytes', () => {
    expect(blake3(view)).toBe(b3sum(view));
    expect(sha256(view)).toBe(sha256sum(view));
  });
});

describe.each(['blake3', 'sha256'] as const)('Hasher(%s)', (algo: DigestAlgorithm) => {
  const data = sample('node binary 16 MiB');
  const oneShot = algo === 'blake3' ? blake3Raw(data) : sha256Raw(data);

  it('fed in odd-sized pieces = one-shot = the CLI', () => {
    // piece sizes straddle the 64-byte block and blake3's 1 KiB chunk boundaries, plus empty updates
    const pieces = [1, 0, 63, 65, 1023, 1025, 4097, 0, 65_537, 999_983];
    const hasher = new Hasher(algo);
    let off = 0;
    for (let i = 0; off < data.length; i++) {
      const n = pieces[i % pieces.length]!;
      hasher.update(data.subarray(off, off + n));
      off += n;
    }
    const hex = hasher.hexDigest();
    expect(hex).toBe(oneShot.toString('hex'));
    expect(hex).toBe(algo === 'blake3' ? b3sum(data) : sha256sum(data));
  });

  it('of nothing = the digest of empty input', () => {
    expect(new Hasher(algo).digest().equals(algo === 'blake3' ? blake3Raw(Buffer.alloc(0)) : sha256Raw(Buffer.alloc(0)))).toBe(true);
  });

  it('update returns the hasher for chaining', () => {
    const hasher = new Hasher(algo);
    expect(hasher.update(data.subarray(0, 10))).toBe(hasher);
  });

  it('digest() twice throws, and so does update() after digest()', () => {
    const hasher = new Hasher(algo).update(data.subarray(0, 1000));
    hasher.digest();
    expect(codeOf(() => hasher.digest())).toBe('ERR_NATIVE_ARGUMENT');
    expect(codeOf(() => hasher.update(data.subarray(0, 10)))).toBe('ERR_NATIVE_ARGUMENT');
  });

  it('independent hashers do not share state', () => {
    const a = new Hasher(algo);
    const b = new Hasher(algo);
    a.update(data.subarray(0, 5000));
    b.update(data.subarray(0, 2500));
    b.update(data.subarray(2500, 5000));
    expect(a.digest().equals(b.digest())).toBe(true);
  });
});

describe('Hasher.clone', () => {
  it('digests the prefix while the original goes on', () => {
    const a = Buffer.from('first part, ');
    const b = Buffer.from('second part');
    for (const algo of ['blake3', 'sha256'] as const) {
      const h = new Hasher(algo).update(a);
      const prefix = h.clone().digest();
      h.update(b);
      expect(prefix.equals(digest(algo, a))).toBe(true);
      expect(h.digest().equals(digest(algo, Buffer.concat([a, b])))).toBe(true);
    }
  });
});
