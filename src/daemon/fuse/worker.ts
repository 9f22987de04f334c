// One FUSE serving thread: opens the image itself, then loops readSync(/dev/fuse) → handle →
// writevSync(reply) until the connection goes away (ENODEV after unmount). Blocking calls are right
// here: the thread has nothing else to do, and they never occupy the libuv pool.
import { readFileSync, readSync, writevSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { RafsImage } from '../../rafs/reader.js';
import { RafsFuseFs, SyncBlobDirSource, type SyncChunkSource } from '../fs.js';
import { SyncLazyCacheSource, type FetchRequest } from '../lazy-source.js';
import { READ_BUFFER_SIZE } from './protocol.js';

export interface WorkerConfig {
  fd: number;
  bootstrap: string;
  blobDir?: string;
  /** Lazy loading: chunks from this blob cache directory, misses fetched by the main thread. */
  lazy?: { cacheDir: string; slot: SharedArrayBuffer; timeoutMs?: number };
  index: number;
}

/** Messages a worker posts to the session. */
export type WorkerMessage =
  | { type: 'init'; minor: number; flags: number; maxPages: number }
  | { type: 'read-error'; nid: number; message: string }
  | { type: 'error'; opcode: number; message: string }
  | FetchRequest
  | { type: 'exit'; requests: number; reason: string };

/** Errors of read(2) on /dev/fuse that just mean "try again". */
const RETRY = new Set(['EINTR', 'EAGAIN', 'ENOENT']);

function post(message: WorkerMessage): void {
  parentPort?.postMessage(message);
}

export function serve(config: WorkerConfig): WorkerMessage {
  const image = RafsImage.open(readFileSync(config.bootstrap));
  let init: WorkerMessage | undefined;
  let chunks: SyncChunkSource | undefined;
  if (config.lazy) chunks = new SyncLazyCacheSource(config.lazy.cacheDir, image.blobs, config.lazy.slot, post, config.lazy.timeoutMs);
  else if (config.blobDir !== undefined) chunks = new SyncBlobDirSource(config.blobDir, image.blobs);
  const fs = new RafsFuseFs(image, chunks, {
    // reported once the reply is written: the kernel applies INIT (and resets the readahead) then
    onInit: (r) => (init = { type: 'init', minor: r.minor, flags: r.flags, maxPages: r.maxPages }),
    onReadError: (nid, err) => post({ type: 'read-error', nid, message: err.message }),
    onError: (opcode, err) => post({ type: 'error', opcode, message: err.stack ?? err.message }),
  });
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
      const reply = fs.handle(buf.subarray(0, n));
      if (!reply) continue;
      try {
        writevSync(config.fd, reply);
        if (init) {
          post(init);
          init = undefined;
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        // ENOENT: the request was interrupted and is gone; anything else but ENODEV: log and go on
        if (code === 'ENODEV') return { type: 'exit', requests, reason: 'unmounted' };
        if (code !== 'ENOENT') post({ type: 'error', opcode: n >= 8 ? buf.readUInt32LE(4) : 0, message: `reply: ${(err as Error).message}` });
      }
    }
  } finally {
    chunks?.close();
  }
}

if (parentPort && workerData && (workerData as { nydusifyFuseWorker?: boolean }).nydusifyFuseWorker) {
  post(serve(workerData as WorkerConfig));
}
