// A realistic access trace made by hand: a Python web app starting from a lazily mounted image.
// The interpreter and its libraries are paged in by scattered 4–128 KiB reads, stdlib modules are
// read whole, the app's data file sequentially (which starts readahead), while a prefetch of
// /usr/lib/python3.11 and /usr/lib/x86_64-linux-gnu runs in the background and brings in files
// nobody reads. The fetcher's rules are simulated so the trace holds together: a read misses when
// a chunk it needs is not there yet (and then waits for it), each chunk is fetched once, and a
// prefetch skips what a read already fetched. Deterministic (a seeded generator).
import type { AccessTrace, FetchKind, TraceFetch, TraceFile, TraceRead } from '../../src/trace/access-trace.js';
import { seededRandom } from './seeded-random.js';

const CHUNK = 1 << 20;
const MAX_READ = 128 << 10;
const PAGE = 4096;

class TraceBuilder {
  readonly files: TraceFile[] = [];
  readonly reads: TraceRead[] = [];
  readonly fetches: TraceFetch[] = [];
  clock = 0;
  private readonly index = new Map<string, number>();
  private readonly ratio: number[] = [];
  /** `file:chunk` → [asked for at, there at] */
  private readonly fetched = new Map<string, [number, number]>();
  private readonly chunkIds = new Map<string, number>();
  private readonly prefetchQueue: Array<[file: number, chunk: number]> = [];
  private prefetchFree = 0;
  private readonly lastEnd = new Map<number, number>();

  constructor(readonly random: () => number) {}

  file(path: string, size: number, ratio: number): number {
    const known = this.index.get(path);
    if (known !== undefined) return known;
    this.files.push({ path, size });
    this.ratio.push(ratio);
    this.index.set(path, this.files.length - 1);
    return this.files.length - 1;
  }

  prefetch(file: number, startAt: number): void {
    this.prefetchFree = Math.max(this.prefetchFree, startAt);
    const chunks = Math.ceil(this.files[file]!.size / CHUNK);
    for (let c = 0; c < chunks; c++) this.prefetchQueue.push([file, c]);
  }

  /** Fetches a chunk unless it was; returns when its bytes are there. */
  private fetch(file: number, chunk: number, t: number, kind: FetchKind): number {
    const key = `${file}:${chunk}`;
    const known = this.fetched.get(key);
    if (known) return known[1];
    const size = Math.min(CHUNK, this.files[file]!.size - chunk * CHUNK);
    const bytes = Math.max(64, Math.round(size * this.ratio[file]! * (0.9 + 0.2 * this.random())));
    // a Range request's round trip plus the bytes at about 40 MB/s
    const ms = Math.round((9 + bytes / 40_000 + 6 * this.random()) * 100) / 100;
    if (!this.chunkIds.has(key)) this.chunkIds.set(key, this.chunkIds.size);
    this.fetches.push({ t, ms, blob: 0, chunk: this.chunkIds.get(key)!, bytes, size, file, offset: chunk * CHUNK, kind });
    this.fetched.set(key, [t, t + ms]);
    return t + ms;
  }

  /** Runs the background prefetch up to time t: one chunk at a time, skipping what is fetched. */
  private prefetchUntil(t: number): void {
    while (this.prefetchQueue.length > 0 && this.prefetchFree <= t) {
      const [file, chunk] = this.prefetchQueue.shift()!;
      if (this.fetched.has(`${file}:${chunk}`)) continue;
      this.prefetchFree = this.fetch(file, chunk, this.prefetchFree, 'prefetch');
    }
  }

  /** One read at the current clock; a miss fetches (or waits for) its chunks and moves the clock past them. */
  read(file: number, offset: number, length: number): void {
    const size = this.files[file]!.size;
    length = Math.min(length, size - offset);
    if (length <= 0) return;
    const t = Math.round(this.clock * 100) / 100;
    this.prefetchUntil(t);
    let ready = t;
    for (let c = Math.floor(offset / CHUNK); c <= Math.floor((offset + length - 1) / CHUNK); c++) ready = Math.max(ready, this.fetch(file, c, t, 'demand'));
    const miss = ready > t;
    if (miss && this.lastEnd.get(file) === offset) {
      // a sequential reader that missed: readahead brings the file's next two chunks
      const next = Math.floor((offset + length - 1) / CHUNK) + 1;
      for (let c = next; c < next + 2 && c * CHUNK < size; c++) this.fetch(file, c, t, 'readahead');
    }
    this.lastEnd.set(file, offset + length);
    this.reads.push({ t, file, offset, length, miss });
    this.clock = ready + 0.05 + 0.4 * this.random();
  }

  /** A file read whole, front to back, as an import or open() does. */
  readWhole(file: number): void {
    for (let o = 0; o < this.files[file]!.size; o += MAX_READ) this.read(file, o, MAX_READ);
  }

  /** Page faults over a mapped library: clustered reads of 16–128 KiB, page aligned. */
  pageIn(file: number, faults: number): void {
    const size = this.files[file]!.size;
    this.read(file, 0, PAGE);
    let at = 0;
    for (let i = 0; i < faults; i++) {
      at = this.random() < 0.3 ? Math.floor(this.random() * size) : at + Math.floor(this.random() * 256 << 10);
      at = Math.min(Math.floor(at / PAGE) * PAGE, Math.max(0, size - PAGE));
      this.read(file, at, (4 + Math.floor(this.random() * 29)) * PAGE);
    }
  }

  trace(): AccessTrace {
    this.prefetchUntil(Number.POSITIVE_INFINITY);
    const end = Math.max(this.clock, ...this.fetches.map((f) => f.t + f.ms));
    return {
      format: 'nydusify-ts access trace',
      version: 1,
      image: '127.0.0.1:5000/python-app:nydus',
      bootstrap: '3f'.repeat(32),
      started: '2026-12-06T20:00:00.000Z',
      duration: Math.ceil(end + 250),
      blobs: [{ id: 'c4'.repeat(32), compressedSize: 48 << 20, chunkSize: CHUNK }],
      files: this.files,
      reads: this.reads,
      fetches: this.fetches,
      truncated: false,
    };
  }
}

const STDLIB = ['os', 'site', 'codecs', 'io', 'abc', 'stat', 'posixpath', 'genericpath', '_collections_abc', '_sitebuiltins',
  'encodings/__init__', 'encodings/aliases', 'encodings/utf_8', 'types', 'functools', 'collections/__init__', 'keyword', 'operator',
  'reprlib', 'enum', 're/__init__', 're/_compiler', 're/_parser', 're/_constants', 'copyreg', 'json/__init__', 'json/decoder',
  'json/scanner', 'json/encoder', 'socket', 'selectors', 'threading', 'datetime', 'http/__init__', 'http/server', 'email/parser',
  'email/feedparser', 'logging/__init__', 'traceback', 'linecache', 'tokenize', 'weakref'];

export function sampleTrace(): AccessTrace {
  const b = new TraceBuilder(seededRandom(15));
  const python = b.file('/usr/bin/python3.11', 6_831_400, 0.41);
  const libpython = b.file('/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0', 7_503_224, 0.37);
  const ldCache = b.file('/etc/ld.so.cache', 21_532, 0.3);
  const libc = b.file('/usr/lib/x86_64-linux-gnu/libc.so.6', 1_922_136, 0.46);
  const libm = b.file('/usr/lib/x86_64-linux-gnu/libm.so.6', 907_784, 0.44);
  const libz = b.file('/usr/lib/x86_64-linux-gnu/libz.so.1.2.13', 121_280, 0.52);
  const libexpat = b.file('/usr/lib/x86_64-linux-gnu/libexpat.so.1.8.10', 198_664, 0.48);
  // the background prefetch of two directories: the modules below, and big files nobody imports
  const unread = [
    b.file('/usr/lib/x86_64-linux-gnu/libcrypto.so.3', 4_709_448, 0.43),
    b.file('/usr/lib/python3.11/pydoc_data/topics.py', 725_916, 0.28),
    b.file('/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6', 1_507_592, 0.45),
    b.file('/usr/lib/python3.11/lib2to3/Grammar3.11.pickle', 15_313, 0.5),
    b.file('/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30', 2_190_440, 0.39),
  ];
  const modules = STDLIB.map((m, i) => b.file(`/usr/lib/python3.11/__pycache__/${m.replace('/', '.')}.cpython-311.pyc`, 3_000 + ((i * 7919) % 48_000), 0.55));
  b.clock = 3;
  for (const f of [libc, ...unread.slice(0, 2), libm, ...unread.slice(2)]) b.prefetch(f, 3);
  for (const f of modules.slice(20)) b.prefetch(f, 3);

  b.clock = 40;
  b.pageIn(python, 24);
  b.readWhole(ldCache);
  b.pageIn(libpython, 48);
  b.pageIn(libc, 14);
  b.pageIn(libm, 6);
  b.pageIn(libz, 2);
  b.pageIn(libexpat, 3);
  for (const m of modules.slice(0, 24)) b.readWhole(m);
  b.pageIn(python, 10);
  const app = b.file('/app/server.py', 18_204, 0.32);
  b.readWhole(app);
  for (const m of modules.slice(24)) b.readWhole(m);
  b.pageIn(libpython, 30);
  // the app loads its data set front to back, 128 KiB at a time
  const data = b.file('/app/data/catalog.json', 3_276_800, 0.22);
  b.readWhole(data);
  b.clock += 300;
  // the first requests: a few modules again (hits), more of the interpreter
  for (const m of modules.slice(25, 35)) b.read(m, 0, 4096);
  b.pageIn(libpython, 20);
  b.pageIn(python, 8);
  return b.trace();
}
