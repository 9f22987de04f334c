// One plain layer pulled whole (image/pull-layer.ts), in a thread of its own: as an EROFS image the
// kernel mounts, or as files of a directory written with synchronous calls one after another; the
// snapshotter's thread answers containerd meanwhile. The blob's bytes come from the snapshotter's
// thread (its registry connection, the blob's digest checked there) by message, each acknowledged
// once taken, so that thread holds back a blob the layer's writing lags behind: this one loads no
// HTTP client, and starts in a fraction of the time.
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { type ErofsLayer, pullLayerAsErofs, pullLayerInto } from '../image/pull-layer.js';
import type { AppliedLayer } from '../image/apply-layer.js';
import { isLogLevel, setLogLevel } from '../util/log.js';

/** What the thread is started with; it then waits for its one LayerPullJob. */
export interface LayerPullData {
  nydusifyLayerPull: true;
  logLevel: string;
}

export interface LayerPullJob {
  layer: { digest: string; size: number };
  diffId: string;
  /** An existing empty directory: the layer's files (as `dir`), or its EROFS image's (as `erofs`). */
  dir: string;
  as: 'dir' | 'erofs';
}

/** The blob's bytes, then its end (or why it failed: its digest did not match, the connection broke). */
export type BlobMessage = { bytes: Uint8Array } | { end: true } | { error: string };

/** What the thread says: how many bytes it took (as it takes them), then how the layer went. */
export type LayerPullReply = { took: number } | { applied: AppliedLayer } | { erofs: ErofsLayer } | { error: string };

async function pull(port: MessagePort, job: LayerPullJob): Promise<LayerPullReply> {
  const blob = { bytes: receiver(port), layer: job.layer };
  if (job.as === 'erofs') return { erofs: await pullLayerAsErofs(blob, job.diffId, job.dir) };
  return { applied: await pullLayerInto(blob, job.diffId, job.dir) };
}

/**
 * The blob's bytes as messages bring them, each acknowledged (`took`) once handed on. Listening
 * starts at the call, not at the first read: a message with no listener would be lost.
 */
function receiver(port: MessagePort): AsyncGenerator<Uint8Array> {
  const queue: BlobMessage[] = [];
  let wake: (() => void) | undefined;
  port.on('message', (m: BlobMessage) => {
    queue.push(m);
    wake?.();
  });
  return (async function* () {
    for (;;) {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r));
      const m = queue.shift()!;
      if ('error' in m) throw new Error(m.error);
      if ('end' in m) return;
      port.postMessage({ took: m.bytes.length } satisfies LayerPullReply);
      yield m.bytes;
    }
  })();
}

if (parentPort && (workerData as Partial<LayerPullData> | undefined)?.nydusifyLayerPull) {
  const { logLevel } = workerData as LayerPullData;
  if (isLogLevel(logLevel)) setLogLevel(logLevel);
  const port = parentPort;
  // started ahead of its job (its modules load meanwhile): one job, then done
  port.once('message', (job: LayerPullJob) => pull(port, job).then(
    (reply) => port.postMessage(reply),
    (err: Error) => port.postMessage({ error: err.message } satisfies LayerPullReply),
  ));
}
