// File data cut at another chunk size than it is stored in, read from the stored chunks: each new
// chunk is copied out of the stored chunks it overlaps, in any order the caller asks for. Stored
// chunks are read ahead of need and kept a while (most new chunks share a stored one with their
// neighbours); both are bounded in bytes, so memory does not grow with file size.
import { chunkKey } from '../rafs/chunk.js';
import type { ChunkRef, Inode } from '../rafs/tree.js';
import { MiB } from '../util/bytes.js';

/** A stored chunk's verified, decompressed bytes. */
export type ReadChunk = (ref: ChunkRef) => Promise<Buffer>;

export interface StoredFile {
  inode: Inode;
  /** The chunk size its chunks are stored at. */
  chunkSize: number;
}

/** Chunk `index` (at the new chunk size) of file `file`. */
export interface NewChunk {
  file: number;
  index: number;
}

/** Stored bytes read ahead of need, at most (the chunk being assembled aside); twice that are kept. */
const DEFAULT_BUDGET = 32 * MiB;

/** The bytes of each of `chunks`, in order, each a Buffer of its own. */
export async function* rechunkedData(files: readonly StoredFile[], chunks: readonly NewChunk[], chunkSize: number, read: ReadChunk, budget = DEFAULT_BUDGET): AsyncGenerator<Buffer> {
  const stored = new StoredChunks(read, 2 * budget);
  // chunks [i, ahead) have had their stored chunks asked for; startedFor[k]: the bytes chunk k's asking started
  const startedFor = new Float64Array(chunks.length);
  let ahead = 0;
  let aheadBytes = 0;
  for (let i = 0; i < chunks.length; i++) {
    for (; ahead < chunks.length && (ahead <= i || aheadBytes < budget); ahead++) {
      const before = stored.started;
      for (const ref of storedChunksOf(files, chunks[ahead]!, chunkSize)) stored.get(ref);
      startedFor[ahead] = stored.started - before;
      aheadBytes += startedFor[ahead]!;
    }
    yield await assemble(files[chunks[i]!.file]!, chunks[i]!.index, chunkSize, stored);
    aheadBytes -= startedFor[i]!;
  }
}

/** The stored chunks new chunk `c` overlaps, in file order. */
function storedChunksOf(files: readonly StoredFile[], c: NewChunk, chunkSize: number): ChunkRef[] {
  const { inode, chunkSize: size } = files[c.file]!;
  const start = c.index * chunkSize;
  const end = Math.min(start + chunkSize, inode.size);
  return inode.chunks.slice(Math.floor(start / size), Math.floor((end - 1) / size) + 1);
}

async function assemble(file: StoredFile, index: number, chunkSize: number, stored: StoredChunks): Promise<Buffer> {
  const start = index * chunkSize;
  const out = Buffer.allocUnsafe(Math.min(chunkSize, file.inode.size - start));
  const first = Math.floor(start / file.chunkSize);
  const parts = await Promise.all(storedChunksOf([file], { file: 0, index }, chunkSize).map((ref) => stored.get(ref)));
  let filled = 0;
  parts.forEach((data, k) => {
    const at = (first + k) * file.chunkSize;
    const from = Math.max(start, at);
    const to = Math.min(start + out.length, at + data.length);
    if (to > from) filled += data.copy(out, from - start, from - at, to - at);
  });
  // the reader checks each stored chunk's size, so this only fails on a bug: never hand on unfilled bytes
  if (filled !== out.length) throw new Error(`stored chunks filled ${filled} of the ${out.length} bytes at ${start}`);
  return out;
}

/**
 * Stored chunk reads by (blob, CI index), most recently wanted last; the oldest are dropped while
 * they hold more than `capacity` bytes (never the one just wanted).
 */
class StoredChunks {
  private readonly reads = new Map<number, { ref: ChunkRef; data: Promise<Buffer> }>();
  private held = 0;
  /** Bytes of every read started so far. */
  started = 0;

  constructor(private readonly read: ReadChunk, private readonly capacity: number) {}

  get(ref: ChunkRef): Promise<Buffer> {
    const key = chunkKey(ref.blobIndex, ref.ciIndex);
    let entry = this.reads.get(key);
    if (entry !== undefined) this.reads.delete(key);
    else {
      entry = { ref, data: this.read(ref) };
      // a read ahead that fails is thrown when its chunk is assembled, not as an unhandled rejection
      entry.data.catch(() => {});
      this.held += ref.uncompressedSize;
      this.started += ref.uncompressedSize;
    }
    this.reads.set(key, entry);
    while (this.held > this.capacity && this.reads.size > 1) {
      const [oldest, { ref: dropped }] = this.reads.entries().next().value!;
      this.reads.delete(oldest);
      this.held -= dropped.uncompressedSize;
    }
    return entry.data;
  }
}
