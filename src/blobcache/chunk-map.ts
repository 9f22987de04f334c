// The per-blob readiness bitmap of a blob cache, in nydusd's PersistMap format (docs/rafs-v6.md §6.7), so a
// cache directory can be shared with upstream tools: a 4096-byte header (magic, version 1, magic2,
// all_ready, zero padding) and then one bit per chunk, MSB first. A file with a wrong magic is
// discarded and the map starts empty: the worst case is fetching chunks again. A valid map of
// another chunk count is another image's claim about the same blob id: it is refused, never
// replaced, since replacing it would take readiness from the image that made it.
import { link, open, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

export const CHUNK_MAP_HEADER_SIZE = 4096;
export const CHUNK_MAP_MAGIC = 0x424d4150;
export const CHUNK_MAP_VERSION = 1;
export const CHUNK_MAP_MAGIC2 = 0x434d4150;
export const CHUNK_MAP_ALL_READY = 0x4d4d4150;
/** Largest chunk count accepted (the CI index is 24 bits in RAFS v6). */
export const MAX_CHUNK_COUNT = 2 ** 24;

export const CHUNK_DATA_SUFFIX = '.blob.data';
export const CHUNK_MAP_SUFFIX = '.blob.data.chunk_map';

/** Bitmap bytes for `count` chunks. */
export function bitmapSize(count: number): number {
  return Math.ceil(count / 8);
}

/** Exact size of a chunk-map file for `count` chunks. */
export function chunkMapFileSize(count: number): number {
  return CHUNK_MAP_HEADER_SIZE + bitmapSize(count);
}

/** A valid chunk map exists for this blob id with another chunk count than the caller's image claims. */
export class ChunkMapConflictError extends Error {
  constructor(readonly path: string, readonly slots: number, readonly count: number) {
    super(`chunk map ${path} describes a blob of ${slots} chunk slots, not ${count}: another image describes this blob differently`);
  }
}

function checkCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 0 || count > MAX_CHUNK_COUNT) throw new RangeError(`chunk count ${count} out of range 0..${MAX_CHUNK_COUNT}`);
}

/** Where chunk `index`'s bit lives in the file: byte offset and mask (MSB first). */
export function chunkBit(index: number): { offset: number; mask: number } {
  return { offset: CHUNK_MAP_HEADER_SIZE + Math.floor(index / 8), mask: 1 << (7 - (index % 8)) };
}

export function encodeChunkMapHeader(allReady: boolean): Buffer {
  const header = Buffer.alloc(CHUNK_MAP_HEADER_SIZE);
  header.writeUInt32LE(CHUNK_MAP_MAGIC, 0);
  header.writeUInt32LE(CHUNK_MAP_VERSION, 4);
  header.writeUInt32LE(CHUNK_MAP_MAGIC2, 8);
  header.writeUInt32LE(allReady ? CHUNK_MAP_ALL_READY : 0, 12);
  return header;
}

/** A whole chunk-map file for `count` chunks, with `ready(i)` deciding each bit. */
export function encodeChunkMap(count: number, ready: (index: number) => boolean = () => false): Buffer {
  checkCount(count);
  const bitmap = Buffer.alloc(bitmapSize(count));
  let all = true;
  for (let i = 0; i < count; i++) {
    if (ready(i)) bitmap[i >> 3]! |= 1 << (7 - (i % 8));
    else all = false;
  }
  return Buffer.concat([encodeChunkMapHeader(all), bitmap]);
}

export interface DecodedChunkMap {
  /** `bitmapSize(count)` bytes; with all_ready set in the header, every chunk's bit is set here. */
  bitmap: Buffer;
  allReady: boolean;
}

/**
 * Parses a chunk-map file for a blob of `count` chunks; undefined when it is not one (wrong size,
 * magic or version), which callers treat as "nothing is ready".
 */
export function decodeChunkMap(file: Buffer, count: number): DecodedChunkMap | undefined {
  checkCount(count);
  if (file.length !== chunkMapFileSize(count)) return undefined;
  if (file.readUInt32LE(0) !== CHUNK_MAP_MAGIC || file.readUInt32LE(4) !== CHUNK_MAP_VERSION || file.readUInt32LE(8) !== CHUNK_MAP_MAGIC2) return undefined;
  const allReady = file.readUInt32LE(12) === CHUNK_MAP_ALL_READY;
  const bitmap = Buffer.from(file.subarray(CHUNK_MAP_HEADER_SIZE));
  if (allReady) {
    for (let i = 0; i < count; i++) bitmap[i >> 3]! |= 1 << (7 - (i % 8));
  } else if (count % 8 !== 0 && bitmap.length > 0) {
    // bits past the last chunk mean nothing; keep them clear so counts stay exact
    bitmap[bitmap.length - 1]! &= (0xff << (8 - (count % 8))) & 0xff;
  }
  return { bitmap, allReady };
}

/** Chunks whose bit is set. */
export function countReady(bitmap: Buffer, count: number): number {
  let n = 0;
  for (let i = 0; i < count; i++) if (bitmap[i >> 3]! & (1 << (7 - (i % 8)))) n++;
  return n;
}

/**
 * Summary of a chunk-map file whose chunk count is not known (the file does not record it): the
 * bits set and the number of slots (bitmap bytes × 8, which rounds the count up to a multiple of 8).
 */
export function inspectChunkMapFile(file: Buffer): { readyChunks: number; slots: number; allReady: boolean } | undefined {
  if (file.length < CHUNK_MAP_HEADER_SIZE) return undefined;
  const slots = (file.length - CHUNK_MAP_HEADER_SIZE) * 8;
  const decoded = decodeChunkMap(file, slots);
  if (!decoded) return undefined;
  return { readyChunks: decoded.allReady ? slots : countReady(decoded.bitmap, slots), slots, allReady: decoded.allReady };
}

export function chunkMapPath(dir: string, blobId: string): string {
  return join(dir, `${blobId}${CHUNK_MAP_SUFFIX}`);
}

/**
 * The file-backed map of one blob. Callers mark a chunk ready only after its data is written and
 * synced, so a crash can lose readiness but never claim a chunk that is not on disk. Bit writes are
 * serialised (pwrite of one byte each), so concurrent marks of neighbouring chunks cannot undo
 * each other; each write re-reads its byte first, so bits another process set meanwhile survive
 * (narrowing, not closing, the window nydusd closes with an atomic compare-and-swap on an mmap).
 */
export class ChunkMap {
  private ready: number;
  /** Tail of the serialised bit writes; never rejects. */
  private writes: Promise<void> = Promise.resolve();
  /** Bytes of the bitmap with bits set here but not yet written. */
  private readonly dirty = new Set<number>();
  /** The write the next marks join (made once the one under way is done). */
  private nextWrite: Promise<void> | undefined;
  private closed = false;

  private constructor(
    private readonly fh: FileHandle | undefined,
    readonly path: string,
    readonly count: number,
    private readonly bitmap: Buffer,
    private allReadyWritten: boolean,
  ) {
    this.ready = countReady(bitmap, count);
  }

  /**
   * Opens `<dir>/<blobId>.blob.data.chunk_map` for a blob of `count` chunks, creating it (or
   * replacing an invalid one) unless `readOnly`. A read-only open of a missing or invalid file gives
   * an empty map that cannot be marked.
   */
  static async open(dir: string, blobId: string, count: number, options: { readOnly?: boolean } = {}): Promise<ChunkMap> {
    checkCount(count);
    const path = chunkMapPath(dir, blobId);
    if (options.readOnly) {
      let decoded: DecodedChunkMap | undefined;
      try {
        const fh = await open(path, 'r');
        try {
          decoded = decodeChunkMap(await fh.readFile(), count);
        } finally {
          await fh.close();
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      return new ChunkMap(undefined, path, count, decoded?.bitmap ?? Buffer.alloc(bitmapSize(count)), decoded?.allReady ?? false);
    }
    for (let attempt = 0; ; attempt++) {
      let fh: FileHandle;
      try {
        fh = await open(path, 'r+');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 2) throw err;
        await ChunkMap.createExclusive(path, count);
        continue; // ours, or another process's made first: open it
      }
      let decoded: DecodedChunkMap | undefined;
      try {
        const file = await fh.readFile();
        if (file.length !== chunkMapFileSize(count) && inspectChunkMapFile(file)) throw new ChunkMapConflictError(path, (file.length - CHUNK_MAP_HEADER_SIZE) * 8, count);
        decoded = decodeChunkMap(file, count);
      } catch (err) {
        await fh.close();
        throw err;
      }
      if (decoded) return new ChunkMap(fh, path, count, decoded.bitmap, decoded.allReady);
      // not a chunk map at all: start over
      await fh.close();
      await unlink(path).catch(() => undefined);
      if (attempt > 2) throw new Error(`chunk map ${path} keeps being replaced`);
    }
  }

  /**
   * Makes an empty map at `path` unless one exists: written whole under a temporary name, then
   * linked into place (link fails if the name exists), so nobody ever opens a half-written map and
   * a map another process made first is never replaced.
   */
  private static async createExclusive(path: string, count: number): Promise<void> {
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await writeFile(tmp, encodeChunkMap(count), { flush: true });
      await link(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  get readOnly(): boolean {
    return this.fh === undefined;
  }

  get readyCount(): number {
    return this.ready;
  }

  get allReady(): boolean {
    return this.ready === this.count;
  }

  isReady(index: number): boolean {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) return false;
    return (this.bitmap[index >> 3]! & (1 << (7 - (index % 8)))) !== 0;
  }

  /**
   * Whether chunk `index` is ready, asking the file as well: another process may have marked it
   * since this map was loaded (and its bytes must then not be written over).
   */
  async isReadyOnDisk(index: number): Promise<boolean> {
    if (this.isReady(index)) return true;
    if (!this.fh || this.closed || !Number.isInteger(index) || index < 0 || index >= this.count) return false;
    const { offset } = chunkBit(index);
    const onDisk = Buffer.alloc(1);
    const { bytesRead } = await this.fh.read(onDisk, 0, 1, offset);
    if (bytesRead === 1) this.learn(index >> 3, onDisk[0]!);
    return this.isReady(index);
  }

  /**
   * Sets chunk `index`'s bit on disk (and all_ready once every bit is set). Call after the data is
   * durable. Marks made while a write is under way go out together in the next one: a stream of
   * small chunks costs a few writes of the bitmap, not two system calls each.
   */
  markReady(index: number): Promise<void> {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) return Promise.reject(new RangeError(`chunk ${index} out of range 0..${this.count - 1}`));
    if (!this.fh || this.closed) return Promise.reject(new Error(`chunk map ${this.path} is ${this.closed ? 'closed' : 'read-only'}`));
    if (this.isReady(index)) return this.writes;
    const { mask } = chunkBit(index);
    this.bitmap[index >> 3]! |= mask;
    this.ready++;
    this.dirty.add(index >> 3);
    this.nextWrite ??= this.writeDirty(this.fh);
    return this.nextWrite;
  }

  /** Once the write under way is done: the dirty bytes, each run of neighbours in one read-modify-write. */
  private writeDirty(fh: FileHandle): Promise<void> {
    const done = this.writes.then(async () => {
      // from here on, a mark waits for the write after this one
      this.nextWrite = undefined;
      const bytes = [...this.dirty].sort((a, b) => a - b);
      this.dirty.clear();
      for (let i = 0; i < bytes.length; ) {
        let j = i;
        while (j + 1 < bytes.length && bytes[j + 1] === bytes[j]! + 1) j++;
        const first = bytes[i]!;
        const length = bytes[j]! - first + 1;
        // keep bits another process set in these bytes since we loaded the map
        const onDisk = Buffer.alloc(length);
        const { bytesRead } = await fh.read(onDisk, 0, length, CHUNK_MAP_HEADER_SIZE + first);
        for (let k = 0; k < bytesRead; k++) this.learn(first + k, onDisk[k]!);
        await fh.write(this.bitmap, first, length, CHUNK_MAP_HEADER_SIZE + first);
        i = j + 1;
      }
      if (this.ready === this.count && !this.allReadyWritten) {
        this.allReadyWritten = true;
        await fh.datasync();
        await fh.write(encodeChunkMapHeader(true), 12, 4, 12);
      }
    });
    // one failed write fails its own callers, not every later mark
    this.writes = done.catch(() => undefined);
    return done;
  }

  /** Adopts bits of byte `byteIndex` that are set on disk but not here (chunks past the count excepted). */
  private learn(byteIndex: number, onDisk: number): void {
    const valid = Math.min(8, this.count - byteIndex * 8);
    const validMask = (0xff << (8 - valid)) & 0xff;
    const learned = onDisk & ~this.bitmap[byteIndex]! & validMask;
    if (learned === 0) return;
    this.bitmap[byteIndex]! |= learned;
    for (let b = learned; b !== 0; b &= b - 1) this.ready++;
  }

  /** Waits for pending bit writes. */
  flush(): Promise<void> {
    return this.writes;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writes.catch(() => undefined);
    await this.fh?.close();
  }
}
