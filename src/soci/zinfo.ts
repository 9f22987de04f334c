// The zinfo of a gzip zTOC (its `checkpoints` bytes): zran-style access points into the gzip
// stream, one per span, each with the 32 KiB of output before it so inflate can resume there.
// Layout (soci's gzip_zinfo.c, zinfo_to_blob / blob_to_zinfo), little-endian, no padding:
//   int32 count, int64 span size, then per checkpoint
//   int64 in (compressed offset of the first whole byte of the block), int64 out (uncompressed
//   offset), uint8 bits (how many low bits of the byte at in-1 the block starts with), 32 KiB window.
// There is no version field: the length tells. v2 stores every checkpoint; v1 left checkpoint 0
// out and implies it as {in 10, out 0, bits 0, zero window} (a 10-byte gzip header, no FNAME).
import { SociFormatError } from './errors.js';
import type { Ztoc } from './ztoc.js';

export const ZINFO_WINDOW_SIZE = 32 * 1024;
const HEADER_SIZE = 4 + 8;
const CHECKPOINT_SIZE = 8 + 8 + 1 + ZINFO_WINDOW_SIZE;

export interface ZinfoCheckpoint {
  /** Compressed offset of the first whole byte of the block the span starts with. */
  input: number;
  /** Uncompressed offset the span starts at. */
  output: number;
  /** 0..7: bits of the byte at input-1 that belong to the block. */
  bits: number;
  /**
   * The 32 KiB of output before `output` (inflate's dictionary): a view of the zinfo bytes. Before
   * 32 KiB of output, only its last `output` bytes are the stream's; the rest is zeros.
   */
  window: Buffer;
}

export interface Zinfo {
  /** 1: checkpoint 0 was not stored (implied); 2: all stored. */
  version: 1 | 2;
  /** The span size the builder asked for (spans are at least this long, but the last). */
  spanSize: number;
  /** One per span, in stream order. */
  checkpoints: ZinfoCheckpoint[];
  /** From the zTOC, where the last span ends. */
  compressedArchiveSize: number;
  uncompressedArchiveSize: number;
}

/** What decodeZinfo needs of the zTOC the bytes came from. */
export type ZinfoOwner = Pick<Ztoc, 'algorithm' | 'maxSpanId' | 'spanDigests' | 'compressedArchiveSize' | 'uncompressedArchiveSize'>;

export interface SpanRange {
  /** Compressed [start, end): what span digest i covers and what inflating span i needs. */
  start: number;
  end: number;
  /** Uncompressed [outStart, outEnd): what span i decodes to. */
  outStart: number;
  outEnd: number;
}

/** Decodes and checks the zinfo of a gzip zTOC against it; anything wrong is a SociFormatError. */
export function decodeZinfo(bytes: Buffer, ztoc: ZinfoOwner): Zinfo {
  // an uncompressed layer's zinfo is another flatbuffer (soci's TarZinfo), which nothing here reads
  if (ztoc.algorithm !== 'gzip') throw new SociFormatError(`zinfo: the zTOC's algorithm is ${ztoc.algorithm}, and only gzip checkpoints are read`);
  if (bytes.length < HEADER_SIZE) throw new SociFormatError(`zinfo: ${bytes.length} bytes, shorter than its ${HEADER_SIZE}-byte header`);
  const count = bytes.readInt32LE(0);
  const version = versionByLength(bytes.length, count);
  if (count !== ztoc.maxSpanId + 1 || count !== ztoc.spanDigests.length) {
    throw new SociFormatError(`zinfo: ${count} checkpoints, but the zTOC has max_span_id ${ztoc.maxSpanId} and ${ztoc.spanDigests.length} span digests`);
  }
  const spanSize = readI64(bytes, 4, 'span size');
  if (spanSize <= 0) throw new SociFormatError(`zinfo: span size ${spanSize} is not positive`);
  const checkpoints: ZinfoCheckpoint[] = version === 1 ? [{ input: 10, output: 0, bits: 0, window: Buffer.alloc(ZINFO_WINDOW_SIZE) }] : [];
  for (let pos = HEADER_SIZE; pos < bytes.length; pos += CHECKPOINT_SIZE) {
    const i = checkpoints.length;
    checkpoints.push({
      input: readI64(bytes, pos, `checkpoint ${i} in`),
      output: readI64(bytes, pos + 8, `checkpoint ${i} out`),
      bits: bytes[pos + 16]!,
      window: bytes.subarray(pos + 17, pos + CHECKPOINT_SIZE),
    });
  }
  checkpoints.forEach((c, i) => checkCheckpoint(c, checkpoints[i - 1], i, ztoc));
  return { version, spanSize, checkpoints, compressedArchiveSize: ztoc.compressedArchiveSize, uncompressedArchiveSize: ztoc.uncompressedArchiveSize };
}

/** soci's blob_to_zinfo rule: count stored checkpoints is v2, count - 1 is v1, anything else is refused. */
function versionByLength(length: number, count: number): 1 | 2 {
  if (count < 1) throw new SociFormatError(`zinfo: ${count} checkpoints (at least one expected)`);
  if (length === HEADER_SIZE + count * CHECKPOINT_SIZE) return 2;
  if (length === HEADER_SIZE + (count - 1) * CHECKPOINT_SIZE) return 1;
  throw new SociFormatError(`zinfo: ${length} bytes do not hold ${count} checkpoints of ${CHECKPOINT_SIZE} bytes (v2) or ${count - 1} (v1) after the ${HEADER_SIZE}-byte header`);
}

function checkCheckpoint(c: ZinfoCheckpoint, prev: ZinfoCheckpoint | undefined, i: number, ztoc: ZinfoOwner): void {
  const fail = (detail: string): SociFormatError => new SociFormatError(`zinfo checkpoint ${i} (in ${c.input}, out ${c.output}, bits ${c.bits}): ${detail}`);
  if (c.bits > 7) throw fail('bits is over 7');
  if (c.bits > 0 && c.input === 0) throw fail('starts inside the byte before the stream');
  if (c.input < 0 || c.input > ztoc.compressedArchiveSize) throw fail(`in lies outside the ${ztoc.compressedArchiveSize}-byte layer`);
  // not bounded by the tar's size: soci counts the tar to its end marker, and a checkpoint may fall in padding after it
  if (c.output < 0) throw fail('out is negative');
  if (prev === undefined) {
    if (c.output !== 0) throw fail('the first checkpoint is not at the start of the output');
  } else if (c.input <= prev.input || c.output <= prev.output) {
    throw fail(`not after checkpoint ${i - 1} (in ${prev.input}, out ${prev.output})`);
  }
}

/**
 * Span i's compressed and uncompressed ranges (soci's Start/EndCompressedOffset and
 * Start/EndUncompressedOffset): a span whose block starts inside a byte starts at that byte, so
 * neighbours may share one; the last span runs to the end of the layer (gzip trailer included)
 * and of the tar.
 */
export function spanRange(z: Zinfo, i: number): SpanRange {
  const c = z.checkpoints[i];
  if (!Number.isInteger(i) || c === undefined) throw new RangeError(`span ${i} is outside [0, ${z.checkpoints.length})`);
  const next = z.checkpoints[i + 1];
  return {
    start: c.bits > 0 ? c.input - 1 : c.input,
    end: next === undefined ? z.compressedArchiveSize : next.input,
    outStart: c.output,
    outEnd: next === undefined ? z.uncompressedArchiveSize : next.output,
  };
}

/** A signed 64-bit field already known to lie inside `bytes`; beyond ±(2^53 - 1) it is refused, not rounded. */
function readI64(bytes: Buffer, pos: number, what: string): number {
  const value = bytes.readInt32LE(pos + 4) * 2 ** 32 + bytes.readUInt32LE(pos);
  if (!Number.isSafeInteger(value)) throw new SociFormatError(`zinfo ${what} (byte ${pos}): ${bytes.readBigInt64LE(pos)} is beyond ±(2^53 - 1)`);
  return value;
}
