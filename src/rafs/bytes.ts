// Bounds-checked little-endian access shared by the codecs. Every read of an untrusted offset or
// length goes through here so that a bad value becomes a RafsFormatError, never a RangeError.
import { RafsEncodeError, RafsFormatError } from './errors.js';

/** Throws unless [offset, offset + length) lies inside `size` bytes. */
export function checkRange(size: number, offset: number, length: number, structure: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new RafsFormatError(structure, offset, `${length} bytes do not fit in ${size} available bytes`);
  }
}

/** A view of `length` bytes at `offset` (no copy), bounds-checked. */
export function sliceChecked(buf: Buffer, offset: number, length: number, structure: string): Buffer {
  checkRange(buf.length, offset, length, structure);
  return buf.subarray(offset, offset + length);
}

// Little-endian fields by plain byte access: Buffer's read/write methods validate their arguments
// through several JS wrappers on every call, which a cold bootstrap build or open pays for hundreds
// of thousands of times. Values are the callers' to check (encoders do, with checkEncodable); the
// range is checked here, so a bad offset still throws a RangeError rather than touching nothing.

function checkBounds(buf: Uint8Array, offset: number, size: number): void {
  if (!(offset >= 0 && offset + size <= buf.length)) throw new RangeError(`${size} bytes at offset ${offset} do not fit in ${buf.length}`);
}

export function getU16(buf: Uint8Array, offset: number): number {
  checkBounds(buf, offset, 2);
  return buf[offset]! | (buf[offset + 1]! << 8);
}

export function getU32(buf: Uint8Array, offset: number): number {
  checkBounds(buf, offset, 4);
  return (buf[offset]! | (buf[offset + 1]! << 8) | (buf[offset + 2]! << 16)) + buf[offset + 3]! * 2 ** 24;
}

/** Stores the low 16 bits of `value`. */
export function putU16(buf: Uint8Array, offset: number, value: number): void {
  checkBounds(buf, offset, 2);
  buf[offset] = value;
  buf[offset + 1] = value >>> 8;
}

/** Stores the low 32 bits of `value`. */
export function putU32(buf: Uint8Array, offset: number, value: number): void {
  checkBounds(buf, offset, 4);
  buf[offset] = value;
  buf[offset + 1] = value >>> 8;
  buf[offset + 2] = value >>> 16;
  buf[offset + 3] = value >>> 24;
}

/** An unsigned 64-bit field as a number; values beyond 2^53 are rejected rather than rounded. */
export function readU64(buf: Buffer, offset: number, structure: string): number {
  // two 32-bit reads: BigInt decoding is several times slower on hot paths (dirents, inodes)
  const high = getU32(buf, offset + 4);
  if (high > 0x1fffff) throw new RafsFormatError(structure, offset, `64-bit field value ${buf.readBigUInt64LE(offset)} is too large`);
  return high * 2 ** 32 + getU32(buf, offset);
}

export function writeU64(buf: Buffer, value: number, offset: number): void {
  // two 32-bit writes for the values that are (all real ones); BigInt keeps the checks for the rest
  if (!Number.isSafeInteger(value) || value < 0) {
    buf.writeBigUInt64LE(BigInt(value), offset);
    return;
  }
  const high = Math.floor(value / 2 ** 32);
  putU32(buf, offset, value - high * 2 ** 32);
  putU32(buf, offset + 4, high);
}

/** A signed 64-bit field (two's complement) from a safe integer, as two 32-bit writes. */
export function writeI64(buf: Buffer, value: number, offset: number): void {
  const high = Math.floor(value / 2 ** 32);
  putU32(buf, offset, value - high * 2 ** 32);
  putU32(buf, offset + 4, high);
}

/** Throws RafsEncodeError unless `value` is an integer in [min, max]. */
export function checkEncodable(value: number, min: number, max: number, structure: string, field: string): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RafsEncodeError(structure, `${field} ${value} is outside [${min}, ${max}]`);
  }
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

export function isPowerOfTwo(value: number): boolean {
  return Number.isSafeInteger(value) && value > 0 && 2 ** Math.round(Math.log2(value)) === value;
}

export function isZero(buf: Buffer): boolean {
  return buf.every((byte) => byte === 0);
}

/** A NUL-padded fixed-size field as a byte string (text before the first NUL). */
export function readPaddedName(buf: Buffer, offset: number, length: number): string {
  const field = buf.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.toString('latin1', 0, end < 0 ? length : end);
}
