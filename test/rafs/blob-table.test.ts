import { describe, expect, it } from 'vitest';
import {
  BlobFeature, decodeBlobEntry, decodeBlobTable, decodeDeviceSlot, encodeBlobEntry, encodeDeviceSlot,
} from '../../src/rafs/blob-table.js';
import { RafsEncodeError, RafsFormatError } from '../../src/rafs/errors.js';
import type { BlobInfo } from '../../src/rafs/tree.js';
import { DIGEST_BLOB } from './helpers.js';
import { itFixtures, lazyFixture } from '../helpers/fixtures.js';

const boot = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');
const rules = { chunkSize: 0x100000, tarfs: false };

describe('blob table', () => {
  itFixtures('decodes the nydus 2.2 fixture entry', () => {
    const { index, blob } = decodeBlobEntry(boot(), 0x1000);
    expect(index).toBe(0);
    expect(blob).toMatchObject({
      blobId: DIGEST_BLOB, chunkSize: 0x100000, chunkCount: 2, compressor: 'zstd', digester: 'blake3',
      features: 0x70000021, compressedSize: 14554, uncompressedSize: 0x9000, tocSize: 1024,
      ciCompressor: 'none', ciOffset: 8314, ciCompressedSize: 32, ciUncompressedSize: 32,
    });
    expect(blob.tocDigest.toString('hex')).toBe('cfc89ed0739aef4eb1bf0904f0dfdb1c857134eca7319465baae95a99b84acde');
    expect(decodeBlobTable(boot(), 0x1000, 256, rules)).toEqual([blob]);
  });

  itFixtures('re-encodes the fixture entry byte for byte and round-trips', () => {
    const { blob } = decodeBlobEntry(boot(), 0x1000);
    expect(encodeBlobEntry(blob, 0)).toEqual(boot().subarray(0x1000, 0x1100));
    const other: BlobInfo = { ...blob, blobId: 'x'.repeat(64), compressor: 'lz4_block', digester: 'sha256', ciCompressor: 'zstd', compressedSize: 2 ** 40, uncompressedSize: 2 ** 44 };
    expect(decodeBlobEntry(encodeBlobEntry(other, 9))).toEqual({ index: 9, blob: other });
  });

  itFixtures('applies nydusd rules to each entry', () => {
    const { blob } = decodeBlobEntry(boot(), 0x1000);
    const table = (b: BlobInfo, index = 0): Buffer => encodeBlobEntry(b, index);
    expect(() => decodeBlobTable(table(blob, 1), 0, 256, rules)).toThrow(/blob index 1 does not match its position 0/);
    expect(() => decodeBlobTable(table(blob), 0, 256, { ...rules, chunkSize: 0x10000 })).toThrow(/chunk size/);
    expect(() => decodeBlobTable(table({ ...blob, features: 0x70000020 }), 0, 256, rules)).toThrow(/ALIGNED/);
    expect(decodeBlobTable(table({ ...blob, features: 0x40000040, uncompressedSize: 1000 }), 0, 256, { ...rules, tarfs: true })).toHaveLength(1);
    expect(() => decodeBlobTable(table({ ...blob, uncompressedSize: 1000 }), 0, 256, rules)).toThrow(/4 KiB/);
    expect(() => decodeBlobTable(table({ ...blob, ciUncompressedSize: 48 }), 0, 256, rules)).toThrow(/CI size 48 does not match 2 chunks/);
    expect(() => decodeBlobTable(table({ ...blob, ciCompressedSize: 64 }), 0, 256, rules)).toThrow(/compressed CI is larger/);
    expect(() => decodeBlobTable(table({ ...blob, features: blob.features | BlobFeature.BATCH }), 0, 256, rules)).toThrow(/without CHUNK_INFO_V2/);
    const v2 = { ...blob, features: blob.features | BlobFeature.CHUNK_INFO_V2 };
    expect(() => decodeBlobTable(table(v2), 0, 256, rules)).toThrow(/CI size/);
    expect(decodeBlobTable(table({ ...v2, ciUncompressedSize: 48, ciCompressedSize: 48 }), 0, 256, rules)).toHaveLength(1);
    expect(decodeBlobTable(table({ ...v2, features: v2.features | BlobFeature.ZRAN, ciUncompressedSize: 200 }), 0, 256, rules)).toHaveLength(1);
    const badId = table(blob);
    badId.write('\0', 10, 'latin1');
    expect(() => decodeBlobTable(badId, 0, 256, rules)).toThrow(/blob id/);
    expect(() => decodeBlobTable(table(blob), 0, 512, rules)).toThrow(RafsFormatError);
  });

  itFixtures('refuses ids that are not 64 printable characters', () => {
    const { blob } = decodeBlobEntry(boot(), 0x1000);
    expect(() => encodeBlobEntry({ ...blob, blobId: 'abc' }, 0)).toThrow(RafsEncodeError);
    expect(() => encodeBlobEntry({ ...blob, tocDigest: Buffer.alloc(3) }, 0)).toThrow(/TOC digest/);
  });
});

describe('device table', () => {
  itFixtures('decodes the fixture slot (mapped_blkaddr 512) and round-trips', () => {
    const slot = decodeDeviceSlot(boot(), 0x580);
    expect(slot).toEqual({ blobId: DIGEST_BLOB, blocks: 9, mappedBlkaddr: 512 });
    expect(encodeDeviceSlot(slot)).toEqual(boot().subarray(0x580, 0x600));
  });

  it('rejects empty devices', () => {
    const slot = encodeDeviceSlot({ blobId: DIGEST_BLOB, blocks: 1, mappedBlkaddr: 0 });
    slot.writeUInt32LE(0, 64);
    expect(() => decodeDeviceSlot(slot)).toThrow(/must have blocks/);
    expect(() => encodeDeviceSlot({ blobId: DIGEST_BLOB, blocks: 0, mappedBlkaddr: 0 })).toThrow(RafsEncodeError);
  });
});
