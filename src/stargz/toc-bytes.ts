// Where the TOC JSON bytes come from, streamed: the first tar entry (`stargz.index.json`) of the
// eStargz/stargz TOC gzip member, or the zstd frame a zstd:chunked footer points at. Only as many
// bytes are fetched and decoded as the JSON needs, and never more than the caller's limit.
import { createGunzip } from 'node:zlib';
import { Readable, pipeline } from 'node:stream';
import type { Hash } from 'node:crypto';
import { ZstdDecompressStream } from '../native/index.js';
import { StargzFormatError } from './errors.js';
import type { StargzFooter } from './footer.js';
import { type RangeReader, readPieces } from './range-reader.js';

export const TOC_TAR_NAME = 'stargz.index.json';
const TAR_BLOCK = 512;
const INFLATE_CHUNK = 256 << 10;

/** Streams the TOC's JSON bytes; `storedHash` (if given) sees the TOC's stored bytes as they are read. */
export function tocJsonBytes(read: RangeReader, footer: StargzFooter, maxSize: number, storedHash?: Hash): AsyncGenerator<Buffer> {
  const stored = hashing(readPieces(read, footer.tocOffset, footer.tocSize), storedHash);
  return footer.kind === 'zstd:chunked' ? zstdJson(stored, footer.tocUncompressedSize!, maxSize) : gzipTarJson(stored, maxSize);
}

async function* hashing(pieces: AsyncGenerator<Buffer>, hash: Hash | undefined): AsyncGenerator<Buffer> {
  for await (const piece of pieces) {
    hash?.update(piece);
    yield piece;
  }
}

async function* zstdJson(stored: AsyncGenerator<Buffer>, size: number, maxSize: number): AsyncGenerator<Buffer> {
  if (size > maxSize) throw new StargzFormatError(`zstd:chunked TOC of ${size} bytes, more than the ${maxSize} allowed`);
  const zstd = new ZstdDecompressStream();
  let got = 0;
  const take = function* (): Generator<Buffer> {
    for (let out = zstd.pull(); out.length > 0; out = zstd.pull()) {
      got += out.length;
      if (got > size) throw new StargzFormatError(`zstd:chunked TOC decodes to more than the ${size} bytes its footer states`);
      yield out;
    }
  };
  try {
    for await (const piece of stored) {
      zstd.push(piece);
      yield* take();
    }
    zstd.end();
  } catch (err) {
    if (err instanceof StargzFormatError) throw err;
    throw new StargzFormatError(`zstd:chunked TOC: ${(err as Error).message}`);
  }
  if (got !== size) throw new StargzFormatError(`zstd:chunked TOC decodes to ${got} bytes, its footer states ${size}`);
}

async function* gzipTarJson(stored: AsyncGenerator<Buffer>, maxSize: number): AsyncGenerator<Buffer> {
  // 256 KiB out at a time, not zlib's 16 KiB: a few MB of JSON in a few dozen stream hops, not hundreds
  const gunzip = pipeline(Readable.from(stored), createGunzip({ chunkSize: INFLATE_CHUNK }), () => {});
  let header = Buffer.alloc(0);
  let remaining = -1;
  try {
    for await (const out of gunzip as AsyncIterable<Buffer>) {
      let data = out;
      if (remaining < 0) {
        header = Buffer.concat([header, data]);
        if (header.length < TAR_BLOCK) continue;
        remaining = tocEntrySize(header.subarray(0, TAR_BLOCK), maxSize);
        data = header.subarray(TAR_BLOCK);
      }
      const json = data.subarray(0, remaining);
      remaining -= json.length;
      if (json.length > 0) yield json;
      if (remaining === 0) return;
    }
  } catch (err) {
    if (err instanceof StargzFormatError) throw err;
    throw new StargzFormatError(`stargz TOC gzip member: ${(err as Error).message}`);
  } finally {
    gunzip.destroy();
  }
  throw new StargzFormatError(remaining < 0 ? 'stargz TOC gzip member ends inside its tar header' : `stargz TOC gzip member ends ${remaining} bytes short of its JSON`);
}

/** The JSON's length from the TOC member's tar header, which must be a regular file named stargz.index.json. */
function tocEntrySize(header: Buffer, maxSize: number): number {
  const fail = (detail: string): never => {
    throw new StargzFormatError(`stargz TOC tar header: ${detail}`);
  };
  const field = (at: number, len: number): string => header.toString('latin1', at, at + len).replace(/\0.*$/s, '');
  if (field(0, 100) !== TOC_TAR_NAME || field(345, 155) !== '') fail(`the first entry is ${JSON.stringify(field(0, 100))}, not ${TOC_TAR_NAME}`);
  const type = header[156]!;
  if (type !== 0x30 && type !== 0) fail(`${TOC_TAR_NAME} is not a regular file (type ${type})`);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  if (parseOctal(field(148, 8)) !== sum) fail('bad checksum');
  const size = parseOctal(field(124, 12));
  if (size === undefined) return fail('bad size field');
  if (size > maxSize) fail(`${TOC_TAR_NAME} of ${size} bytes, more than the ${maxSize} allowed`);
  return size;
}

function parseOctal(text: string): number | undefined {
  const digits = text.trim();
  return /^[0-7]{1,11}$/.test(digits) ? parseInt(digits, 8) : undefined;
}
