// Decoded chunks kept on disk for the FUSE workers serving a local blob directory. A chunk decoded a
// second time (its decoded copy fell out of a worker's few-chunk LRU and was asked for again: a
// random reader) is written, decoded, into its blob's spill file and read from there from then on:
// a 4 KiB read then costs a 4 KiB pread instead of decoding its whole chunk (nydusd keeps its blob
// cache decoded for the same reason). A sequential reader decodes each chunk once and writes nothing.
//
// A spill file is anonymous: the main thread creates it in the cache directory and unlinks it at
// once, so nothing outlives the process; each worker opens its own descriptor through
// /proc/self/fd and checks that it is that file (device and inode), so a descriptor number reused
// after the mount closed can never be written. The slot of chunk i is i × the blob's chunk size,
// never the bootstrap's uncompressed offsets: no two chunks can share bytes, whatever a bootstrap
// says. Only verified bytes are written, and a failed write (a full disk) only means the chunk is
// decoded again next time.
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import { ChunkIntegrityError } from './chunk-decoder.js';
import { preadExact } from './sync-chunks.js';

/** What a worker is given: per blob, the main thread's descriptor of its spill file and who that file is. */
export interface SpillFiles {
  files: ({ fd: number; dev: number; ino: number } | null)[];
  /** One state byte per chunk of each blob, blob after blob (DecodedState), shared by the workers. */
  state: SharedArrayBuffer;
}

/** A chunk's state: never decoded, decoded once, being written (or not writable), readable from the spill file. */
const DecodedState = { NEVER: 0, ONCE: 1, WRITING: 2, SPILLED: 3 } as const;
/** More chunks than this in one image is not one worth a shared state byte per chunk. */
const MAX_CHUNKS = 1 << 24;

/** Spill files for the blobs that hold compressed chunks (none for the others); undefined if `dir` cannot have them. */
export function createSpillFiles(dir: string, blobs: readonly BlobInfo[]): { spill: SpillFiles; close: () => void } | undefined {
  const chunks = blobs.reduce((n, b) => n + b.chunkCount, 0);
  if (!blobs.some((b) => b.compressor !== 'none') || chunks > MAX_CHUNKS) return undefined;
  const files: SpillFiles['files'] = [];
  const close = (): void => files.forEach((f) => f && closeSync(f.fd));
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const b of blobs) {
      if (b.compressor === 'none') {
        files.push(null);
        continue;
      }
      const path = join(dir, `.spill-${process.pid}-${randomBytes(8).toString('hex')}`);
      const fd = openSync(path, 'wx+', 0o600);
      unlinkSync(path);
      const st = fstatSync(fd);
      files.push({ fd, dev: st.dev, ino: st.ino });
    }
    return { spill: { files, state: new SharedArrayBuffer(Math.max(1, chunks)) }, close };
  } catch {
    close();
    return undefined;
  }
}

/** A worker's side of the spill files: which chunks are in them, reading them, offering decoded chunks. */
export class DecodedSpill {
  private readonly state: Uint8Array;
  /** Where each blob's state bytes start. */
  private readonly base: number[];
  /** This worker's own descriptors, opened when it takes the image (-1: that blob has no usable spill file). */
  private readonly fds: number[];

  constructor(private readonly spill: SpillFiles, private readonly blobs: readonly BlobInfo[]) {
    this.state = new Uint8Array(spill.state);
    this.base = [];
    let at = 0;
    for (const b of blobs) {
      this.base.push(at);
      at += b.chunkCount;
    }
    this.fds = blobs.map((_, i) => this.open(i));
  }

  /** Whether the chunk can be read from its spill file. */
  has(ref: ChunkRef): boolean {
    const i = this.index(ref);
    return i >= 0 && Atomics.load(this.state, i) === DecodedState.SPILLED;
  }

  /** Fills `into` with the spilled chunk's bytes from `start`; false (nothing read) if the file ends first. */
  read(ref: ChunkRef, start: number, into: Buffer): boolean {
    try {
      preadExact(this.fds[ref.blobIndex]!, into, this.slot(ref) + start, this.blobs[ref.blobIndex]!, ref, 'spill file');
      return true;
    } catch (err) {
      if (err instanceof ChunkIntegrityError) return false;
      throw err;
    }
  }

  /** A chunk was decoded and verified: the second time it is (by any worker), it is written to its spill file. */
  decoded(ref: ChunkRef, data: Buffer): void {
    const i = this.index(ref);
    if (i < 0 || Atomics.compareExchange(this.state, i, DecodedState.NEVER, DecodedState.ONCE) === DecodedState.NEVER) return;
    if (Atomics.compareExchange(this.state, i, DecodedState.ONCE, DecodedState.WRITING) !== DecodedState.ONCE) return;
    try {
      const position = this.slot(ref);
      for (let done = 0; done < data.length;) done += writeSync(this.fds[ref.blobIndex]!, data, done, data.length - done, position + done);
      Atomics.store(this.state, i, DecodedState.SPILLED);
    } catch {
      // left WRITING: never read from the file, and not tried again
    }
  }

  close(): void {
    for (const fd of this.fds) if (fd >= 0) closeSync(fd);
    this.fds.fill(-1);
  }

  /** The chunk's state byte, or -1 when it cannot be spilled (no file, or larger than its slot). */
  private index(ref: ChunkRef): number {
    const blob = this.blobs[ref.blobIndex];
    if (!blob || this.fds[ref.blobIndex]! < 0 || ref.ciIndex < 0 || ref.ciIndex >= blob.chunkCount || ref.uncompressedSize > blob.chunkSize) return -1;
    return this.base[ref.blobIndex]! + ref.ciIndex;
  }

  private slot(ref: ChunkRef): number {
    return ref.ciIndex * this.blobs[ref.blobIndex]!.chunkSize;
  }

  /** Our own descriptor of blob `i`'s spill file, if it is the file the main thread made. */
  private open(i: number): number {
    const file = this.spill.files[i];
    if (!file) return -1;
    try {
      const fd = openSync(`/proc/self/fd/${file.fd}`, 'r+');
      const st = fstatSync(fd);
      if (st.dev === file.dev && st.ino === file.ino) return fd;
      closeSync(fd);
    } catch {
      // the mount is going away: nothing is spilled
    }
    return -1;
  }
}
