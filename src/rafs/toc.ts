// The blob table of contents `rafs.blob.toc` (docs/rafs-v6.md §3.7): 128-byte entries naming the sections
// of a blob's tail, with their location, compression and the sha256 of their uncompressed bytes.
import { checkEncodable, readPaddedName, readU64, sliceChecked, writeU64 } from './bytes.js';
import { RafsEncodeError, RafsFormatError } from './errors.js';

export const TOC_ENTRY_SIZE = 128;
const NAME_SIZE = 16;

/** Compressions a TOC entry can declare (gzip cannot be expressed). */
export type TocCompressor = 'none' | 'zstd' | 'lz4_block';
const TOC_FLAGS: Record<TocCompressor, number> = { none: 0x1, zstd: 0x2, lz4_block: 0x4 };
const COMPRESSION_MASK = 0xf;

export interface TocEntry {
  name: string;
  compressor: TocCompressor;
  /** sha256 of the uncompressed entry data. */
  digest: Buffer;
  compressedOffset: number;
  compressedSize: number;
  uncompressedSize: number;
}

export function encodeTocEntry(e: TocEntry): Buffer {
  if (e.name.length === 0 || e.name.length > NAME_SIZE || /[^\x01-\x7f]/.test(e.name)) throw new RafsEncodeError('TOC entry', `bad name ${JSON.stringify(e.name)}`);
  if (e.digest.length !== 32) throw new RafsEncodeError('TOC entry', 'the digest must be 32 bytes');
  for (const field of ['compressedOffset', 'compressedSize', 'uncompressedSize'] as const) {
    checkEncodable(e[field], 0, Number.MAX_SAFE_INTEGER, 'TOC entry', field);
  }
  const buf = Buffer.alloc(TOC_ENTRY_SIZE);
  buf.writeUInt32LE(TOC_FLAGS[e.compressor], 0);
  buf.write(e.name, 8, 'latin1');
  e.digest.copy(buf, 24);
  writeU64(buf, e.compressedOffset, 56);
  writeU64(buf, e.compressedSize, 64);
  writeU64(buf, e.uncompressedSize, 72);
  return buf;
}

export function decodeTocEntry(buf: Buffer, offset = 0): TocEntry {
  const b = sliceChecked(buf, offset, TOC_ENTRY_SIZE, 'TOC entry');
  const flags = b.readUInt32LE(0) & COMPRESSION_MASK;
  const compressor = (Object.keys(TOC_FLAGS) as TocCompressor[]).find((c) => TOC_FLAGS[c] === flags);
  if (compressor === undefined) throw new RafsFormatError('TOC entry', offset, `unknown compression flags 0x${flags.toString(16)}`);
  const name = readPaddedName(b, 8, NAME_SIZE);
  if (name.length === 0) throw new RafsFormatError('TOC entry', offset + 8, 'empty name');
  return {
    name,
    compressor,
    digest: Buffer.from(b.subarray(24, 56)),
    compressedOffset: readU64(b, 56, 'TOC entry'),
    compressedSize: readU64(b, 64, 'TOC entry'),
    uncompressedSize: readU64(b, 72, 'TOC entry'),
  };
}

export function encodeToc(entries: readonly TocEntry[]): Buffer {
  return Buffer.concat(entries.map(encodeTocEntry));
}

/** Decodes a whole TOC section; `baseOffset` is its position in the blob, for error messages. */
export function decodeToc(buf: Buffer, baseOffset = 0): TocEntry[] {
  if (buf.length % TOC_ENTRY_SIZE !== 0) throw new RafsFormatError('TOC', baseOffset, `size ${buf.length} is not a multiple of ${TOC_ENTRY_SIZE}`);
  const entries: TocEntry[] = [];
  for (let at = 0; at < buf.length; at += TOC_ENTRY_SIZE) {
    try {
      entries.push(decodeTocEntry(buf, at));
    } catch (err) {
      throw err instanceof RafsFormatError ? new RafsFormatError(err.structure, baseOffset + err.offset, err.detail) : err;
    }
  }
  return entries;
}
