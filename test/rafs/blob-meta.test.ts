import { describe, expect, it } from 'vitest';
import { type CiEntry, CiV2Flag, decodeCiHeader, decodeCiV1, decodeCiV2, encodeCiHeader, encodeCiV1 } from '../../src/rafs/blob-meta.js';
import { RafsEncodeError, RafsFormatError } from '../../src/rafs/errors.js';
import { DIGEST_BLOB, TOC_BLOB } from './helpers.js';
import { itFixtures, lazyFixture } from '../helpers/fixtures.js';

const tocBlob = lazyFixture('toc', TOC_BLOB);
const digestBlob = lazyFixture('blobs', DIGEST_BLOB);

describe('CI header', () => {
  itFixtures('decodes the fixture headers', () => {
    expect(decodeCiHeader(tocBlob(), 3389)).toEqual({
      features: 0x1, ciCompressor: 'none', entries: 3, ciOffset: 3341, ciCompressedSize: 48, ciUncompressedSize: 48, zranOffset: 0, zranSize: 0, zranCount: 0,
    });
    expect(decodeCiHeader(digestBlob(), 8346)).toMatchObject({ features: 0x70000021, entries: 2, ciOffset: 8314 });
  });

  itFixtures('round-trips and checks both magics', () => {
    const header = { features: 0x70000023, ciCompressor: 'zstd' as const, entries: 9, ciOffset: 2 ** 40, ciCompressedSize: 100, ciUncompressedSize: 144, zranOffset: 1, zranSize: 2, zranCount: 3 };
    const encoded = encodeCiHeader(header);
    expect(encoded.length).toBe(4096);
    expect(encoded.equals(tocBlob().subarray(3389, 3389 + 4096))).toBe(false);
    expect(decodeCiHeader(encoded)).toEqual(header);
    expect(encodeCiHeader(decodeCiHeader(tocBlob(), 3389))).toEqual(tocBlob().subarray(3389, 3389 + 4096));
    const badTail = Buffer.from(encoded);
    badTail.writeUInt32LE(0, 4092);
    expect(() => decodeCiHeader(badTail)).toThrow(/trailing magic/);
    expect(() => decodeCiHeader(tocBlob(), 3341)).toThrow(/^CI header at offset 3341: bad magic/);
  });
});

describe('CI v1 entries', () => {
  itFixtures('decode the fixture: entry 0 = coff 0, csize 1211, uoff 0, usize 2816', () => {
    const entries = decodeCiV1(tocBlob(), 3, 3341);
    expect(entries[0]).toEqual({ compressedOffset: 0, compressedSize: 1211, uncompressedOffset: 0, uncompressedSize: 2816, compressed: true });
    expect(entries.map((e) => e.uncompressedOffset)).toEqual([0, 4096, 8192]);
    expect(encodeCiV1(entries)).toEqual(tocBlob().subarray(3341, 3341 + 48));
  });

  it('round-trip the extremes of every field', () => {
    const entries: CiEntry[] = [
      { compressedOffset: 2 ** 40 - 1, compressedSize: 0x1000000, uncompressedOffset: 2 ** 44 - 4096, uncompressedSize: 0x1000000, compressed: false },
      { compressedOffset: 0, compressedSize: 1, uncompressedOffset: 4096, uncompressedSize: 0x123456, compressed: true },
      { compressedOffset: 12345, compressedSize: 0xfffff, uncompressedOffset: 0x100000, uncompressedSize: 0x100001, compressed: true },
    ];
    expect(decodeCiV1(encodeCiV1(entries), 3)).toEqual(entries);
  });

  it('refuse what v1 cannot express', () => {
    const ok: CiEntry = { compressedOffset: 0, compressedSize: 10, uncompressedOffset: 0, uncompressedSize: 10, compressed: false };
    expect(() => encodeCiV1([{ ...ok, uncompressedOffset: 100 }])).toThrow(/4 KiB/);
    expect(() => encodeCiV1([{ ...ok, compressedSize: 0x1000001 }])).toThrow(RafsEncodeError);
    expect(() => encodeCiV1([{ ...ok, compressed: true }])).toThrow(/sizes differ/);
    expect(() => decodeCiV1(Buffer.alloc(20), 2)).toThrow(RafsFormatError);
  });
});

describe('CI v2 entries', () => {
  it('decode offsets, sizes (not minus one), flags and the data word', () => {
    const raw = Buffer.alloc(24);
    raw.writeUInt32LE(5, 0); // uoff >> 12
    raw.writeUInt32LE((0x1 << 24) | 0xfff, 4); // flags COMPRESSED in bits 56..63, size-1 = 0xfff
    raw.writeBigUInt64LE((777n << 40n) | 0x12345n, 8);
    raw.writeUInt32LE(0xc0ffee, 16);
    raw.writeUInt32LE(3, 20);
    raw.writeUInt8(0x01 | CiV2Flag.HAS_CRC32, 7);
    expect(decodeCiV2(raw, 1)).toEqual([{
      uncompressedOffset: 5 * 4096, uncompressedSize: 0x1000, compressedOffset: 0x12345, compressedSize: 777, compressed: true,
      flags: 0x11, dataLo: 0xc0ffee, dataHi: 3,
    }]);
  });
});
