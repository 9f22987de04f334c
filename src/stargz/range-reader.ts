// The one I/O boundary of this module: the caller's random access to the layer blob (a registry
// range request, a cache file, a Buffer in tests). What it returns is checked here, once.
import { StargzFormatError } from './errors.js';

/** Reads `length` bytes at `offset` of the layer blob. */
export type RangeReader = (offset: number, length: number) => Promise<Buffer>;

/** Bytes fetched per request while streaming a large range (a big TOC). */
export const READ_PIECE_SIZE = 1 << 20;

export async function readExactly(read: RangeReader, offset: number, length: number): Promise<Buffer> {
  const got = await read(offset, length);
  if (got.length !== length) throw new StargzFormatError(`layer blob: read ${length} bytes at ${offset}, got ${got.length}`);
  return got;
}

/** `[offset, offset + length)` in pieces of at most READ_PIECE_SIZE bytes, each read when wanted. */
export async function* readPieces(read: RangeReader, offset: number, length: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < length; at += READ_PIECE_SIZE) {
    yield await readExactly(read, offset + at, Math.min(READ_PIECE_SIZE, length - at));
  }
}
