import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { NotStargzError, StargzFormatError } from '../../src/stargz/errors.js';
import { FOOTER_PROBE_SIZE, parseStargzFooter, readStargzFooter } from '../../src/stargz/footer.js';
import { bufferReader, estargzFooter, legacyFooter, zstdChunkedLayer } from './helpers.js';

const withFooter = (footer: Buffer, dataSize = 100): Buffer => Buffer.concat([Buffer.alloc(dataSize, 1), footer]);
const parse = (blob: Buffer) => parseStargzFooter(blob.subarray(-FOOTER_PROBE_SIZE), blob.length);

describe('stargz footers', () => {
  it('reads eStargz, legacy and zstd:chunked (40 and 64 bytes) footers', async () => {
    expect(parse(withFooter(estargzFooter(0x37)))).toEqual({ kind: 'estargz', footerSize: 51, tocOffset: 0x37, tocSize: 100 - 0x37, dataEnd: 0x37 });
    expect(parse(withFooter(legacyFooter(0x37)))).toEqual({ kind: 'stargz', footerSize: 47, tocOffset: 0x37, tocSize: 100 - 0x37, dataEnd: 0x37 });
    const v1 = zstdChunkedLayer(Buffer.alloc(20), '{}');
    expect(parse(v1)).toMatchObject({ kind: 'zstd:chunked', footerSize: 48, tocOffset: 28, tocUncompressedSize: 2, dataEnd: 20 });
    expect(parse(zstdChunkedLayer(Buffer.alloc(20), '{}', 64))).toMatchObject({ kind: 'zstd:chunked', footerSize: 72, tocOffset: 28 });
    expect(await readStargzFooter(bufferReader(v1), v1.length)).toEqual(parse(v1));
  });

  it('says a plain gzip or zstd layer is not a stargz layer', () => {
    expect(() => parse(gzipSync(Buffer.alloc(5000)))).toThrow(NotStargzError);
    expect(() => parse(Buffer.from('tiny'))).toThrow(NotStargzError);
    expect(() => parse(withFooter(Buffer.from('GnUlInUx')))).toThrow(StargzFormatError);
  });

  it('refuses footers that point outside the layer or at an unknown TOC type', () => {
    expect(() => parse(withFooter(estargzFooter(100)))).toThrow(/not before the footer/);
    const blob = zstdChunkedLayer(Buffer.alloc(20), '{}');
    blob.writeUInt32LE(2, blob.length - 16);
    expect(() => parse(blob)).toThrow(/manifest type 2/);
    const past = zstdChunkedLayer(Buffer.alloc(20), '{}');
    past.writeUInt32LE(1000, past.length - 40);
    expect(() => parse(past)).toThrow(/not inside the/);
    const hex = withFooter(estargzFooter(0));
    hex.write('ffffffffffffffff', hex.length - 51 + 16, 'latin1');
    expect(() => parse(hex)).toThrow(/out of range/);
  });
});
