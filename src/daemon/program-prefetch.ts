// A program's start, fetched ahead (exec-prefetch.ts says what of a program's file a start reads).
// When execve reads a file (the kernel marks its reads FMODE_EXEC; a plain read of the same file is
// not a start), the file's ELF header is read and its start ranges are fetched in the
// background; then its interpreter and libraries are found in the image as the loader would
// find them (the interpreter's path; DT_NEEDED names in DT_RUNPATH/DT_RPATH, then the default
// directories of the program's machine; symlinks followed) and treated the same way, each library
// once, all of them at once rather than one miss after another. Paths and names come from the
// image's own files, so they can only ever name files of that image.
import type { RafsImage } from '../rafs/reader.js';
import { type ChunkRef, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../rafs/tree.js';
import { chunkKey } from '../rafs/chunk.js';
import { log } from '../util/log.js';
import { defaultLibraryDirs, elfDynamic, elfInterpreter, elfStartRanges } from './exec-prefetch.js';

/** Bytes read for an ELF header (and its program headers). */
const HEAD_BYTES = 4096;
/** Longest library name or run path list read from a string table. */
const MAX_STRING = 4096;
/** The span of a string table read at once for all the names a program needs. */
const STRINGS_WINDOW = 64 << 10;
/** Symlinks followed resolving one path (the kernel's limit). */
const MAX_LINKS = 40;

export interface ProgramHooks {
  rafs: RafsImage;
  /** `length` bytes of file `nid` from `offset` (fewer at its end), through the cache. */
  read(nid: number, offset: number, length: number): Promise<Buffer>;
  /** Fetches these chunks in the background. */
  prefetch(refs: ChunkRef[]): void;
  /** Files whose start an optimized image's hot region already brings: not guessed at. */
  traced(nid: number): boolean;
}

export class ProgramPrefetch {
  /** Files looked at already (programs or not): each once. */
  private readonly seen = new Set<number>();

  /**
   * `maxBytes`: most uncompressed bytes of one program's start ranges fetched. `minBytes`: a program
   * whose start ranges are smaller is left to its faults (its interpreter and libraries are still
   * looked up): a few chunks cost a few round trips, and short-lived programs (a shell script's)
   * would pay bytes for code they never run.
   */
  constructor(private readonly hooks: ProgramHooks, private readonly maxBytes: number, private readonly minBytes = 0) {}

  /** File `nid` is being started: execve (or the program, mapping itself) read it. */
  started(nid: number): void {
    if (this.seen.has(nid)) return;
    this.program(nid).catch((err: Error) => log.debug('a program\'s start could not be fetched ahead', { nid, error: err.message }));
  }

  /**
   * If file `nid` is an ELF program: its interpreter and libraries, then its start ranges. The loader
   * reads the dynamic section and opens the libraries before any of the program's code runs, so
   * those are asked for first, and the program's code right after them, not once they are in: on a
   * link that sends in the order asked, the libraries still come first, and the code follows them
   * without the link idling for their round trips and the next step's (bench/stargz-lazy: each cold
   * start of node ~60 ms sooner; its code asked for only once the libraries were in, it took longer).
   */
  private async program(nid: number): Promise<void> {
    if (this.seen.has(nid)) return;
    this.seen.add(nid);
    if (this.hooks.traced(nid)) return;
    const head = await this.hooks.read(nid, 0, HEAD_BYTES);
    const ranges = elfStartRanges(head, this.hooks.rafs.inode(nid).size);
    if (!ranges) return;
    const interp = elfInterpreter(head);
    const interpNid = interp === undefined ? undefined : this.resolve(interp);
    const needed = [...(interpNid === undefined ? [] : [interpNid]), ...await this.libraries(nid, head)];
    const libraries = Promise.all(needed.map((lib) => this.program(lib)));
    if (ranges.reduce((sum, [start, end]) => sum + end - start, 0) >= this.minBytes) this.hooks.prefetch(this.chunksOf(nid, ranges));
    await libraries;
  }

  /** The libraries the program needs (DT_NEEDED), found as the loader finds them. */
  private async libraries(nid: number, head: Buffer): Promise<number[]> {
    const dynamic = elfDynamic(head);
    if (!dynamic) return [];
    const strings = dynamic.parse(await this.hooks.read(nid, dynamic.offset, dynamic.size));
    const offsets = [...strings.needed, ...strings.runpaths];
    if (offsets.length === 0) return [];
    // the names lie close together in the string table as a rule: one read for all of them then
    const first = Math.min(...offsets);
    const span = Math.max(...offsets) - first + MAX_STRING;
    const window = span <= STRINGS_WINDOW ? await this.hooks.read(nid, first, span) : undefined;
    const text = async (offset: number): Promise<string> => {
      const b = window ? window.subarray(offset - first, offset - first + MAX_STRING) : await this.hooks.read(nid, offset, MAX_STRING);
      const end = b.indexOf(0);
      return b.toString('latin1', 0, end < 0 ? b.length : end);
    };
    const [names, runpaths] = await Promise.all([Promise.all(strings.needed.map(text)), Promise.all(strings.runpaths.map(text))]);
    const dirs = [...runpaths.flatMap((r) => r.split(':')).filter((d) => d.startsWith('/')), ...defaultLibraryDirs(head)];
    return names.flatMap((name) => {
      const candidates = name.includes('/') ? [name] : dirs.map((d) => `${d}/${name}`);
      for (const path of candidates) {
        const lib = this.resolve(path);
        if (lib !== undefined) return [lib];
      }
      return [];
    });
  }

  /** Distinct chunks of file `nid` over `ranges`, up to maxBytes. */
  private chunksOf(nid: number, ranges: [number, number][]): ChunkRef[] {
    const refs = new Map<number, ChunkRef>();
    let bytes = 0;
    for (const [start, end] of ranges) {
      for (const { chunk } of this.hooks.rafs.chunksForRange(nid, start, end - start)) {
        if (bytes >= this.maxBytes) return [...refs.values()];
        const key = chunkKey(chunk.blobIndex, chunk.ciIndex);
        if (refs.has(key)) continue;
        refs.set(key, chunk);
        bytes += chunk.uncompressedSize;
      }
    }
    return [...refs.values()];
  }

  /** The regular file an absolute path names in the image, symlinks followed; undefined if none. */
  private resolve(path: string): number | undefined {
    const { rafs } = this.hooks;
    const todo = path.split('/').filter((c) => c !== '' && c !== '.').reverse();
    const dirs = [rafs.root];
    let links = 0;
    while (todo.length > 0) {
      const name = todo.pop()!;
      if (name === '..') {
        if (dirs.length > 1) dirs.pop();
        continue;
      }
      const nid = rafs.lookup(dirs.at(-1)!, name);
      if (nid === undefined) return undefined;
      const type = rafs.inode(nid).mode & S_IFMT;
      if (type === S_IFLNK) {
        if (++links > MAX_LINKS) return undefined;
        const target = rafs.readlink(nid);
        if (target.startsWith('/')) dirs.splice(1);
        todo.push(...target.split('/').filter((c) => c !== '' && c !== '.').reverse());
      } else if (type === S_IFDIR) dirs.push(nid);
      else if (todo.length > 0) return undefined;
      else return type === S_IFREG ? nid : undefined;
    }
    return undefined;
  }
}
