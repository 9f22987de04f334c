// Random access to a blob that may live in memory, in a file or behind HTTP range requests.
import { checkRange } from './bytes.js';
import { RafsFormatError } from './errors.js';

export interface ByteSource {
  readonly size: number;
  /** Returns exactly `length` bytes at `offset` (the caller keeps the range inside `size`). */
  read(offset: number, length: number): Buffer | Promise<Buffer>;
}

export function bufferSource(buf: Buffer): ByteSource {
  return { size: buf.length, read: (offset, length) => buf.subarray(offset, offset + length) };
}

export function toSource(src: ByteSource | Buffer): ByteSource {
  return Buffer.isBuffer(src) ? bufferSource(src) : src;
}

/** Reads a bounds-checked range and insists the source delivered all of it. */
export async function readExact(src: ByteSource, offset: number, length: number, structure: string): Promise<Buffer> {
  checkRange(src.size, offset, length, structure);
  const data = await src.read(offset, length);
  if (data.length !== length) throw new RafsFormatError(structure, offset, `read returned ${data.length} of ${length} bytes`);
  return data;
}
