// The hot region's pages, pushed into the kernel's page cache before anyone faults on them. An
// optimized image's start touches the pages its hot region holds; with no kernel readahead (the
// right setting for such an image: readahead would fetch untouched, cold chunks) each touched page
// costs a FUSE round trip, some 3,500 of them for `node -e 1`. Stored with FUSE_NOTIFY_STORE as the
// region streams in, the same pages are minor faults. The kernel takes a store only for an inode it
// knows (after a LOOKUP or READDIRPLUS entry), so a chunk is pushed when it arrives for the files
// the kernel knows, and when the kernel learns of a file, for the chunks that came before.
import { chunkKey } from '../rafs/chunk.js';
import type { RafsImage } from '../rafs/reader.js';
import { type ChunkRef, S_IFMT, S_IFREG } from '../rafs/tree.js';

/** Where one chunk's bytes are in one hot file. */
interface Place {
  nid: number;
  offset: number;
  length: number;
}

/** Writes `data` into the page cache of the kernel's node `nodeid` at `offset`. */
export type StorePages = (nodeid: number, offset: number, data: Buffer) => void;

/** At most this much decoded hot data is held for files the kernel has not looked up yet. */
export const HOT_PAGES_HELD_MAX = 64 << 20;

export class HotPages {
  /** The places of each hot chunk, by chunkKey. */
  private readonly places = new Map<number, Place[]>();
  /** The hot chunks of each hot file, by nid. */
  private readonly byFile = new Map<number, number[]>();
  /** Decoded hot chunks that arrived, by chunkKey (for files the kernel learns of later). */
  private readonly held = new Map<number, Buffer>();
  private heldBytes = 0;
  /** Node ids of the hot files the kernel knows, by nid. */
  private readonly known = new Map<number, number>();

  /**
   * `hot`: the hot region's chunks. The image's prefetch list names the files a traced start
   * touched; each is mapped through its own chunk list, so what is pushed is always that file's
   * own data at that file's own offsets (a bogus list only wastes a push, never misplaces bytes).
   */
  constructor(rafs: RafsImage, hot: readonly ChunkRef[], private readonly store: StorePages) {
    const hotKeys = new Set(hot.map((r) => chunkKey(r.blobIndex, r.ciIndex)));
    for (const nid of new Set(rafs.prefetchNids)) {
      const inode = rafs.inode(nid);
      if ((inode.mode & S_IFMT) !== S_IFREG) continue;
      const chunkSize = rafs.fileChunkSize(nid);
      const keys: number[] = [];
      rafs.chunks(nid).forEach((ref, i) => {
        const key = chunkKey(ref.blobIndex, ref.ciIndex);
        if (!hotKeys.has(key)) return;
        const offset = i * chunkSize;
        // never past the file's end: a store there would grow the kernel's idea of its size
        const length = Math.min(ref.uncompressedSize, inode.size - offset);
        if (length <= 0) return;
        keys.push(key);
        const list = this.places.get(key) ?? [];
        list.push({ nid, offset, length });
        this.places.set(key, list);
      });
      if (keys.length > 0) this.byFile.set(nid, keys);
    }
  }

  /** The hot files (what the workers report entries of). */
  files(): number[] {
    return [...this.byFile.keys()];
  }

  /** A hot chunk arrived, verified and decoded: pushed to the files the kernel knows, held for the rest. */
  arrived(ref: ChunkRef, bytes: Buffer): void {
    const key = chunkKey(ref.blobIndex, ref.ciIndex);
    const places = this.places.get(key);
    if (!places || bytes.length !== ref.uncompressedSize) return;
    let unknown = false;
    for (const p of places) {
      const nodeid = this.known.get(p.nid);
      if (nodeid === undefined) unknown = true;
      else this.store(nodeid, p.offset, bytes.subarray(0, p.length));
    }
    if (unknown && !this.held.has(key) && this.heldBytes + bytes.length <= HOT_PAGES_HELD_MAX) {
      this.held.set(key, bytes);
      this.heldBytes += bytes.length;
    }
  }

  /** The kernel now knows hot file `nid` as node `nodeid`: the chunks of it that arrived before are pushed. */
  entered(nid: number, nodeid: number): void {
    const keys = this.byFile.get(nid);
    if (!keys || this.known.get(nid) === nodeid) return;
    this.known.set(nid, nodeid);
    for (const key of keys) {
      const bytes = this.held.get(key);
      if (!bytes) continue;
      for (const p of this.places.get(key)!) if (p.nid === nid) this.store(nodeid, p.offset, bytes.subarray(0, p.length));
    }
  }

  /** Lets go of the held chunks (the start they were for is over). */
  drop(): void {
    this.held.clear();
    this.heldBytes = 0;
  }
}
