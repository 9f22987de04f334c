// Pushes file data into the kernel's page cache (FUSE_NOTIFY_STORE) from a thread of its own. A
// store waits on the lock of each page it fills, and a page being read is locked until its READ is
// answered; that READ may wait for a chunk the main thread fetches, so a store written from the main
// thread could stall the very fetch it waits behind. Here a store waits, and nothing else does.
import { writevSync } from 'node:fs';
import { parentPort, Worker, workerData } from 'node:worker_threads';
import { log } from '../../util/log.js';
import { MAX_WRITE, notifyStore } from './protocol.js';

/** One batch of stores: [nodeid, offset, start in data, length] per store, their bytes in `data`. */
interface StoreBatch {
  stores: number[];
  data: ArrayBuffer;
}

interface PageStoreData {
  fd: number;
  nydusifyPageStore: true;
}

/** What the thread reports: a store the kernel refused for another reason than a forgotten inode. */
interface PageStoreMessage {
  error: string;
}

/** The main thread's side: stores queued in one turn go to the thread as one batch. */
export class PageStore {
  private worker: Worker | undefined;
  private queue: { nodeid: number; offset: number; data: Buffer }[] = [];
  private reported = false;
  private closed = false;

  constructor(private readonly fd: number) {}

  store(nodeid: number, offset: number, data: Buffer): void {
    if (this.closed) return;
    if (this.queue.length === 0) setImmediate(() => this.flush());
    this.queue.push({ nodeid, offset, data });
  }

  private flush(): void {
    const queue = this.queue;
    this.queue = [];
    if (queue.length === 0 || this.closed) return;
    // one transferred buffer: posting each view would copy its whole backing store
    const data = new ArrayBuffer(queue.reduce((n, s) => n + s.data.length, 0));
    const bytes = new Uint8Array(data);
    const stores: number[] = [];
    let at = 0;
    for (const s of queue) {
      bytes.set(s.data, at);
      stores.push(s.nodeid, s.offset, at, s.data.length);
      at += s.data.length;
    }
    this.thread().postMessage({ stores, data } satisfies StoreBatch, [data]);
  }

  private thread(): Worker {
    if (!this.worker) {
      this.worker = new Worker(new URL('./page-store.js', import.meta.url), { workerData: { fd: this.fd, nydusifyPageStore: true } satisfies PageStoreData });
      this.worker.on('message', (m: PageStoreMessage) => {
        if (this.reported) return;
        this.reported = true;
        log.warn('the kernel refused a page store (later ones are not reported)', { error: m.error });
      });
      this.worker.on('error', (err) => log.error('the page store thread failed', { error: err }));
    }
    return this.worker;
  }

  /** Stops the thread (before the descriptor is closed: a later store could land on a reused number). */
  async close(): Promise<void> {
    this.closed = true;
    this.queue = [];
    await this.worker?.terminate();
    this.worker = undefined;
  }
}

/**
 * Pauses before the kernel is asked again for stores it refused with ENOENT. The inode of a reply
 * just written is made by the task that asked (when it next runs), not by the write, so a store
 * right behind a LOOKUP reply can come too early; one for an inode the kernel forgot never lands.
 */
const ENOENT_RETRY_MS = [1, 2, 4, 8, 16];
const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes one store; 'retry' when the kernel does not know the inode (yet). */
function storeOne(fd: number, nodeid: number, offset: number, piece: Buffer): 'done' | 'retry' | 'gone' {
  try {
    writevSync(fd, notifyStore(nodeid, offset, piece));
    return 'done';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'ENOENT') return 'retry';
    // ENODEV: unmounted, nothing more to store
    if (code === 'ENODEV') return 'gone';
    parentPort?.postMessage({ error: (err as Error).message } satisfies PageStoreMessage);
    return 'done';
  }
}

function storeBatch(fd: number, batch: StoreBatch): void {
  const { stores, data } = batch;
  let pending: [number, number, Buffer][] = [];
  for (let i = 0; i + 3 < stores.length; i += 4) {
    const [nodeid, offset, start, length] = stores.slice(i, i + 4) as [number, number, number, number];
    for (let done = 0; done < length; done += MAX_WRITE) pending.push([nodeid, offset + done, Buffer.from(data, start + done, Math.min(MAX_WRITE, length - done))]);
  }
  for (const wait of [0, ...ENOENT_RETRY_MS]) {
    if (pending.length === 0) return;
    if (wait > 0) Atomics.wait(pause, 0, 0, wait);
    const refused: typeof pending = [];
    for (const store of pending) {
      const outcome = storeOne(fd, ...store);
      if (outcome === 'gone') return;
      if (outcome === 'retry') refused.push(store);
    }
    pending = refused;
  }
}

if (parentPort && workerData && (workerData as Partial<PageStoreData>).nydusifyPageStore) {
  const { fd } = workerData as PageStoreData;
  parentPort.on('message', (batch: StoreBatch) => storeBatch(fd, batch));
}
