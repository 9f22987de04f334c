import { describe, expect, it } from 'vitest';
import {
  decodeChunkFormat, decodeChunkIndex, decodeChunkInfo, encodeChunkFormat, encodeChunkIndex, encodeChunkInfo,
} from '../../src/rafs/chunk.js';
import { RafsEncodeError, RafsFormatError } from '../../src/rafs/errors.js';
import type { ChunkRef } from '../../src/rafs/tree.js';
import { itFixtures, lazyFixture } from '../helpers/fixtures.js';

const boot = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');

describe('chunk index entries', () => {
  itFixtures('decode the fixture files: blob 0 (device 1), CI index and uncompressed block', () => {
    expect(decodeChunkIndex(boot(), 0x30e0)).toEqual({ blobIndex: 0, ciIndex: 0, blockAddr: 0 });
    expect(decodeChunkIndex(boot(), 0x3140)).toEqual({ blobIndex: 0, ciIndex: 1, blockAddr: 5 });
  });

  it('store blob_index + 1 and the CI index bits 16..23 in the high byte', () => {
    const encoded = encodeChunkIndex({ blobIndex: 3, ciIndex: 0xab1234, blockAddr: 0xfffffffe });
    expect(encoded.toString('hex')).toBe('3412' + '04ab' + 'feffffff');
    expect(decodeChunkIndex(encoded)).toEqual({ blobIndex: 3, ciIndex: 0xab1234, blockAddr: 0xfffffffe });
    expect(decodeChunkIndex(encodeChunkIndex({ blobIndex: 253, ciIndex: 0xffffff, blockAddr: 0 }))).toEqual({ blobIndex: 253, ciIndex: 0xffffff, blockAddr: 0 });
    expect(() => encodeChunkIndex({ blobIndex: 254, ciIndex: 0, blockAddr: 0 })).toThrow(RafsEncodeError);
    expect(() => encodeChunkIndex({ blobIndex: 0, ciIndex: 2 ** 24, blockAddr: 0 })).toThrow(RafsEncodeError);
    expect(() => decodeChunkIndex(Buffer.alloc(8))).toThrow(/device id 0/);
  });

  it('chunk format: 0x20 | log2(chunk / block)', () => {
    expect(encodeChunkFormat(8)).toBe(0x28);
    expect(decodeChunkFormat(0x28, 0)).toBe(8);
    expect(decodeChunkFormat(0x3f, 0)).toBe(31);
    expect(() => decodeChunkFormat(0x08, 16)).toThrow('chunk format at offset 16: unsupported chunk format 0x8');
    expect(() => decodeChunkFormat(0x128, 16)).toThrow(RafsFormatError);
  });
});

describe('chunk info table entries', () => {
  itFixtures('decode the fixture table (digest-sorted, flags COMPRESSED)', () => {
    const first = decodeChunkInfo(boot(), 0x4000);
    expect(first).toMatchObject({
      blobIndex: 0, ciIndex: 1, compressed: true, compressedSize: 0xb9e, uncompressedSize: 0x3458,
      compressedOffset: 0x12dc, uncompressedOffset: 0x5000, fileOffset: 0,
    });
    expect(first.digest.toString('hex')).toBe('812465bcc9e883935983 11dc5fc93abaecceF0185bcd99f9701d17ebdf9adc3f'.replace(/ /g, '').toLowerCase());
    expect(first.crc32).toBeUndefined();
    expect(encodeChunkInfo(first)).toEqual(boot().subarray(0x4000, 0x4050));
  });

  it('round-trip with a CRC', () => {
    const chunk: ChunkRef = {
      blobIndex: 7, ciIndex: 0xffffff, digest: Buffer.alloc(32, 0xab), compressedOffset: 2 ** 40 - 1, compressedSize: 0x1000000,
      uncompressedOffset: 2 ** 44 - 4096, uncompressedSize: 0x1000000, compressed: false, fileOffset: 2 ** 50, crc32: 0xdeadbeef,
    };
    const encoded = encodeChunkInfo(chunk);
    expect(encoded.length).toBe(80);
    expect(encoded.readUInt32LE(36)).toBe(0x10);
    expect(decodeChunkInfo(encoded)).toEqual(chunk);
    expect(() => encodeChunkInfo({ ...chunk, digest: Buffer.alloc(31) })).toThrow(/digest length/);
  });
});
