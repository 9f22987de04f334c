// The 512-byte GNU tar headers that delimit a blob's tail sections (docs/rafs-v6.md §3.4). Each header
// follows the data it describes and the data is not padded, so the sections are walked backwards.
import { RafsEncodeError, RafsFormatError } from './errors.js';
import { type ByteSource, readExact } from './source.js';

export const TAR_HEADER_SIZE = 512;
const NAME_SIZE = 100;
const SIZE_OFFSET = 124;
const SIZE_FIELD = 12;
const MTIME_OFFSET = 136;
const CHECKSUM_OFFSET = 148;
const TYPEFLAG_OFFSET = 156;
const MAGIC_OFFSET = 257;
const GNU_MAGIC = 'ustar  \0';
const POSIX_MAGIC = 'ustar\x0000';
/** Largest size the 11 octal digits of the size field hold; bigger sizes use GNU base-256. */
const MAX_OCTAL_SIZE = 8 ** 11 - 1;

export interface TarSection {
  name: string;
  dataOffset: number;
  size: number;
  headerOffset: number;
}

export function encodeTarHeader(name: string, size: number): Buffer {
  if (name.length === 0 || name.length > NAME_SIZE || /[^\x01-\x7f]/.test(name)) throw new RafsEncodeError('tar header', `bad name ${JSON.stringify(name)}`);
  if (!Number.isSafeInteger(size) || size < 0) throw new RafsEncodeError('tar header', `bad size ${size}`);
  const h = Buffer.alloc(TAR_HEADER_SIZE);
  h.write(name, 0, 'ascii');
  writeSize(h, size);
  h.write('00000000000\0', MTIME_OFFSET, 'ascii');
  h.write('0', TYPEFLAG_OFFSET, 'ascii');
  h.write(GNU_MAGIC, MAGIC_OFFSET, 'latin1');
  h.write(`${checksum(h).toString(8).padStart(7, '0')}\0`, CHECKSUM_OFFSET, 'ascii');
  return h;
}

function writeSize(h: Buffer, size: number): void {
  if (size <= MAX_OCTAL_SIZE) {
    h.write(`${size.toString(8).padStart(11, '0')}\0`, SIZE_OFFSET, 'ascii');
    return;
  }
  h.writeUInt8(0x80, SIZE_OFFSET);
  h.writeBigUInt64BE(BigInt(size), SIZE_OFFSET + SIZE_FIELD - 8);
}

/** Unsigned byte sum with the checksum field counted as spaces. */
function checksum(h: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < TAR_HEADER_SIZE; i++) {
    if (i < CHECKSUM_OFFSET || i >= CHECKSUM_OFFSET + 8) sum += h[i]!;
  }
  return sum;
}

/** Decodes a section header; `offset` is where it sits in the blob, for error messages. */
export function decodeTarHeader(h: Buffer, offset: number): { name: string; size: number } {
  const fail = (detail: string): never => {
    throw new RafsFormatError('tar header', offset, detail);
  };
  if (h.length !== TAR_HEADER_SIZE) fail(`${h.length} bytes instead of ${TAR_HEADER_SIZE}`);
  const magic = h.toString('latin1', MAGIC_OFFSET, MAGIC_OFFSET + 8);
  if (magic !== GNU_MAGIC && magic !== POSIX_MAGIC) fail('no ustar magic');
  if (parseOctal(h.subarray(CHECKSUM_OFFSET, CHECKSUM_OFFSET + 8)) !== checksum(h)) fail('checksum mismatch');
  const type = h[TYPEFLAG_OFFSET];
  if (type !== 0x30 && type !== 0) fail(`not a regular file entry (type ${type})`);
  const nameEnd = h.indexOf(0);
  const name = h.toString('latin1', 0, nameEnd < 0 || nameEnd > NAME_SIZE ? NAME_SIZE : nameEnd);
  const size = readSize(h.subarray(SIZE_OFFSET, SIZE_OFFSET + SIZE_FIELD));
  if (size === undefined) fail('bad size field');
  return { name, size: size! };
}

function readSize(field: Buffer): number | undefined {
  if ((field[0]! & 0x80) === 0) return parseOctal(field);
  if (field[0] !== 0x80 || field.readUInt32BE(0) !== 0x80000000) return undefined;
  const size = field.readBigUInt64BE(4);
  return size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : undefined;
}

/** Octal digits, optionally space-padded, ended by NUL/space or the field end. */
function parseOctal(field: Buffer): number | undefined {
  const text = field.toString('latin1').replace(/^ +/, '').replace(/[\0 ].*$/s, '');
  return /^[0-7]{1,17}$/.test(text) ? parseInt(text, 8) : undefined;
}

/**
 * Walks the sections of `src` that end at `end`, last first. Stops after the section starting at
 * offset 0; throws RafsFormatError on a bad header or a section reaching before the blob start.
 */
export async function* walkReverseTar(src: ByteSource, end = src.size): AsyncGenerator<TarSection> {
  let pos = end;
  while (pos > 0) {
    const headerOffset = pos - TAR_HEADER_SIZE;
    const { name, size } = decodeTarHeader(await readExact(src, headerOffset, TAR_HEADER_SIZE, 'tar header'), headerOffset);
    const dataOffset = headerOffset - size;
    if (dataOffset < 0) throw new RafsFormatError('tar header', headerOffset, `section ${name} of ${size} bytes starts before the blob`);
    yield { name, dataOffset, size, headerOffset };
    pos = dataOffset;
  }
}
