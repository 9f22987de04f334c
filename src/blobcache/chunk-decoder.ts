// Stored chunk bytes → verified uncompressed bytes. Nothing leaves here unless its digest matches:
// a corrupt chunk is an error, never data.
import {
  type Codec, decodeMember, decodeMemberBatch, decodeMemberInto, decompress, decompressBatch, decompressInto, digest, digestBatch, gzipExtractInto, GzipMemberStream, type MemberCodec,
} from '../native/index.js';
import { BlobFeature } from '../rafs/blob-table.js';
import { spanEndingAt, windowSize } from '../rafs/checkpoints.js';
import { isSpansBlob, spanMatches } from '../rafs/span-blob.js';
import { MAX_INNER_OFFSET } from '../rafs/chunk.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';

export class ChunkIntegrityError extends Error {
  constructor(readonly blobId: string, readonly ciIndex: number, reason: string) {
    super(`chunk ${ciIndex} of blob ${blobId}: ${reason}`);
  }
}

const isCompressed = (blob: BlobInfo, ref: ChunkRef): boolean => ref.compressed && blob.compressor !== 'none';

/**
 * A stargz-family layer used as it is (BlobFeature.MEMBERS): the chunk is the uncompressed bytes
 * after innerOffset of the first member of its stored bytes, whatever follows them.
 */
const isMembers = (blob: BlobInfo): boolean => (blob.features & BlobFeature.MEMBERS) !== 0;

/**
 * An unmodified gzip layer (BlobFeature.CHECKPOINTS): the chunk is the output after innerOffset of
 * the stream decoded from the chunk's checkpoint, whose first stored byte its stored bytes start at.
 */
const isCheckpointed = (blob: BlobInfo): boolean => (blob.features & BlobFeature.CHECKPOINTS) !== 0;

/** Decodes a CHECKPOINTS blob's chunk from its checkpoint into `into` (a SPANS blob's once its spans are checked). */
function extractFromCheckpoint(blob: BlobInfo, ref: ChunkRef, stored: Buffer, into: Buffer): Buffer {
  const c = ref.checkpoint === undefined ? undefined : blob.checkpoints?.[ref.checkpoint];
  if (!c) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `checkpoint ${ref.checkpoint} is not among the blob's`);
  if (isSpansBlob(blob)) checkSpans(blob, ref, stored);
  gzipExtractInto(stored, c.bits, decompress('zstd', c.window, { size: windowSize(c) }), ref.innerOffset ?? 0, into);
  return into;
}

/** A SPANS blob's chunk's stored bytes: each span in them against its checkpoint's digest. */
function checkSpans(blob: BlobInfo, ref: ChunkRef, stored: Buffer): void {
  const last = spanEndingAt(blob.checkpoints!, ref.checkpoint!, ref.compressedOffset + stored.length, blob.compressedSize);
  if (last === undefined) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, 'stored bytes do not end at the end of a span');
  for (let k = ref.checkpoint!; k <= last; k++) {
    if (!spanMatches(blob, k, stored, ref.compressedOffset)) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `span ${k}'s stored bytes do not match its digest`);
  }
}

function checkStored(blob: BlobInfo, ref: ChunkRef, storedLength: number): void {
  if (storedLength !== ref.compressedSize) {
    throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `got ${storedLength} stored bytes, expected ${ref.compressedSize}`);
  }
  // the reader bounds it too; a chunk from elsewhere must not make decoding unbounded either
  if ((ref.innerOffset ?? 0) > MAX_INNER_OFFSET) {
    throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `inner offset ${ref.innerOffset} exceeds ${MAX_INNER_OFFSET}`);
  }
}

const undecodable = (blob: BlobInfo, ref: ChunkRef, err: unknown): ChunkIntegrityError =>
  new ChunkIntegrityError(blob.blobId, ref.ciIndex, `cannot decompress (${(err as Error).message})`);

/**
 * `data` if it is the chunk (its size and its digest `got`), else an integrity error. A SPANS
 * blob's chunk has no digest of its own: its spans were checked before it was decoded.
 */
function verified(blob: BlobInfo, ref: ChunkRef, data: Buffer, got: () => Buffer): Buffer {
  if (data.length !== ref.uncompressedSize) {
    throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `${data.length} bytes, expected ${ref.uncompressedSize}`);
  }
  if (!isSpansBlob(blob) && !got().equals(ref.digest)) throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `${blob.digester} digest mismatch`);
  return data;
}

/**
 * The chunk's verified uncompressed bytes: in `into` (exactly the uncompressed size) when given,
 * else in a new buffer (or `stored` itself for an uncompressed chunk).
 */
export function decodeChunk(blob: BlobInfo, ref: ChunkRef, stored: Buffer, into?: Buffer): Buffer {
  checkStored(blob, ref, stored.length);
  if (into && into.length !== ref.uncompressedSize) throw new RangeError(`decode buffer of ${into.length} bytes for a chunk of ${ref.uncompressedSize}`);
  let data: Buffer;
  if (isCheckpointed(blob)) {
    try {
      data = extractFromCheckpoint(blob, ref, stored, into ?? Buffer.allocUnsafeSlow(ref.uncompressedSize));
    } catch (err) {
      throw err instanceof ChunkIntegrityError ? err : undecodable(blob, ref, err);
    }
  } else if (isMembers(blob)) {
    try {
      if (into) decodeMemberInto(blob.compressor as MemberCodec, stored, ref.innerOffset ?? 0, into);
      data = into ?? decodeMember(blob.compressor as MemberCodec, stored, ref.innerOffset ?? 0, ref.uncompressedSize);
    } catch (err) {
      throw undecodable(blob, ref, err);
    }
  } else if (!isCompressed(blob, ref)) {
    data = into ? into.subarray(0, stored.copy(into)) : stored;
  } else {
    try {
      if (into) decompressInto(blob.compressor as Codec, stored, into);
      data = into ?? decompress(blob.compressor as Codec, stored, { size: ref.uncompressedSize });
    } catch (err) {
      throw undecodable(blob, ref, err);
    }
  }
  return verified(blob, ref, data, () => digest(blob.digester, data));
}

/**
 * Chunks of a CHECKPOINTS blob decoded from one checkpoint (the same stored start): the stream is
 * decoded once, to the end of the last of them, from `stored` (their stored bytes, to the end of the
 * longest), and each chunk is its slice, verified. Without that each chunk would decode the stream
 * from the checkpoint again. When the stream does not decode that far, each chunk is decoded from
 * its own stored bytes (the ones before the fault may be sound). Per chunk: its bytes or its error.
 */
export function decodeCheckpointRun(blob: BlobInfo, refs: readonly ChunkRef[], stored: Buffer): (Buffer | ChunkIntegrityError)[] {
  const first = refs[0]!;
  const one = (ref: ChunkRef): Buffer | ChunkIntegrityError => {
    try {
      return decodeChunk(blob, ref, stored.subarray(0, ref.compressedSize));
    } catch (err) {
      return err instanceof ChunkIntegrityError ? err : undecodable(blob, ref, err);
    }
  };
  const oneRun = refs.every((r) => r.checkpoint === first.checkpoint && r.compressedOffset === first.compressedOffset && r.compressedSize <= stored.length);
  if (refs.length === 1 || !oneRun) return refs.map(one);
  const run = Buffer.allocUnsafeSlow(Math.max(...refs.map((r) => (r.innerOffset ?? 0) + r.uncompressedSize)));
  try {
    extractFromCheckpoint(blob, { ...first, innerOffset: 0 }, stored, run);
  } catch {
    return refs.map(one);
  }
  return refs.map((ref) => {
    const at = ref.innerOffset ?? 0;
    const data = Buffer.from(run.subarray(at, at + ref.uncompressedSize));
    try {
      return verified(blob, ref, data, () => digest(blob.digester, data));
    } catch (err) {
      return err as ChunkIntegrityError;
    }
  });
}

/**
 * Chunks up to this size are decoded on the calling thread: tens of microseconds, less than the two
 * trips through the libuv pool (and the queue behind a burst of them) that would hand the work off.
 */
export const INLINE_DECODE_MAX = 64 << 10;

/** As decodeChunk, with decompression and the digest on the libuv pool (small chunks inline): for the main thread. */
export async function decodeChunkAsync(blob: BlobInfo, ref: ChunkRef, stored: Buffer): Promise<Buffer> {
  // decoding from a checkpoint has no pool variant yet: a span and a chunk at most (MAX_INNER_OFFSET)
  if (ref.uncompressedSize <= INLINE_DECODE_MAX || isCheckpointed(blob)) return decodeChunk(blob, ref, stored);
  checkStored(blob, ref, stored.length);
  let data = stored;
  if (isMembers(blob) || isCompressed(blob, ref)) {
    try {
      [data] = (await (isMembers(blob)
        ? decodeMemberBatch(blob.compressor as MemberCodec, [stored], [ref.innerOffset ?? 0], [ref.uncompressedSize])
        : decompressBatch(blob.compressor as Codec, [stored], [ref.uncompressedSize]))) as [Buffer];
    } catch (err) {
      throw undecodable(blob, ref, err);
    }
  }
  const [got] = (await digestBatch(blob.digester, [data])) as [Buffer];
  return verified(blob, ref, data, () => got);
}

/**
 * A gzip member chunk (an eStargz layer's) decoded as its stored bytes arrive: `push` each new piece
 * of them, in order, and once all are in `finish` gives the chunk's verified bytes as decodeChunk
 * would (or throws its ChunkIntegrityError), the decoding and the digest done already. On a slow
 * link a 4 MiB chunk's bytes take 50+ ms to come, and decoding them whole after the last one came
 * (7–25 ms on 2 busy cores) held up the reader waiting for it. A fault is kept until `finish`.
 */
export class MemberChunkStream {
  private readonly stream: GzipMemberStream;
  private fed = 0;
  private fault: unknown;

  /** Whether `ref` of `blob` is decoded this way: a gzip member too large to decode inline. */
  static suits(blob: BlobInfo, ref: ChunkRef): boolean {
    return isMembers(blob) && blob.compressor === 'gzip' && ref.uncompressedSize > INLINE_DECODE_MAX && (ref.innerOffset ?? 0) <= MAX_INNER_OFFSET;
  }

  constructor(private readonly blob: BlobInfo, private readonly ref: ChunkRef) {
    this.stream = new GzipMemberStream(blob.digester, ref.innerOffset ?? 0, Buffer.allocUnsafeSlow(ref.uncompressedSize));
  }

  /** The next stored bytes of the chunk (past its stored size they are not its own). */
  push(piece: Buffer): void {
    if (this.fault !== undefined || piece.length === 0) return;
    this.fed += piece.length;
    try {
      // what follows the wanted bytes is never decoded: input past them is ignored
      this.stream.push(piece);
    } catch (err) {
      this.fault = err;
    }
  }

  finish(): Buffer {
    const { blob, ref } = this;
    checkStored(blob, ref, this.fed);
    let got: Buffer;
    try {
      if (this.fault !== undefined) throw this.fault;
      got = this.stream.digest();
    } catch (err) {
      throw undecodable(blob, ref, err);
    }
    return verified(blob, ref, this.stream.out, () => got);
  }
}
