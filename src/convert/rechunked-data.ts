// File data cut at another chunk size than it is stored in, read from the stored chunks: each new
// chunk is copied out of the stored chunks it overlaps, in any order the caller asks for. Stored
// chunks are read ahead of need and kept a while (most new chunks share a stored one with their
// neighbours); both are bounded in bytes, so memory does not grow with file size.
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

/** Stored bytes read ahead and kept, at most (plus two chunks' worth). */
const DEFAULT_BUDGET = 32 * MiB;

/** The bytes of each of `chunks`, in order, each a Buffer of its own. */
export async function* rechunkedData(files: readonly StoredFile[], chunks: readonly NewChunk[], chunkSize: number, read: ReadChunk, budget = DEFAULT_BUDGET): AsyncGenerator<Buffer> {
  const maxStored = files.reduce((m, f) => Math.max(m, f.chunkSize), chunkSize);
  const minStored = files.reduce((m, f) => Math.min(m, f.chunkSize), maxStored);
  // a new chunk needs at most max(chunkSize, stored size) stored bytes (+1 chunk when unaligned)
  const lookahead = Math.max(1, Math.floor(budget / maxStored));
  const perChunk = Math.ceil(chunkSize / minStored) + 1;
  const stored = new StoredChunks(read, (lookahead + 2) * perChunk);
  let ahead = 0;
  for (let i = 0; i < chunks.length; i++) {
    for (; ahead < chunks.length && ahead <= i + lookahead; ahead++) for (const ref of storedChunksOf(files, chunks[ahead]!, chunkSize)) stored.get(ref);
    yield await assemble(files[chunks[i]!.file]!, chunks[i]!.index, chunkSize, stored);
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

/** Stored chunk reads by (blob, CI index), most recently wanted last; the oldest dropped past `capacity`. */
class StoredChunks {
  private readonly reads = new Map<number, Promise<Buffer>>();

  constructor(private readonly read: ReadChunk, private readonly capacity: number) {}

  get(ref: ChunkRef): Promise<Buffer> {
    const key = ref.blobIndex * 2 ** 24 + ref.ciIndex;
    let data = this.reads.get(key);
    if (data !== undefined) this.reads.delete(key);
    else {
      data = this.read(ref);
      // a read ahead that fails is thrown when its chunk is assembled, not as an unhandled rejection
      data.catch(() => {});
    }
    this.reads.set(key, data);
    if (this.reads.size > this.capacity) this.reads.delete(this.reads.keys().next().value!);
    return data;
  }
}
