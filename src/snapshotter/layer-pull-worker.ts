// One plain layer pulled whole (image/pull-layer.ts), in a thread of its own: as an EROFS image the
// kernel mounts, or as files of a directory written with synchronous calls one after another; the
// snapshotter's thread answers containerd meanwhile. The thread opens its own registry connection
// with the image's access.
import { parentPort, workerData } from 'node:worker_threads';
import { registryClientFor, type RegistryAccess } from '../image/remote.js';
import { type ErofsLayer, pullLayerAsErofs, pullLayerInto } from '../image/pull-layer.js';
import type { AppliedLayer } from '../image/apply-layer.js';
import { openImageStore } from '../registry/open-image-store.js';
import { parseReference } from '../registry/reference.js';
import { isLogLevel, setLogLevel } from '../util/log.js';

/** What the thread is started with; it then waits for its one LayerPullJob. */
export interface LayerPullData {
  nydusifyLayerPull: true;
  logLevel: string;
}

export interface LayerPullJob {
  ref: string;
  access: RegistryAccess;
  layer: { digest: string; size: number };
  diffId: string;
  /** An existing empty directory: the layer's files (as `dir`), or its EROFS image's (as `erofs`). */
  dir: string;
  as: 'dir' | 'erofs';
}

export type LayerPullReply = { applied: AppliedLayer } | { erofs: ErofsLayer } | { error: string };

async function pull(data: LayerPullJob): Promise<LayerPullReply> {
  const client = registryClientFor(data.ref, data.access);
  try {
    const { store } = await openImageStore({ kind: 'registry', ...parseReference(data.ref) }, client);
    if (data.as === 'erofs') return { erofs: await pullLayerAsErofs(store, data.layer, data.diffId, data.dir) };
    return { applied: await pullLayerInto(store, data.layer, data.diffId, data.dir) };
  } finally {
    await client.close();
  }
}

if (parentPort && (workerData as Partial<LayerPullData> | undefined)?.nydusifyLayerPull) {
  const { logLevel } = workerData as LayerPullData;
  if (isLogLevel(logLevel)) setLogLevel(logLevel);
  const port = parentPort;
  // started ahead of its job (its modules load meanwhile): one job, then done
  port.once('message', (job: LayerPullJob) => pull(job).then(
    (reply) => port.postMessage(reply),
    (err: Error) => port.postMessage({ error: err.message } satisfies LayerPullReply),
  ));
}
