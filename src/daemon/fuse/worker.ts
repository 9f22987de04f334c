// One FUSE serving thread: opens the images itself, then loops readSync(/dev/fuse) → route →
// writevSync(reply) until the connection goes away (ENODEV after unmount). Blocking calls are right
// here: the thread has nothing else to do, and they never occupy the libuv pool. The thread never
// returns to its event loop, so images mounted or unmounted later arrive on a MessagePort that it
// drains synchronously whenever the session bumps the shared generation counter.
import { readSync, writevSync } from 'node:fs';
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { RafsImage } from '../../rafs/reader.js';
import type { SyncChunkSource } from '../../blobcache/sync-chunks.js';
import { FlatImageMap, imageChunks } from '../../rafs/flat-image.js';
import { FlatFileFs } from '../flat-file-fs.js';
import { RafsFuseFs } from '../fs.js';
import { SyncLazyCacheSource, type FetchRequest, type WantRequest, type WorkerAsk } from '../../blobcache/sync-cache-source.js';
import { SyncBlobDirSource } from '../../blobcache/sync-blob-dir-source.js';
import { DecodedSpill, type SpillFiles } from '../../blobcache/decoded-spill.js';
import { WorkerMetrics } from '../metrics.js';
import { type DaemonMode, FuseRouter, slotBase } from '../router.js';
import { Opcode, OUT_HEADER_SIZE, READ_BUFFER_SIZE } from './protocol.js';
import { TraceRingWriter } from './trace-ring.js';

/** An image a worker serves: from a local blob directory, or lazily from a blob cache directory. */
export interface WorkerImage {
  slot: number;
  name: string;
  /** Where the bootstrap is (for messages); its bytes are shared with every worker in `data`. */
  bootstrap: string;
  data: SharedArrayBuffer;
  blobDir?: string;
  /** With blobDir: the spill files of chunks a random reader comes back to (decoded-spill.ts). */
  spill?: SpillFiles;
  cacheDir?: string;
  /** Serve the flat block image as one file (flat-file-fs.ts) instead of the tree. */
  block?: boolean;
  /** Files (nids) whose entries the session hears of (hot-pages.ts), once each. */
  hotFiles?: number[];
}

export interface WorkerConfig {
  fd: number;
  index: number;
  mode: DaemonMode;
  images: WorkerImage[];
  /** Int32 [0]: generation of the image table; a change means messages wait on `port`. */
  control: SharedArrayBuffer;
  port: MessagePort;
  /** This worker's reply slot for chunk fetches (see lazy-source.ts). */
  fetchSlot: SharedArrayBuffer;
  timeoutMs?: number;
  metrics: SharedArrayBuffer;
  /** Caps the readahead INIT applies (bytes): a mount meant to have none has none from its first open. */
  readaheadLimit?: number;
  /** Where this worker records the reads it serves (trace-ring.ts). */
  trace: SharedArrayBuffer;
}

export type WorkerControl = { type: 'add'; image: WorkerImage } | { type: 'remove'; slot: number };

/** Messages a worker posts to the session. */
export type WorkerMessage =
  | { type: 'init'; minor: number; flags: number; maxPages: number }
  | { type: 'read-error'; slot: number; nid: number; message: string }
  | { type: 'error'; opcode: number; message: string }
  | { type: 'add-failed'; slot: number; message: string }
  /** Reads wait in this worker's trace ring: drain it. */
  | { type: 'trace' }
  /** The kernel was given hot file `nid` (WorkerImage.hotFiles) as node `nodeid`. */
  | { type: 'entry'; slot: number; nid: number; nodeid: number }
  /** File `nid` of the image in `slot` is being started (FMODE_EXEC reads); once per file and worker. */
  | { type: 'exec'; slot: number; nid: number }
  | FetchRequest
  | WantRequest
  | { type: 'exit'; requests: number; reason: string };

/**
 * A full collection every so many requests: this thread never idles in its event loop, where V8
 * would collect, so garbage otherwise piles up to the old generation's limit (tens of MB per thread).
 * With a few MB live, one takes a millisecond or two.
 */
const GC_EVERY = 2048;
const collectGarbage = (globalThis as { gc?: () => void }).gc;

/** Errors of read(2) on /dev/fuse that just mean "try again". */
const RETRY = new Set(['EINTR', 'EAGAIN', 'ENOENT']);

function post(message: WorkerMessage): void {
  parentPort?.postMessage(message);
}

class WorkerImages {
  private readonly sources = new Map<number, SyncChunkSource | undefined>();
  /** Entries of hot files given in the reply being written, posted once it is. */
  private entries: WorkerMessage[] = [];

  constructor(private readonly router: FuseRouter, private readonly config: WorkerConfig, private readonly metrics: WorkerMetrics, private readonly trace: TraceRingWriter) {}

  add(spec: WorkerImage): void {
    const image = RafsImage.open(Buffer.from(spec.data));
    const { slot } = spec;
    let chunks: SyncChunkSource | undefined;
    if (spec.cacheDir !== undefined) {
      const ask = (req: WorkerAsk): void => post({ ...req, slot } as FetchRequest | WantRequest);
      chunks = new SyncLazyCacheSource(spec.cacheDir, image.blobs, this.config.fetchSlot, ask, this.config.timeoutMs, this.metrics);
    } else if (spec.blobDir !== undefined) chunks = new SyncBlobDirSource(spec.blobDir, image.blobs, spec.spill && new DecodedSpill(spec.spill, image.blobs));
    const events = {
      onReadError: (nid: number, err: Error) => {
        this.metrics.readError();
        post({ type: 'read-error', slot, nid, message: err.message });
      },
      onRead: (nid: number, offset: number, length: number, miss: boolean) => this.trace.read(slot, nid, offset, length, miss),
      onEntry: this.entryReporter(slot, spec.hotFiles),
      onExec: this.execReporter(slot),
    };
    const place = this.config.mode === 'dedicated' ? {} : { base: slotBase(slot), ownsRoot: false };
    const fs = spec.block
      ? new FlatFileFs(FlatImageMap.build(image, spec.data.byteLength, imageChunks(image)), Buffer.from(spec.data), chunks, events, { ...place, mtime: image.inode(image.root).mtime })
      : new RafsFuseFs(image, chunks, events, place);
    this.router.add(slot, spec.name, fs);
    this.sources.set(slot, chunks);
  }

  /** Reports each hot file's first entry (the kernel takes page stores for it from then on). */
  private entryReporter(slot: number, hotFiles: number[] | undefined): ((nid: number, nodeid: number) => void) | undefined {
    if (!hotFiles || hotFiles.length === 0) return undefined;
    const unreported = new Set(hotFiles);
    return (nid, nodeid) => {
      if (unreported.delete(nid)) this.entries.push({ type: 'entry', slot, nid, nodeid });
    };
  }

  /** Reports each file a program start reads, once (its start is fetched ahead from the main thread). */
  private execReporter(slot: number): (nid: number) => void {
    const reported = new Set<number>();
    return (nid) => {
      if (reported.has(nid)) return;
      reported.add(nid);
      post({ type: 'exec', slot, nid });
    };
  }

  /** Posts the entries the reply gave the kernel, if it was written (`written`); forgets them either way. */
  settleEntries(written: boolean): void {
    if (written) for (const m of this.entries) post(m);
    this.entries = [];
  }

  remove(slot: number): void {
    this.router.remove(slot);
    this.sources.get(slot)?.close();
    this.sources.delete(slot);
  }

  /** Applies what the session posted since the last look. */
  drain(): void {
    for (let m = receiveMessageOnPort(this.config.port); m; m = receiveMessageOnPort(this.config.port)) {
      const msg = m.message as WorkerControl;
      if (msg.type === 'remove') this.remove(msg.slot);
      else {
        try {
          this.add(msg.image);
        } catch (err) {
          post({ type: 'add-failed', slot: msg.image.slot, message: (err as Error).message });
        }
      }
    }
  }

  recycle(): void {
    for (const s of this.sources.values()) s?.recycle();
  }

  closeAll(): void {
    for (const slot of [...this.sources.keys()]) this.remove(slot);
  }
}

/** Writes a notify message; the kernel may refuse it (the inode is gone: ENOENT), which costs nothing but the message. */
function notify(fd: number, message: Buffer[]): void {
  try {
    writevSync(fd, message);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code !== 'ENOENT') post({ type: 'error', opcode: 0, message: `notify: ${(err as Error).message}` });
  }
}

export function serve(config: WorkerConfig): WorkerMessage {
  let init: WorkerMessage | undefined;
  const metrics = new WorkerMetrics(config.metrics);
  const router = new FuseRouter(config.mode, {
    // reported once the reply is written: the kernel applies INIT (and resets the readahead) then
    onInit: (r) => (init = { type: 'init', minor: r.minor, flags: r.flags, maxPages: r.maxPages }),
    onError: (opcode, err) => post({ type: 'error', opcode, message: err.stack ?? err.message }),
    readaheadLimit: config.readaheadLimit,
  });
  const trace = new TraceRingWriter(config.trace, () => post({ type: 'trace' }));
  const images = new WorkerImages(router, config, metrics, trace);
  for (const spec of config.images) images.add(spec);
  const control = new Int32Array(config.control);
  let generation = Atomics.load(control, 0);
  images.drain();
  const buf = Buffer.allocUnsafe(READ_BUFFER_SIZE);
  let requests = 0;
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(config.fd, buf, 0, buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (RETRY.has(code)) continue;
        // ENODEV: unmounted (or the connection was aborted)
        return { type: 'exit', requests, reason: code === 'ENODEV' ? 'unmounted' : `read: ${(err as Error).message}` };
      }
      requests++;
      if (requests % GC_EVERY === 0) collectGarbage?.();
      const now = Atomics.load(control, 0);
      if (now !== generation) {
        generation = now;
        images.drain();
      }
      const started = performance.now();
      trace.arrived = started;
      const reply = router.handle(buf.subarray(0, n));
      if (!reply) continue;
      const opcode = buf.readUInt32LE(4);
      const failed = reply[0]!.readInt32LE(4) !== 0;
      // the out header's length covers the header and the data
      if (opcode === Opcode.READ && !failed) metrics.readBytes(reply[0]!.readUInt32LE(0) - OUT_HEADER_SIZE);
      metrics.request(opcode, (performance.now() - started) / 1000, failed);
      try {
        writevSync(config.fd, reply);
        images.settleEntries(true);
        images.recycle();
        for (const n of router.takeNotifications()) notify(config.fd, n);
        if (init) {
          post(init);
          init = undefined;
        }
      } catch (err) {
        images.settleEntries(false);
        const code = (err as NodeJS.ErrnoException).code ?? '';
        // ENOENT: the request was interrupted and is gone; anything else but ENODEV: log and go on
        if (code === 'ENODEV') return { type: 'exit', requests, reason: 'unmounted' };
        if (code !== 'ENOENT') post({ type: 'error', opcode, message: `reply: ${(err as Error).message}` });
      }
    }
  } finally {
    images.closeAll();
  }
}

const role = (workerData as { nydusifyFuseWorker?: true | 'standby' } | null)?.nydusifyFuseWorker;
// a standby worker (prestartWorkers) says it has loaded, then is sent its config when a session takes it
if (parentPort && role === 'standby') {
  parentPort.once('message', (config: WorkerConfig) => post(serve(config)));
  parentPort.postMessage('standby');
}
else if (parentPort && role === true) post(serve(workerData as WorkerConfig));
