// The footers that make a layer seekable (docs: ../shared/spec/stargz.md §1.4, §1.11): an empty gzip
// member whose extra field holds the TOC offset (eStargz 51 bytes, legacy CRFS stargz 47 bytes), or a
// zstd skippable frame holding the TOC's position (zstd:chunked, 40-byte or 64-byte payload). Tried
// in that order, as the reference reader does: a legacy footer's last 51 bytes begin inside the
// previous member, and a zstd frame is no gzip member, so no layer matches two.
import { gunzipSync } from 'node:zlib';
import { NotStargzError, StargzFormatError } from './errors.js';
import { type RangeReader, readExactly } from './range-reader.js';

export type StargzKind = 'estargz' | 'stargz' | 'zstd:chunked';

export interface StargzFooter {
  kind: StargzKind;
  /** Bytes the footer takes at the blob's end (zstd: its skippable frame header included). */
  footerSize: number;
  /** Where the TOC's stored bytes start: its gzip member, or its zstd frame inside the skippable frame. */
  tocOffset: number;
  /** Stored length of the TOC. */
  tocSize: number;
  /** zstd:chunked only: the TOC's decompressed length, as the footer states it. */
  tocUncompressedSize?: number;
  /** Where file data ends: nothing of a file lies at or past it (the TOC's member or frame starts here). */
  dataEnd: number;
}

export const ESTARGZ_FOOTER_SIZE = 51;
export const LEGACY_FOOTER_SIZE = 47;
const ZSTD_FRAME_HEADER_SIZE = 8;
const ZSTD_FOOTER_V1_SIZE = 40;
const ZSTD_FOOTER_V2_SIZE = 64;
/** The most tail bytes any footer needs. */
export const FOOTER_PROBE_SIZE = ZSTD_FRAME_HEADER_SIZE + ZSTD_FOOTER_V2_SIZE;

const GZIP_FEXTRA_HEADER = Buffer.from('1f8b08040000000000ff', 'hex');
const STARGZ_MAGIC = 'STARGZ';
const ZSTD_CHUNKED_MAGIC = 'GnUlInUx';
const ZSTD_SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const ZSTD_SKIPPABLE_MAGIC = 0x184d2a50;
const MANIFEST_TYPE_CRFS = 1;

/** Finds and parses the footer at the end of a `blobSize`-byte layer. */
export async function readStargzFooter(read: RangeReader, blobSize: number): Promise<StargzFooter> {
  if (!Number.isSafeInteger(blobSize) || blobSize < 0) throw new StargzFormatError(`layer blob size ${blobSize} is not a byte count`);
  const probe = Math.min(FOOTER_PROBE_SIZE, blobSize);
  return parseStargzFooter(await readExactly(read, blobSize - probe, probe), blobSize);
}

/** Parses the footer from `tail`, the last bytes (up to FOOTER_PROBE_SIZE) of a `blobSize`-byte layer. */
export function parseStargzFooter(tail: Buffer, blobSize: number): StargzFooter {
  const last = (n: number): Buffer | undefined => (tail.length >= n ? tail.subarray(tail.length - n) : undefined);
  const estargz = last(ESTARGZ_FOOTER_SIZE);
  const estargzOffset = estargz && gzipFooterOffset(estargz, 26, Buffer.from([0x53, 0x47, 22, 0]));
  if (estargzOffset !== undefined) return gzipFooter('estargz', ESTARGZ_FOOTER_SIZE, estargzOffset, blobSize);
  const legacy = last(LEGACY_FOOTER_SIZE);
  const legacyOffset = legacy && gzipFooterOffset(legacy, 22, Buffer.alloc(0));
  if (legacyOffset !== undefined) return gzipFooter('stargz', LEGACY_FOOTER_SIZE, legacyOffset, blobSize);
  const zstd = zstdChunkedFooter(tail, blobSize);
  if (zstd) return zstd;
  throw new NotStargzError('not an eStargz/stargz/zstd:chunked layer: it ends in no eStargz (51-byte), legacy stargz (47-byte) or zstd:chunked footer');
}

/** The 51-byte eStargz footer of a layer whose TOC member starts at `tocOffset`: the member gzipFooterOffset reads. */
export function estargzFooter(tocOffset: number): Buffer {
  if (!Number.isSafeInteger(tocOffset) || tocOffset < 0) throw new RangeError(`TOC offset ${tocOffset} is not a byte offset`);
  return Buffer.concat([
    GZIP_FEXTRA_HEADER, Buffer.from([26, 0, 0x53, 0x47, 22, 0]),
    Buffer.from(`${tocOffset.toString(16).padStart(16, '0')}${STARGZ_MAGIC}`, 'latin1'),
    // an empty deflate body (one final stored block), then CRC-32 and length, both 0
    Buffer.from('010000ffff0000000000000000', 'hex'),
  ]);
}

/**
 * The TOC offset in a gzip footer: a gzip header with only FEXTRA set, `xlen` extra bytes made of
 * `subfield` (eStargz: 'S','G', LEN 22; legacy: none), 16 hex digits and "STARGZ", then an empty
 * deflate body with its zero CRC and length. undefined when `footer` is not such a member.
 */
function gzipFooterOffset(footer: Buffer, xlen: number, subfield: Buffer): number | undefined {
  if (!footer.subarray(0, 10).equals(GZIP_FEXTRA_HEADER) || footer.readUInt16LE(10) !== xlen) return undefined;
  const extra = footer.subarray(12, 12 + xlen);
  if (!extra.subarray(0, subfield.length).equals(subfield)) return undefined;
  const hex = extra.toString('latin1', subfield.length, subfield.length + 16);
  if (extra.toString('latin1', subfield.length + 16) !== STARGZ_MAGIC || !/^[0-9a-fA-F]{16}$/.test(hex)) return undefined;
  try {
    if (gunzipSync(footer).length !== 0) return undefined;
  } catch {
    return undefined;
  }
  const offset = BigInt(`0x${hex}`);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw new StargzFormatError(`stargz footer: TOC offset 0x${hex} is out of range`);
  return Number(offset);
}

function gzipFooter(kind: StargzKind, footerSize: number, tocOffset: number, blobSize: number): StargzFooter {
  const tocEnd = blobSize - footerSize;
  if (tocOffset >= tocEnd) throw new StargzFormatError(`${kind} footer: TOC offset ${tocOffset} is not before the footer at ${tocEnd}`);
  return { kind, footerSize, tocOffset, tocSize: tocEnd - tocOffset, dataEnd: tocOffset };
}

/**
 * A zstd:chunked footer: a skippable frame whose payload ends with "GnUlInUx". The frame header's
 * size field tells the 40-byte (manifest only) from the 64-byte (manifest + tar-split) payload;
 * both begin with the manifest's offset, stored and decompressed length, and type (1 = CRFS JSON).
 */
function zstdChunkedFooter(tail: Buffer, blobSize: number): StargzFooter | undefined {
  if (tail.length < ZSTD_FOOTER_V1_SIZE || tail.toString('latin1', tail.length - 8) !== ZSTD_CHUNKED_MAGIC) return undefined;
  const payloadSize = [ZSTD_FOOTER_V1_SIZE, ZSTD_FOOTER_V2_SIZE].find((size) => {
    const at = tail.length - size - ZSTD_FRAME_HEADER_SIZE;
    return at >= 0 && isSkippableFrame(tail, at) && tail.readUInt32LE(at + 4) === size;
  });
  if (payloadSize === undefined) throw new StargzFormatError('zstd:chunked footer: "GnUlInUx" is not the end of a 40- or 64-byte skippable frame');
  const payload = tail.subarray(tail.length - payloadSize);
  const [tocOffset, tocSize, tocUncompressedSize, type] = [0, 8, 16, 24].map((at) => u64(payload, at, 'zstd:chunked footer'));
  if (type !== MANIFEST_TYPE_CRFS) throw new StargzFormatError(`zstd:chunked footer: manifest type ${type}, only 1 (CRFS JSON) is known`);
  const footerSize = payloadSize + ZSTD_FRAME_HEADER_SIZE;
  const tocFrame = tocOffset! - ZSTD_FRAME_HEADER_SIZE;
  if (tocFrame < 0 || tocSize! <= 0 || tocOffset! + tocSize! > blobSize - footerSize) {
    throw new StargzFormatError(`zstd:chunked footer: TOC at ${tocOffset} (${tocSize} bytes) is not inside the ${blobSize}-byte layer before its footer`);
  }
  return { kind: 'zstd:chunked', footerSize, tocOffset: tocOffset!, tocSize: tocSize!, tocUncompressedSize, dataEnd: tocFrame };
}

function isSkippableFrame(buf: Buffer, at: number): boolean {
  return ((buf.readUInt32LE(at) & ZSTD_SKIPPABLE_MAGIC_MASK) >>> 0) === ZSTD_SKIPPABLE_MAGIC;
}

function u64(buf: Buffer, at: number, what: string): number {
  const value = buf.readBigUInt64LE(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new StargzFormatError(`${what}: value ${value} at byte ${at} is out of range`);
  return Number(value);
}
