// The checkpoint table (ours, docs/rafs-v6.md §1.20): for each blob with BlobFeature.CHECKPOINTS (an
// unmodified gzip layer), where decoding its stream may start again. A chunk of such a blob names
// one of its blob's checkpoints; its stored bytes start at the checkpoint (checkpointStart) and
// decode, after innerOffset bytes, to the chunk. The table follows the chunk info table: 32-byte
// entries grouped by blob, then the windows they point at (each a zstd frame; a SPANS blob's
// checkpoint has its span's sha256 first).
import { checkEncodable, readU64, sliceChecked, writeU64 } from './bytes.js';
import { BlobFeature } from './blob-table.js';
import { RafsEncodeError, RafsFormatError } from './errors.js';
import type { BlobInfo, Checkpoint } from './tree.js';

export type { Checkpoint } from './tree.js';

export const CHECKPOINT_ENTRY_SIZE = 32;
/** A SPANS blob's checkpoint's span digest: sha256. */
export const SPAN_DIGEST_SIZE = 32;
/** A window's size once decoded: min(output, this). */
export const CHECKPOINT_WINDOW = 32 << 10;
/** The largest a window's zstd frame may be (a raw block of the whole window and its headers). */
export const MAX_WINDOW_FRAME = CHECKPOINT_WINDOW + 64;
/** A chunk names its checkpoint in the file_offset field, above its inner offset's bits. */
export const CHECKPOINT_SHIFT = 2 ** 25;
const MAX_CHECKPOINTS = 2 ** 27;
const TABLE = 'checkpoint table';

/** The first stored byte decoding from `c` reads: the one holding its first bits when it has any. */
export const checkpointStart = (c: Pick<Checkpoint, 'input' | 'bits'>): number => c.input - (c.bits > 0 ? 1 : 0);

/** The index of the last of `checkpoints` (in stream order, the first at 0) whose output offset is at most `offset`. */
export function checkpointAt(checkpoints: readonly Pick<Checkpoint, 'output'>[], offset: number): number {
  let lo = 0;
  let hi = checkpoints.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (checkpoints[mid]!.output <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The size `c`'s window decodes to. */
export const windowSize = (c: Pick<Checkpoint, 'output'>): number => Math.min(c.output, CHECKPOINT_WINDOW);

/** The table for `blobs` (empty when none has checkpoints). */
export function encodeCheckpointTable(blobs: readonly BlobInfo[]): Buffer {
  const entries = blobs.flatMap((b, blobIndex) => (b.checkpoints ?? []).map((c) => ({ blobIndex, c })));
  const windowsAt = entries.length * CHECKPOINT_ENTRY_SIZE;
  const areaSize = (c: Checkpoint): number => (c.spanDigest?.length ?? 0) + c.window.length;
  const table = Buffer.alloc(windowsAt + entries.reduce((n, e) => n + areaSize(e.c), 0));
  let windowAt = windowsAt;
  entries.forEach(({ blobIndex, c }, i) => {
    const at = i * CHECKPOINT_ENTRY_SIZE;
    const spans = (blobs[blobIndex]!.features & BlobFeature.SPANS) !== 0;
    checkEncodable(c.bits, 0, 7, TABLE, 'bits');
    checkEncodable(c.window.length, 1, MAX_WINDOW_FRAME, TABLE, 'window length');
    if (spans !== (c.spanDigest?.length === SPAN_DIGEST_SIZE)) throw new RafsEncodeError(TABLE, 'a SPANS blob\'s checkpoints (and only those) carry a 32-byte span digest');
    table.writeUInt32LE(blobIndex, at);
    table.writeUInt32LE(c.bits, at + 4);
    table.writeUInt32LE(areaSize(c), at + 8);
    table.writeUInt32LE(windowAt, at + 12);
    writeU64(table, c.input, at + 16);
    writeU64(table, c.output, at + 24);
    if (c.spanDigest) windowAt += c.spanDigest.copy(table, windowAt);
    windowAt += c.window.copy(table, windowAt);
  });
  return table;
}

/**
 * The checkpoints of each blob from the table at `offset` (`size` bytes) of `buf`, checked: each
 * belongs to a CHECKPOINTS blob, a blob's start at the stream's start (output 0) and go on in
 * stream order inside its stored size, and each window frame is of a size a window can take and
 * lies inside the table's window area (what it decodes to is checked when a chunk is decoded).
 */
export function decodeCheckpointTable(buf: Buffer, offset: number, size: number, blobs: readonly BlobInfo[]): Checkpoint[][] {
  const table = sliceChecked(buf, offset, size, TABLE);
  const perBlob = blobs.map((): Checkpoint[] => []);
  if (size === 0) return perBlob;
  // the entries end where the first one's window begins
  const entriesEnd = size >= CHECKPOINT_ENTRY_SIZE ? table.readUInt32LE(12) : 0;
  if (entriesEnd < CHECKPOINT_ENTRY_SIZE || entriesEnd % CHECKPOINT_ENTRY_SIZE !== 0 || entriesEnd > size) {
    throw new RafsFormatError(TABLE, offset, `entries end at ${entriesEnd}, not a whole number of entries inside the ${size}-byte table`);
  }
  if (entriesEnd / CHECKPOINT_ENTRY_SIZE > MAX_CHECKPOINTS) throw new RafsFormatError(TABLE, offset, `more than ${MAX_CHECKPOINTS} checkpoints`);
  let lastBlob = 0;
  for (let at = 0; at < entriesEnd; at += CHECKPOINT_ENTRY_SIZE) {
    const fail = (detail: string): never => {
      throw new RafsFormatError(TABLE, offset + at, detail);
    };
    const blobIndex = table.readUInt32LE(at);
    const blob = blobs[blobIndex];
    if (!blob || !(blob.features & BlobFeature.CHECKPOINTS)) return fail(`blob ${blobIndex} has no checkpoints`);
    if (blobIndex < lastBlob) fail('entries are not grouped by blob');
    lastBlob = blobIndex;
    const c = decodeEntry(table, at, entriesEnd, (blob.features & BlobFeature.SPANS) !== 0, fail);
    const prev = perBlob[blobIndex]!.at(-1);
    if (!prev && (c.output !== 0 || c.bits !== 0)) fail('a blob\'s first checkpoint is not at the start of its output');
    if (prev && (c.input <= prev.input || c.output <= prev.output)) fail('checkpoints out of stream order');
    if (c.input > blob.compressedSize) fail(`input offset ${c.input} lies beyond the blob`);
    perBlob[blobIndex]!.push(c);
  }
  return perBlob;
}

function decodeEntry(table: Buffer, at: number, windowsAt: number, spans: boolean, fail: (detail: string) => never): Checkpoint {
  const bits = table.readUInt32LE(at + 4);
  const areaLength = table.readUInt32LE(at + 8);
  const areaAt = table.readUInt32LE(at + 12);
  const input = readU64(table, at + 16, TABLE);
  const output = readU64(table, at + 24, TABLE);
  if (bits > 7) fail(`bits ${bits} out of 0..7`);
  if (bits > 0 && input === 0) fail('a checkpoint with bits at input offset 0');
  const digestLength = spans ? SPAN_DIGEST_SIZE : 0;
  const windowLength = areaLength - digestLength;
  if (windowLength < 1 || windowLength > MAX_WINDOW_FRAME) fail(`a window frame of ${windowLength} bytes (1 to ${MAX_WINDOW_FRAME})`);
  if (areaAt < windowsAt || areaAt + areaLength > table.length) fail('window outside the table\'s window area');
  const window = table.subarray(areaAt + digestLength, areaAt + areaLength);
  return spans ? { input, output, bits, window, spanDigest: table.subarray(areaAt, areaAt + digestLength) } : { input, output, bits, window };
}

/** Where span `k` of a SPANS blob's `checkpoints` ends in the blob: the next checkpoint's input, or the blob's end. */
export const spanEnd = (checkpoints: readonly Checkpoint[], k: number, blobSize: number): number => checkpoints[k + 1]?.input ?? blobSize;

/**
 * The span of a SPANS blob's `checkpoints`, from span `first` on, that ends exactly at stored offset
 * `end` (found by halving: spans end in stream order); undefined when none does.
 */
export function spanEndingAt(checkpoints: readonly Checkpoint[], first: number, end: number, blobSize: number): number | undefined {
  let lo = first;
  let hi = checkpoints.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (spanEnd(checkpoints, mid - 1, blobSize) < end) lo = mid;
    else hi = mid - 1;
  }
  return spanEnd(checkpoints, lo, blobSize) === end ? lo : undefined;
}

