// The local blob cache: per blob, a sparse `<blobId>.blob.data` file holding each chunk's
// uncompressed bytes at its uncompressed offset (docs/rafs-v6.md §3.9) and a `<blobId>.blob.data.chunk_map`
// saying which chunks are there (§6.7) — the layout nydusd's filecache uses. A hit is a positional
// read; a miss goes to an optional read-only fallback cache directory and then to the fetcher,
// which verifies, stores and marks the chunk. Knows nothing of FUSE or of images.
//
// Every image is untrusted toward every other, and a blob id says nothing of the chunk table an
// image claims for it: so cached bytes are checked against the reader's own chunk digest before
// they are handed over, a chunk marked ready is never written again (by any process: its bit is
// read from disk before a write), and a cache file is never truncated or replaced while in use.
// An image that describes a cached chunk differently from the one that stored it gets an
// integrity error for that chunk (EIO), never the other image's bytes.
import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { digest, digestBatch } from '../native/index.js';
import type { BlobInfo, ChunkRef } from '../rafs/tree.js';
import type { BlobBackend } from './backend.js';
import { ChunkIntegrityError } from './chunk-decoder.js';
import { CHUNK_DATA_SUFFIX, ChunkMap, chunkMapPath, inspectChunkMapFile } from './chunk-map.js';
import { ChunkFetcher, type ChunkSink, type FetcherOptions } from './fetcher.js';
import { isBlobId } from '../rafs/blob.js';
import { isSpansBlob } from '../rafs/span-blob.js';

/** File mtimes (the on-disk access record) are refreshed at most this often per blob. */
const TOUCH_INTERVAL_MS = 1000;

export interface BlobCacheOptions {
  /** Where chunks come from on a miss; without it (or `fetcher`) a miss is an error. */
  backend?: BlobBackend;
  /** A ready-made fetcher (overrides `backend` and `fetch`). */
  fetcher?: ChunkFetcher;
  /** Request merging and amplification settings for the fetcher made from `backend`. */
  fetch?: FetcherOptions;
  /** A cache directory (same layout) consulted read-only on a miss, before the backend. */
  fallbackDir?: string;
}

export interface BlobUsage {
  blobId: string;
  /** Apparent size of the data file (the blob's uncompressed size). */
  dataSize: number;
  /** Bytes the data and chunk-map files occupy on disk (sparse data counts only what was written). */
  diskBytes: number;
  readyChunks: number;
  /** Chunk count; when the blob is not open in this process it is the map's capacity (a multiple of 8), see `exact`. */
  totalChunks: number;
  /** Whether totalChunks is the blob's real chunk count. */
  exact: boolean;
  /** Last read through this cache (ms since the epoch), or the data file's mtime. */
  lastAccess: number;
  /** Reads of this blob under way. */
  busy: boolean;
}

export interface PruneResult {
  removed: string[];
  freedBytes: number;
  /** Bytes still used after pruning. */
  totalBytes: number;
}

export class CacheMissError extends Error {}

/** A chunk (or blob) is held in the cache as another image described it, not as the reader's image does. */
export class ChunkConflictError extends ChunkIntegrityError {}

interface Entry {
  blob: BlobInfo;
  data: FileHandle;
  map: ChunkMap;
  sink: ChunkSink;
  lastTouch: number;
}

export class BlobCache {
  readonly fetcher: ChunkFetcher | undefined;
  private readonly entries = new Map<string, Promise<Entry>>();
  private readonly busy = new Map<string, number>();
  private readonly lastAccess = new Map<string, number>();
  private readonly removing = new Map<string, Promise<void>>();
  private readonly fallbackMaps = new Map<string, Promise<ChunkMap>>();

  private constructor(readonly dir: string, private readonly options: BlobCacheOptions) {
    this.fetcher = options.fetcher ?? (options.backend ? new ChunkFetcher(options.backend, options.fetch) : undefined);
  }

  static async open(dir: string, options: BlobCacheOptions = {}): Promise<BlobCache> {
    await mkdir(dir, { recursive: true });
    return new BlobCache(dir, options);
  }

  /** The verified uncompressed bytes of chunk `ref` of `blob` (fetched: with `early`, before they are stored). */
  async readChunk(blob: BlobInfo, ref: ChunkRef, early = false): Promise<Buffer> {
    checkRef(blob, ref);
    const id = blob.blobId;
    this.busy.set(id, (this.busy.get(id) ?? 0) + 1);
    this.lastAccess.set(id, Date.now());
    try {
      const entry = await this.entry(blob);
      void this.touch(entry);
      if (entry.map.isReady(ref.ciIndex)) return await this.readCached(entry, ref);
      const fromFallback = await this.readFallback(entry, ref);
      if (fromFallback) return fromFallback;
      if (!this.fetcher) throw new CacheMissError(`chunk ${ref.ciIndex} of blob ${id} is not cached and the cache has no backend`);
      return await this.fetcher.fetch(blob, ref, entry.sink, early);
    } finally {
      const n = (this.busy.get(id) ?? 1) - 1;
      if (n === 0) this.busy.delete(id);
      else this.busy.set(id, n);
    }
  }

  /**
   * Stores chunk bytes the caller has verified against `ref`'s digest (a hot pack's, which come by
   * another road than the fetcher's), unless the chunk is cached already.
   */
  async storeVerified(blob: BlobInfo, ref: ChunkRef, data: Buffer): Promise<void> {
    checkRef(blob, ref);
    if (data.length !== ref.uncompressedSize) throw new Error(`chunk ${ref.ciIndex} of blob ${blob.blobId}: ${data.length} bytes for a chunk of ${ref.uncompressedSize}`);
    const { map, sink } = await this.entry(blob);
    if (!map.isReady(ref.ciIndex)) await keep(sink, ref, data);
  }

  /**
   * Lets go of a blob whose files were removed or replaced on disk since this cache opened them
   * (another process cleaned the directory): the next use opens (or creates) the current ones, so
   * what this cache says is cached is what readers of the directory find.
   */
  async forgetIfReplaced(blob: BlobInfo): Promise<void> {
    const open = this.entries.get(blob.blobId);
    const entry = await open?.catch(() => undefined);
    if (!open || !entry) return;
    const [held, current] = await Promise.all([entry.data.stat(), stat(join(this.dir, blob.blobId + CHUNK_DATA_SUFFIX)).catch(() => undefined)]);
    if (current && current.ino === held.ino && current.dev === held.dev) return;
    if (this.entries.get(blob.blobId) === open) this.entries.delete(blob.blobId);
    await closeEntry(entry);
  }

  /** Opens the blob's files, made if missing (another process, or a FUSE worker, may open them next). */
  async open(blob: BlobInfo): Promise<void> {
    await this.entry(blob);
  }

  /**
   * Whether chunk `ref` of `blob` is in this cache (opens the blob's files); when it is, its bit is
   * on disk by the time this resolves (another process, or a FUSE worker, may read the map next).
   */
  async isCached(blob: BlobInfo, ref: ChunkRef): Promise<boolean> {
    const { map } = await this.entry(blob);
    if (!map.isReady(ref.ciIndex)) return false;
    await map.flush();
    return true;
  }

  /** Every blob in the cache directory with what it uses. */
  async list(): Promise<BlobUsage[]> {
    const names = await readdir(this.dir);
    const ids = names.filter((n) => n.endsWith(CHUNK_DATA_SUFFIX)).map((n) => n.slice(0, -CHUNK_DATA_SUFFIX.length)).filter((id) => isBlobId(id));
    const out: BlobUsage[] = [];
    for (const blobId of ids.sort()) {
      const usage = await this.usageOf(blobId);
      if (usage) out.push(usage);
    }
    return out;
  }

  /** Total bytes on disk. */
  async totalBytes(): Promise<number> {
    return (await this.list()).reduce((sum, b) => sum + b.diskBytes, 0);
  }

  private async usageOf(blobId: string): Promise<BlobUsage | undefined> {
    let dataStat;
    try {
      dataStat = await stat(join(this.dir, blobId + CHUNK_DATA_SUFFIX));
    } catch {
      return undefined; // removed meanwhile
    }
    let mapBytes = 0;
    let readyChunks = 0;
    let totalChunks = 0;
    let exact = false;
    const open = this.entries.get(blobId);
    const entry = open ? await open.catch(() => undefined) : undefined;
    try {
      const file = await readFile(chunkMapPath(this.dir, blobId));
      mapBytes = file.length;
      const info = inspectChunkMapFile(file);
      if (info) ({ readyChunks, slots: totalChunks } = info);
    } catch {
      // no map: nothing is ready
    }
    if (entry) {
      readyChunks = entry.map.readyCount;
      totalChunks = entry.blob.chunkCount;
      exact = true;
    }
    return {
      blobId,
      dataSize: dataStat.size,
      diskBytes: dataStat.blocks * 512 + mapBytes,
      readyChunks,
      totalChunks,
      exact,
      lastAccess: Math.max(this.lastAccess.get(blobId) ?? 0, dataStat.mtimeMs),
      busy: (this.busy.get(blobId) ?? 0) > 0,
    };
  }

  /**
   * Removes least recently used blobs until the cache uses at most `maxBytes`; blobs being read are
   * kept (so the result may stay above the limit).
   */
  async prune(maxBytes: number): Promise<PruneResult> {
    const blobs = (await this.list()).sort((a, b) => a.lastAccess - b.lastAccess || a.blobId.localeCompare(b.blobId));
    let total = blobs.reduce((sum, b) => sum + b.diskBytes, 0);
    const removed: string[] = [];
    let freedBytes = 0;
    for (const b of blobs) {
      if (total <= maxBytes) break;
      if (!(await this.remove(b.blobId))) continue;
      removed.push(b.blobId);
      freedBytes += b.diskBytes;
      total -= b.diskBytes;
    }
    return { removed, freedBytes, totalBytes: total };
  }

  /** Deletes a blob's cache files; false (and nothing deleted) while reads of it are under way. */
  async remove(blobId: string): Promise<boolean> {
    if (!isBlobId(blobId)) throw new Error(`not a blob id: ${JSON.stringify(blobId)}`);
    if ((this.busy.get(blobId) ?? 0) > 0) return false;
    const opened = this.entries.get(blobId);
    this.entries.delete(blobId);
    this.lastAccess.delete(blobId);
    const work = (async () => {
      await this.removing.get(blobId);
      const entry = opened ? await opened.catch(() => undefined) : undefined;
      if (entry) await closeEntry(entry);
      let found = false;
      for (const path of [join(this.dir, blobId + CHUNK_DATA_SUFFIX), chunkMapPath(this.dir, blobId)]) {
        try {
          await unlink(path);
          found = true;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      return found;
    })();
    const settled = work.then(() => undefined, () => undefined);
    this.removing.set(blobId, settled);
    try {
      return await work;
    } finally {
      if (this.removing.get(blobId) === settled) this.removing.delete(blobId);
    }
  }

  /** Closes every open file (waiting for pending map writes). Reads must have finished. */
  async close(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    const fallbacks = [...this.fallbackMaps.values()];
    this.fallbackMaps.clear();
    await Promise.all(entries.map(async (e) => {
      const entry = await e.catch(() => undefined);
      if (entry) await closeEntry(entry);
    }));
    await Promise.all(fallbacks.map(async (m) => (await m.catch(() => undefined))?.close()));
  }

  private async entry(blob: BlobInfo): Promise<Entry> {
    const entry = await this.openedEntry(blob);
    const conflict = layoutConflict(entry.blob, blob);
    if (conflict) throw new ChunkConflictError(blob.blobId, 0, `the cache holds this blob as another image describes it (${conflict})`);
    return entry;
  }

  private openedEntry(blob: BlobInfo): Promise<Entry> {
    let e = this.entries.get(blob.blobId);
    if (!e) {
      e = this.openEntry(blob);
      this.entries.set(blob.blobId, e);
      e.catch(() => {
        if (this.entries.get(blob.blobId) === e) this.entries.delete(blob.blobId);
      });
    }
    return e;
  }

  private async openEntry(blob: BlobInfo): Promise<Entry> {
    await this.removing.get(blob.blobId);
    if (!isBlobId(blob.blobId)) throw new Error(`not a blob id: ${JSON.stringify(blob.blobId)}`);
    const data = await openDataFile(join(this.dir, blob.blobId + CHUNK_DATA_SUFFIX), chunkMapPath(this.dir, blob.blobId));
    try {
      // only ever grown: another image may claim a smaller size for this blob id, and its
      // readers' files must not lose bytes under them
      if ((await data.stat()).size < blob.uncompressedSize) await data.truncate(blob.uncompressedSize);
    } catch (err) {
      await data.close();
      throw err;
    }
    let map: ChunkMap;
    try {
      map = await ChunkMap.open(this.dir, blob.blobId, blob.chunkCount);
    } catch (err) {
      await data.close();
      throw err;
    }
    const writing = new Set<number>();
    const sink: ChunkSink = {
      isReady: (i) => map.isReady(i),
      write: async (ref, bytes) => {
        // a chunk's bytes are written once: whoever verified them may serve them from the file
        // from then on. `writing` keeps two claims in this process from both passing the check
        if (writing.has(ref.ciIndex)) return;
        writing.add(ref.ciIndex);
        try {
          if (await map.isReadyOnDisk(ref.ciIndex)) return;
          await writeFully(data, bytes, ref.uncompressedOffset);
        } catch (err) {
          writing.delete(ref.ciIndex);
          throw err;
        }
      },
      sync: groupCommit(() => data.datasync()),
      markReady: (i) => map.markReady(i),
    };
    return { blob, data, map, sink, lastTouch: 0 };
  }

  /** A ready chunk's bytes from the data file, if they are what the reader's image says they are. */
  private async readCached(entry: Entry, ref: ChunkRef): Promise<Buffer> {
    const { blob } = entry;
    const bytes = await readExactly(entry.data, ref.uncompressedOffset, ref.uncompressedSize, blob.blobId);
    if (isSpansBlob(blob)) return bytes; // its blob id names all that decides its chunks (rafs/span-blob.ts)
    const [got] = (await digestBatch(blob.digester, [bytes])) as [Buffer];
    if (!got.equals(ref.digest)) throw new ChunkConflictError(blob.blobId, ref.ciIndex, 'the cached bytes do not match this image\'s chunk digest (another image described this chunk differently)');
    return bytes;
  }

  /** Refreshes the data file's mtime now and then, so LRU order survives a restart. */
  private async touch(entry: Entry): Promise<void> {
    const now = Date.now();
    if (now - entry.lastTouch < TOUCH_INTERVAL_MS) return;
    entry.lastTouch = now;
    const t = new Date(now);
    await entry.data.utimes(t, t).catch(() => undefined);
  }

  /** The chunk from the fallback directory, verified and copied into this cache; undefined if it is not there or not valid. */
  private async readFallback(entry: Entry, ref: ChunkRef): Promise<Buffer | undefined> {
    const dir = this.options.fallbackDir;
    if (!dir) return undefined;
    const { blob } = entry;
    let maps = this.fallbackMaps.get(blob.blobId);
    if (!maps) {
      maps = ChunkMap.open(dir, blob.blobId, blob.chunkCount, { readOnly: true });
      this.fallbackMaps.set(blob.blobId, maps);
    }
    const map = await maps.catch(() => undefined);
    if (!map?.isReady(ref.ciIndex)) return undefined;
    let data: Buffer;
    try {
      const fh = await open(join(dir, blob.blobId + CHUNK_DATA_SUFFIX), 'r');
      try {
        if ((await fh.stat()).size !== blob.uncompressedSize) return undefined;
        data = await readExactly(fh, ref.uncompressedOffset, ref.uncompressedSize, blob.blobId);
      } finally {
        await fh.close();
      }
    } catch {
      return undefined;
    }
    if (!isSpansBlob(blob) && !digest(blob.digester, data).equals(ref.digest)) return undefined;
    await keep(entry.sink, ref, data);
    return data;
  }
}

/** Verified chunk bytes into the cache files: written, made durable, then marked ready (never ready before its bytes are on disk). */
async function keep(sink: ChunkSink, ref: ChunkRef, data: Buffer): Promise<void> {
  await sink.write(ref, data);
  await sink.sync();
  await sink.markReady(ref.ciIndex);
}

function checkRef(blob: BlobInfo, ref: ChunkRef): void {
  if (!Number.isInteger(ref.ciIndex) || ref.ciIndex < 0 || ref.ciIndex >= blob.chunkCount) {
    throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `index out of range (the blob has ${blob.chunkCount} chunks)`);
  }
  if (ref.uncompressedOffset < 0 || ref.uncompressedSize < 0 || ref.uncompressedOffset + ref.uncompressedSize > blob.uncompressedSize) {
    throw new ChunkIntegrityError(blob.blobId, ref.ciIndex, `uncompressed range ${ref.uncompressedOffset}+${ref.uncompressedSize} lies beyond the blob's ${blob.uncompressedSize} bytes`);
  }
}

/** What makes two claims about one blob id incompatible in one cache file, if anything. */
function layoutConflict(held: BlobInfo, claimed: BlobInfo): string | undefined {
  if (held === claimed) return undefined;
  for (const key of ['uncompressedSize', 'chunkCount', 'digester'] as const) {
    if (held[key] !== claimed[key]) return `${key} ${String(held[key])}, not ${String(claimed[key])}`;
  }
  return undefined;
}

/**
 * Opens a blob's data file for reading and writing, creating it if needed but never truncating it:
 * a file in use by other readers keeps its bytes. A new data file means an old map (if any)
 * describes nothing, so it goes.
 */
async function openDataFile(dataPath: string, mapPath: string): Promise<FileHandle> {
  try {
    return await open(dataPath, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await unlink(mapPath).catch(() => undefined);
  try {
    return await open(dataPath, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return open(dataPath, 'r+'); // another process made it first
  }
}

async function readExactly(fh: FileHandle, offset: number, length: number, blobId: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) throw new Error(`cache file of blob ${blobId}: short read, ${done} of ${length} bytes at ${offset}`);
    done += bytesRead;
  }
  return buf;
}

async function writeFully(fh: FileHandle, data: Buffer, offset: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
    done += bytesWritten;
  }
}

async function closeEntry(entry: Entry): Promise<void> {
  await entry.map.close().catch(() => undefined);
  await entry.data.close().catch(() => undefined);
}

/**
 * `sync` as a group commit: a call while one runs waits for the next, which starts once that one
 * ends and serves every call made meanwhile (each call is covered by a sync that started after it
 * was made, so after the caller's write). A stream of small chunks costs a few fdatasyncs, not one
 * each.
 */
export function groupCommit(sync: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const start = (): Promise<void> => {
    const p = sync().finally(() => {
      if (running === p) running = undefined;
    });
    running = p;
    return p;
  };
  const followUp = (): Promise<void> => {
    // from here on, a new call needs a sync that starts after it: another follow-up
    next = undefined;
    return start();
  };
  return () => {
    if (!running) return start();
    next ??= running.then(followUp, followUp);
    return next;
  };
}
