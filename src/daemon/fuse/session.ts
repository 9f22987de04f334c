// A FUSE mount served by worker threads: open /dev/fuse, mount through mount(8) with the device as
// the child's fd 3, start N workers (each with its own read buffer and its own copy of the image;
// standby ones a spare daemon started earlier when there are), raise the bdi readahead once INIT is
// done, push page-cache stores from a thread of their own, and unmount lazily on SIGINT/SIGTERM. Nothing here
// blocks the main thread on anything that touches the mount: umount is spawned asynchronously.
import { closeSync, existsSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { runCommand } from '../../util/command.js';
import { log } from '../../util/log.js';
import { answerFetch, FETCH_SLOT_BYTES, slotWords } from '../../blobcache/sync-cache-source.js';
import { type FuseMetrics, newWorkerMetricsBuffer, sumWorkerMetrics } from '../metrics.js';
import type { DaemonMode } from '../router.js';
import type { FilePlace } from '../trace-recorder.js';
import { opName } from './protocol.js';
import { PageStore } from './page-store.js';
import { newTraceRing, type TraceReadSink, TraceRingReader } from './trace-ring.js';
import type { WorkerConfig, WorkerControl, WorkerImage, WorkerMessage } from './worker.js';

export const FS_NAME = 'nydusify';
export const FS_TYPE = `fuse.${FS_NAME}`;
/** The mount's bdi readahead unless told otherwise: 1 MiB READs, a default chunk each. */
export const DEFAULT_READ_AHEAD_KB = 1024;
const FUSECTL = '/sys/fs/fuse/connections';
/**
 * A worker allocates little (chunk buffers are recycled), so a small young generation costs nothing
 * in speed and keeps ~30 MB per thread off the daemon's RSS.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 4 };
/** Looks for the mount (every 10 ms) to set its readahead. */
const READAHEAD_ATTEMPTS = 200;
/** How long a start waits for INIT and the readahead before it says the mount is there anyway. */
const READAHEAD_WAIT_MS = 2000;
/** How long open files may keep a lazily unmounted connection alive before it is aborted. */
const ABORT_AFTER_MS = 3000;

export interface SessionOptions {
  mountPath: string;
  /** dedicated: one image at the root; shared: images under the root, added and removed live. */
  mode: DaemonMode;
  /** The images served from the start (a dedicated mount: exactly one). */
  images: WorkerImage[];
  threads?: number;
  /**
   * Lazy loading, for images with a `cacheDir`: the workers read chunks from that blob cache
   * directory and ask the main thread for missing ones; `fetch` must bring chunk `ciIndex` of blob
   * `blobIndex` of the image in `slot` into that cache (whose files of every blob must exist before
   * the image is served), or resolve to its verified bytes when the cache could not keep them. A
   * worker waits at most `timeoutMs` (then EIO). `file` is the read that wants it, when a file's.
   */
  fetch?(slot: number, blobIndex: number, ciIndex: number, file?: FilePlace): Promise<Buffer | undefined>;
  /** Where the reads the workers serve are recorded (see drainReads). */
  reads?: TraceReadSink;
  /** The kernel was given hot file `nid` of the image in `slot` as node `nodeid` (WorkerImage.hotFiles). */
  entered?(slot: number, nid: number, nodeid: number): void;
  /** File `nid` of the image in `slot` is being started (a program's execve read it). */
  executed?(slot: number, nid: number): void;
  timeoutMs?: number;
  /** Stop serving on these signals (default SIGINT and SIGTERM; none: []). */
  signals?: NodeJS.Signals[];
  /**
   * Failover: a /dev/fuse descriptor already mounted at mountPath (by mountFuseDevice, in the
   * manager, which keeps a copy so the connection outlives a daemon killed -9). With `takeover`
   * the connection was served before: no INIT comes, and the requests the dead daemon had read
   * but not answered are asked for again (FUSE_NOTIFY_RESEND, Linux 6.9+).
   */
  fd?: number;
  takeover?: boolean;
  /** The kernel's readahead on the mount, KiB (default DEFAULT_READ_AHEAD_KB; 0: each READ is what a reader asked for). */
  readaheadKb?: number;
}

/** Workers started ahead of a session (prestartWorkers): their isolates and modules are ready when it starts. */
const standby: Worker[] = [];

function startWorker(workerData: object, transferList: MessagePort[] = []): Worker {
  // isolates created from now on (the workers) get gc(): see GC_EVERY in worker.ts
  setFlagsFromString('--expose-gc');
  return new Worker(new URL('./worker.js', import.meta.url), { workerData, transferList, resourceLimits: WORKER_LIMITS });
}

/**
 * Starts `count` FUSE workers that wait for their config: the next session of this process takes
 * them instead of starting its own (a spare daemon does this; each worker is an isolate that loads
 * its modules, some 150 ms of a mount's start otherwise). Resolves once every one has loaded.
 */
export async function prestartWorkers(count: number): Promise<void> {
  const loaded: Promise<void>[] = [];
  while (standby.length < count) {
    const thread = startWorker({ nydusifyFuseWorker: 'standby' });
    loaded.push(new Promise((done, fail) => {
      thread.once('message', () => done());
      thread.once('error', fail);
    }));
    standby.push(thread);
  }
  await Promise.all(loaded);
}

/** FUSE_NOTIFY_RESEND: the kernel requeues every request read but not yet answered. */
const NOTIFY_RESEND = 7;

/** Opens /dev/fuse and mounts it at `path` (replacing a stale mount of ours); returns the descriptor. */
export async function mountFuseDevice(path: string): Promise<number> {
  const mountPath = resolve(path);
  for (const stale of mountsAt(mountPath)) {
    log.warn('lazily unmounting a stale mount', { mountPath, source: stale.source });
    await lazyUnmount(mountPath);
  }
  const fd = openSync('/dev/fuse', 'r+');
  const options = `ro,fd=3,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions`;
  // -i: no /sbin/mount.fuse helper (it would treat the source as a command)
  const r = await runCommand('mount', ['-i', '-t', FS_TYPE, '-o', options, FS_NAME, mountPath], { stdio: ['ignore', 'ignore', 'pipe', fd] });
  if (r.code !== 0) {
    closeSync(fd);
    throw new Error(`mount ${mountPath}: ${r.stderr || `exit ${r.code}`}`);
  }
  return fd;
}

/** Reads waiting for the backend right now. */
export interface WaitingReads {
  count: number;
  /** How long the oldest has waited (ms), 0 when none. */
  oldestMs: number;
}

export interface MountInfo {
  mountId: number;
  /** "major:minor", the bdi name of a FUSE mount. */
  dev: string;
  mountPoint: string;
  fsType: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 3) continue;
    out.push({ mountId: Number(fields[0]), dev: fields[2]!, mountPoint: unescape(fields[4]!), fsType: fields[sep + 1]!, source: unescape(fields[sep + 2]!) });
  }
  return out;
}

export function mountsAt(path: string, fsType = FS_TYPE): MountInfo[] {
  const abs = resolve(path);
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint === abs && m.fsType === fsType);
}

/** Lazily unmounts (MNT_DETACH) without waiting on the mount itself: umount -i -l, spawned. */
export async function lazyUnmount(path: string): Promise<void> {
  const r = await runCommand('umount', ['-i', '-l', resolve(path)]);
  if (r.code !== 0) throw new Error(`umount -l ${path}: ${r.stderr || `exit ${r.code}`}`);
}

export class FuseSession {
  readonly mountPath: string;
  private fd = -1;

  /** The /dev/fuse descriptor served (-1 before the start and after the end). */
  get fuseFd(): number {
    return this.fd;
  }
  /** Per worker: its reply slot and the fetch it waits for (lazy loading). */
  /** Each worker's fetch slot: the fetch it waits on (id, the file's inode, since when), if any. */
  private slots: { slot: Int32Array; waiting: number; since: number; nid: number }[] = [];
  private ports: MessagePort[] = [];
  private readonly control = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
  private readonly metrics: SharedArrayBuffer[] = [];
  private readonly traces: TraceRingReader[] = [];
  private pageStore: PageStore | undefined;
  /** The readahead setReadaheadKb asked for, KiB. */
  private readahead: number | undefined;
  private initDone = false;
  private stopping = false;
  private failure: Error | undefined;
  /** The connection's fusectl name (the superblock's dev_t), known once mounted. */
  private connection: string | undefined;
  private exited: Promise<void> | undefined;
  private onReadaheadSet!: () => void;
  private readonly readaheadSet = new Promise<void>((resolve) => (this.onReadaheadSet = resolve));
  private readonly signalHandler = (signal: NodeJS.Signals): void => {
    log.info('signal: unmounting', { signal, mountPath: this.mountPath });
    void this.unmount();
  };

  constructor(private readonly opts: SessionOptions) {
    this.mountPath = resolve(opts.mountPath);
  }

  /** Mounts and starts the workers; resolves once the mount exists. */
  async start(): Promise<void> {
    this.fd = this.opts.fd ?? (await mountFuseDevice(this.mountPath));
    const mounted = mountsAt(this.mountPath).at(-1);
    if (mounted) {
      const [major, minor] = mounted.dev.split(':').map(Number) as [number, number];
      this.connection = String(major * 2 ** 20 + minor);
    }
    const threads = Math.max(1, this.opts.threads ?? 2);
    const exits: Promise<void>[] = [];
    for (let index = 0; index < threads; index++) {
      const fetchSlot = new SharedArrayBuffer(FETCH_SLOT_BYTES);
      this.slots.push({ slot: slotWords(fetchSlot), waiting: 0, since: 0, nid: -1 });
      const metrics = newWorkerMetricsBuffer();
      this.metrics.push(metrics);
      const trace = newTraceRing();
      this.traces.push(new TraceRingReader(trace));
      const { port1, port2 } = new MessageChannel();
      this.ports.push(port1);
      const config: WorkerConfig & { nydusifyFuseWorker: true } = {
        fd: this.fd, index, mode: this.opts.mode, images: this.opts.images, control: this.control, port: port2, fetchSlot,
        timeoutMs: this.opts.timeoutMs, metrics, trace, nydusifyFuseWorker: true,
        readaheadLimit: this.readaheadKb() * 1024,
      };
      const waiting = standby.shift();
      const thread = waiting ?? startWorker(config, [port2]);
      // a standby worker is sent what a new one is started with
      waiting?.postMessage(config, [port2]);
      thread.on('message', (m: WorkerMessage) => this.onMessage(index, m));
      exits.push(new Promise((done) => {
        thread.on('error', (err) => {
          log.error('FUSE worker failed', { worker: index, error: err });
          // a worker that cannot serve (e.g. unreadable image) takes the mount down
          this.failure ??= err;
          void this.unmount();
        });
        thread.on('exit', () => done());
      }));
    }
    // standby workers this session did not need (it has fewer threads) would idle for good
    for (const w of standby.splice(0)) void w.terminate();
    this.exited = Promise.all(exits).then(async () => {
      this.drainReads();
      await this.pageStore?.close();
      if (this.fd >= 0) closeSync(this.fd);
      this.fd = -1;
      for (const port of this.ports) port.close();
    });
    for (const s of this.opts.signals ?? ['SIGINT', 'SIGTERM']) process.on(s, this.signalHandler);
    if (this.opts.takeover) this.resend();
    // a file opened before the readahead is set keeps the kernel's default for good
    else await Promise.race([this.readaheadSet, new Promise((r) => setTimeout(r, READAHEAD_WAIT_MS).unref())]);
    // a dedicated mount started without its image is mounted once it has it (addImage)
    if (this.opts.mode === 'shared' || this.opts.images.length > 0) this.announce();
  }

  private announce(): void {
    log.info('mounted', { mountPath: this.mountPath, threads: this.ports.length, takeover: this.opts.takeover ?? false });
  }

  /** Puts `data` into the page cache of node `nodeid` at `offset` (see page-store.ts); dropped once the session ends. */
  storePages(nodeid: number, offset: number, data: Buffer): void {
    if (this.fd < 0) return;
    this.pageStore ??= new PageStore(this.fd);
    this.pageStore.store(nodeid, offset, data);
  }

  private readaheadKb(): number {
    return this.readahead ?? this.opts.readaheadKb ?? DEFAULT_READ_AHEAD_KB;
  }

  /**
   * Changes the mount's readahead (for a dedicated mount started before its image was known). Call
   * it before anything opens a file: an open file keeps the readahead it was opened with.
   */
  setReadaheadKb(kb: number): void {
    this.readahead = kb;
    if (this.initDone) this.raiseReadahead();
  }

  private onMessage(index: number, m: WorkerMessage): void {
    switch (m.type) {
      case 'init':
        log.debug('FUSE INIT', { minor: m.minor, flags: `0x${m.flags.toString(16)}`, maxPages: m.maxPages });
        this.initDone = true;
        this.raiseReadahead();
        break;
      case 'trace':
        this.drainWorker(index);
        break;
      case 'entry':
        this.opts.entered?.(m.slot, m.nid, m.nodeid);
        break;
      case 'exec':
        this.opts.executed?.(m.slot, m.nid);
        break;
      case 'fetch': {
        // the worker waits now: a good moment to take the reads it served before
        this.drainWorker(index);
        const state = this.slots[index]!;
        state.waiting = m.id;
        state.nid = m.nid;
        state.since = Date.now();
        const fetch = this.opts.fetch;
        const file = m.nid >= 0 ? { nid: m.nid, offset: m.fileOffset } : undefined;
        const work = fetch ? fetch(m.slot, m.blobIndex, m.ciIndex, file) : Promise.reject(new Error('not a lazily loaded mount'));
        work.then((bytes): boolean | Buffer => bytes ?? true, (err: unknown) => {
          log.error('chunk fetch failed', { slot: m.slot, blobIndex: m.blobIndex, ciIndex: m.ciIndex, error: err });
          return false;
        }).then((outcome) => {
          // a worker that gave up waiting has moved on: never answer it late
          if (state.waiting === m.id) {
            state.since = 0;
            answerFetch(state.slot, m.id, outcome);
          }
        });
        break;
      }
      case 'want': {
        // fetched in this turn, so merged into few requests; the read's own asks then share them
        for (const [blobIndex, ciIndex, offset] of m.chunks) void this.opts.fetch?.(m.slot, blobIndex, ciIndex, { nid: m.nid, offset }).catch(() => undefined);
        break;
      }
      case 'read-error':
        log.error('read failed: EIO', { slot: m.slot, nid: m.nid, error: m.message });
        break;
      case 'add-failed':
        log.error('a FUSE worker cannot serve an image', { worker: index, slot: m.slot, error: m.message });
        break;
      case 'error':
        log.error('request failed: EIO', { worker: index, op: opName(m.opcode), error: m.message });
        break;
      case 'exit':
        this.drainWorker(index);
        log.debug('FUSE worker done', { worker: index, requests: m.requests, reason: m.reason });
        break;
    }
  }

  /** Asks the kernel to send again what a previous daemon on this connection left unanswered. */
  private resend(): void {
    const header = Buffer.alloc(16);
    header.writeUInt32LE(16, 0);
    header.writeInt32LE(NOTIFY_RESEND, 4);
    try {
      writeSync(this.fd, header);
      log.info('took over the FUSE connection: unanswered requests resent', { mountPath: this.mountPath });
    } catch (err) {
      // an older kernel: requests the dead daemon had read stay unanswered (their callers hang)
      log.warn('FUSE_NOTIFY_RESEND failed', { error: err });
    }
  }

  /**
   * Starts serving an image under a shared mount, or a dedicated mount's one image when it was
   * started without it (the workers pick it up with their next request).
   */
  addImage(image: WorkerImage): void {
    this.tell({ type: 'add', image });
    if (this.opts.mode === 'dedicated') this.announce();
  }

  /** Stops serving an image of a shared mount: its node ids become ESTALE. */
  removeImage(slot: number): void {
    this.tell({ type: 'remove', slot });
  }

  private tell(message: WorkerControl): void {
    if (this.opts.mode !== 'shared' && (message.type === 'remove' || this.opts.images.length > 0)) throw new Error('a dedicated mount serves the one image it is given');
    for (const port of this.ports) port.postMessage(message);
    // posted first: a worker that sees the new generation finds the message waiting
    const control = new Int32Array(this.control);
    Atomics.add(control, 0, 1);
  }

  /** Hands every read the workers recorded so far to the `reads` sink. */
  drainReads(): void {
    for (let i = 0; i < this.traces.length; i++) this.drainWorker(i);
  }

  private drainWorker(index: number): void {
    if (this.opts.reads) this.traces[index]?.drain(this.opts.reads);
  }

  fuseMetrics(): FuseMetrics {
    return sumWorkerMetrics(this.metrics);
  }

  /** The reads waiting on the backend now: the file's inode (its nid), the fetch's id, since when (ms since the epoch). */
  waitingFetches(): { inode: number; unique: number; sinceMs: number }[] {
    return this.slots.filter((s) => s.since > 0).map((s) => ({ inode: s.nid, unique: s.waiting, sinceMs: s.since }));
  }

  waitingReads(): WaitingReads {
    const now = Date.now();
    const waiting = this.slots.filter((s) => s.since > 0);
    return { count: waiting.length, oldestMs: waiting.reduce((m, s) => Math.max(m, now - s.since), 0) };
  }

  /**
   * The INIT reply can only lower the bdi readahead, so set it afterwards (1 MiB READs by default).
   * INIT may be answered before mount(8) has made the mount visible: look again for a while (the
   * kernel's own 128 KiB would otherwise stay, which for an optimized image fetches cold chunks).
   */
  private raiseReadahead(attempt = 0): void {
    const mount = mountsAt(this.mountPath)[0];
    if (!mount) {
      if (attempt < READAHEAD_ATTEMPTS && !this.stopping) setTimeout(() => this.raiseReadahead(attempt + 1), 10).unref();
      else log.warn('cannot set readahead: the mount did not appear', { mountPath: this.mountPath });
      return;
    }
    try {
      writeFileSync(`/sys/class/bdi/${mount.dev}/read_ahead_kb`, `${this.readaheadKb()}\n`);
    } catch (err) {
      log.warn('cannot raise readahead', { dev: mount.dev, error: err });
    }
    this.onReadaheadSet();
  }

  /** Resolves when every worker has stopped (after an unmount); rejects if a worker failed. */
  async wait(): Promise<void> {
    await this.exited;
    for (const s of this.opts.signals ?? ['SIGINT', 'SIGTERM']) process.off(s, this.signalHandler);
    if (this.failure) throw new Error(`FUSE worker failed: ${this.failure.message}`);
  }

  /** Lazy unmount; the workers then see ENODEV and end. */
  async unmount(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    try {
      if (mountsAt(this.mountPath).length > 0) await lazyUnmount(this.mountPath);
    } catch (err) {
      log.error('unmount failed', { mountPath: this.mountPath, error: err });
    }
    // files still open keep a lazily detached connection alive (and the workers blocked in read):
    // do not wait for them forever, abort the connection, which ends every read with ENODEV
    const timer = setTimeout(() => {
      log.warn('files still open after unmount: aborting the FUSE connection', { mountPath: this.mountPath, connection: this.connection });
      this.abortConnection().catch((err: unknown) => {
        log.error('cannot abort the FUSE connection', { connection: this.connection, error: err });
        process.exit(process.exitCode ?? 1);
      });
    }, ABORT_AFTER_MS);
    timer.unref();
    // regression (demo): a process that lives on after a clean unmount must not abort a connection long gone
    void this.exited?.then(() => clearTimeout(timer), () => clearTimeout(timer));
  }

  /** Writes fusectl's abort file (mounting fusectl for the purpose when it is not). */
  private async abortConnection(): Promise<void> {
    if (this.connection === undefined) throw new Error('connection id unknown');
    let mountedHere = false;
    if (!existsSync(`${FUSECTL}/${this.connection}`)) {
      const r = await runCommand('mount', ['-t', 'fusectl', 'fusectl', FUSECTL]);
      if (r.code !== 0) throw new Error(`mount fusectl: ${r.stderr || `exit ${r.code}`}`);
      mountedHere = true;
    }
    try {
      writeFileSync(`${FUSECTL}/${this.connection}/abort`, '1');
    } finally {
      if (mountedHere) await runCommand('umount', [FUSECTL]);
    }
  }
}
