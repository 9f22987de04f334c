// The checkpoint table (ours, docs/rafs-v6.md §1.20): for each blob with BlobFeature.CHECKPOINTS (an
// unmodified gzip layer), where decoding its stream may start again. A chunk of such a blob names
// one of its blob's checkpoints; its stored bytes start at the checkpoint (checkpointStart) and
// decode, after innerOffset bytes, to the chunk. The table follows the chunk info table: 32-byte
// entries grouped by blob, then the windows they point at (each a zstd frame).
import { checkEncodable, readU64, sliceChecked, writeU64 } from './bytes.js';
import { BlobFeature } from './blob-table.js';
import { RafsFormatError } from './errors.js';
import type { BlobInfo, Checkpoint } from './tree.js';

export type { Checkpoint } from './tree.js';

export const CHECKPOINT_ENTRY_SIZE = 32;
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

/** The size `c`'s window decodes to. */
export const windowSize = (c: Pick<Checkpoint, 'output'>): number => Math.min(c.output, CHECKPOINT_WINDOW);

/** The table for `blobs` (empty when none has checkpoints). */
export function encodeCheckpointTable(blobs: readonly BlobInfo[]): Buffer {
  const entries = blobs.flatMap((b, blobIndex) => (b.checkpoints ?? []).map((c) => ({ blobIndex, c })));
  const windowsAt = entries.length * CHECKPOINT_ENTRY_SIZE;
  const table = Buffer.alloc(windowsAt + entries.reduce((n, e) => n + e.c.window.length, 0));
  let windowAt = windowsAt;
  entries.forEach(({ blobIndex, c }, i) => {
    const at = i * CHECKPOINT_ENTRY_SIZE;
    checkEncodable(c.bits, 0, 7, TABLE, 'bits');
    checkEncodable(c.window.length, 1, MAX_WINDOW_FRAME, TABLE, 'window length');
    table.writeUInt32LE(blobIndex, at);
    table.writeUInt32LE(c.bits, at + 4);
    table.writeUInt32LE(c.window.length, at + 8);
    table.writeUInt32LE(windowAt, at + 12);
    writeU64(table, c.input, at + 16);
    writeU64(table, c.output, at + 24);
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
    const c = decodeEntry(table, at, entriesEnd, fail);
    const prev = perBlob[blobIndex]!.at(-1);
    if (!prev && (c.output !== 0 || c.bits !== 0)) fail('a blob\'s first checkpoint is not at the start of its output');
    if (prev && (c.input <= prev.input || c.output <= prev.output)) fail('checkpoints out of stream order');
    if (c.input > blob.compressedSize) fail(`input offset ${c.input} lies beyond the blob`);
    perBlob[blobIndex]!.push(c);
  }
  return perBlob;
}

function decodeEntry(table: Buffer, at: number, windowsAt: number, fail: (detail: string) => never): Checkpoint {
  const bits = table.readUInt32LE(at + 4);
  const windowLength = table.readUInt32LE(at + 8);
  const windowAt = table.readUInt32LE(at + 12);
  const input = readU64(table, at + 16, TABLE);
  const output = readU64(table, at + 24, TABLE);
  if (bits > 7) fail(`bits ${bits} out of 0..7`);
  if (bits > 0 && input === 0) fail('a checkpoint with bits at input offset 0');
  if (windowLength === 0 || windowLength > MAX_WINDOW_FRAME) fail(`a window frame of ${windowLength} bytes (1 to ${MAX_WINDOW_FRAME})`);
  if (windowAt < windowsAt || windowAt + windowLength > table.length) fail('window outside the table\'s window area');
  return { input, output, bits, window: table.subarray(windowAt, windowAt + windowLength) };
}

