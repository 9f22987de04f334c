import { describe, expect, it } from 'vitest';
import { RafsEncodeError, RafsFormatError } from '../../src/rafs/errors.js';
import { decodeToc, decodeTocEntry, encodeToc, encodeTocEntry, type TocEntry } from '../../src/rafs/toc.js';
import { TOC_BLOB } from './helpers.js';
import { itFixtures, lazyFixture } from '../helpers/fixtures.js';

const tocBlob = lazyFixture('toc', TOC_BLOB);
const TOC_OFFSET = 9010;

describe('TOC entries', () => {
  itFixtures('decode the 4 entries of the TOC fixture', () => {
    const toc = decodeToc(tocBlob().subarray(TOC_OFFSET, TOC_OFFSET + 512), TOC_OFFSET);
    expect(toc.map(({ name, compressor, compressedOffset, compressedSize, uncompressedSize }) => [name, compressor, compressedOffset, compressedSize, uncompressedSize])).toEqual([
      ['image.blob', 'none', 2829, 2829, 12288],
      ['blob.meta', 'none', 3341, 48, 48],
      ['blob.meta.header', 'none', 3389, 4096, 4096],
      ['image.boot', 'zstd', 7997, 501, 20480],
    ]);
    expect(toc[3]!.digest.toString('hex')).toBe('d85f1b77aab4849b34ffc447fee67a46ae9eb2af8533bf5faa62224df1796871');
  });

  itFixtures('round-trip (reserved bytes are written as zeros)', () => {
    const entries: TocEntry[] = [
      { name: 'blob.meta.header', compressor: 'none', digest: Buffer.alloc(32, 1), compressedOffset: 2 ** 50, compressedSize: 4096, uncompressedSize: 4096 },
      { name: 'image.boot', compressor: 'zstd', digest: Buffer.alloc(32, 2), compressedOffset: 1, compressedSize: 2, uncompressedSize: 3 },
      { name: 'x', compressor: 'lz4_block', digest: Buffer.alloc(32, 3), compressedOffset: 0, compressedSize: 0, uncompressedSize: 0 },
    ];
    const encoded = encodeToc(entries);
    expect(encoded.length).toBe(384);
    expect(decodeToc(encoded)).toEqual(entries);
    const fromFixture = decodeTocEntry(tocBlob(), TOC_OFFSET + 128);
    expect(encodeTocEntry(fromFixture).subarray(0, 120)).toEqual(tocBlob().subarray(TOC_OFFSET + 128, TOC_OFFSET + 248));
  });

  it('reject unknown compression, empty names and partial entries', () => {
    const entry = encodeTocEntry({ name: 'a', compressor: 'none', digest: Buffer.alloc(32), compressedOffset: 0, compressedSize: 0, uncompressedSize: 0 });
    const gz = Buffer.from(entry);
    gz.writeUInt32LE(0x8, 0);
    expect(() => decodeToc(gz, 1000)).toThrow('TOC entry at offset 1000: unknown compression flags 0x8');
    const noName = Buffer.from(entry);
    noName.fill(0, 8, 24);
    expect(() => decodeTocEntry(noName)).toThrow(/empty name/);
    expect(() => decodeToc(entry.subarray(0, 100))).toThrow(RafsFormatError);
    expect(() => encodeTocEntry({ ...decodeTocEntry(entry), name: 'seventeen-chars!!' })).toThrow(RafsEncodeError);
  });
});
