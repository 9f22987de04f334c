import { describe, expect, it } from 'vitest';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { decodeTarHeader, encodeTarHeader, walkReverseTar } from '../../src/rafs/reverse-tar.js';
import { bufferSource } from '../../src/rafs/source.js';
import { TOC_BLOB } from './helpers.js';
import { itFixtures, lazyFixture } from '../helpers/fixtures.js';

const tocBlob = lazyFixture('toc', TOC_BLOB);

async function sections(blob: Buffer): Promise<[string, number, number][]> {
  const found: [string, number, number][] = [];
  for await (const s of walkReverseTar(bufferSource(blob))) found.push([s.name, s.dataOffset, s.size]);
  return found;
}

describe('reverse-tar section headers', () => {
  itFixtures('are written byte-identical to upstream GNU headers', () => {
    expect(encodeTarHeader('rafs.blob.toc', 512)).toEqual(tocBlob().subarray(9522, 10034));
    expect(encodeTarHeader('image.blob', 2829)).toEqual(tocBlob().subarray(2829, 3341));
  });

  it('round-trip sizes, including GNU base-256 beyond 8 GiB', () => {
    for (const size of [0, 1, 8 ** 11 - 1, 8 ** 11, 10 * 2 ** 30, 2 ** 50]) {
      expect(decodeTarHeader(encodeTarHeader('image.blob', size), 0)).toEqual({ name: 'image.blob', size });
    }
  });

  itFixtures('walk the fixture backwards: TOC, bootstrap, blob meta, chunk data', async () => {
    expect(await sections(tocBlob())).toEqual([
      ['rafs.blob.toc', 9010, 512],
      ['image.boot', 7997, 501],
      ['blob.meta', 3341, 4144],
      ['image.blob', 0, 2829],
    ]);
  });

  it('reject bad checksums, magic, types and sections reaching before the blob', async () => {
    const flip = (at: number): Buffer => {
      const h = encodeTarHeader('image.boot', 10);
      h[at]! ^= 1;
      return h;
    };
    expect(() => decodeTarHeader(flip(0), 77)).toThrow('tar header at offset 77: checksum mismatch');
    expect(() => decodeTarHeader(flip(257), 0)).toThrow(/ustar magic/);
    const dir = encodeTarHeader('x', 0);
    dir.write('5', 156);
    expect(() => decodeTarHeader(dir, 0)).toThrow(RafsFormatError);
    await expect(sections(Buffer.concat([Buffer.alloc(5), encodeTarHeader('image.blob', 10)]))).rejects.toThrow(/starts before the blob/);
    await expect(sections(Buffer.concat([Buffer.alloc(100), encodeTarHeader('image.blob', 10)]))).rejects.toThrow(RafsFormatError);
  });
});
