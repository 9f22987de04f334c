// One plain layer pulled whole into a directory (image/pull-layer.ts), in a thread of its own: the
// layer's files are written with synchronous calls, one after another, and the snapshotter's thread
// answers containerd meanwhile. The thread opens its own registry connection with the image's access.
import { parentPort, workerData } from 'node:worker_threads';
import { registryClientFor, type RegistryAccess } from '../image/remote.js';
import { pullLayerInto } from '../image/pull-layer.js';
import type { AppliedLayer } from '../image/apply-layer.js';
import { openImageStore } from '../registry/open-image-store.js';
import { parseReference } from '../registry/reference.js';
import { isLogLevel, setLogLevel } from '../util/log.js';

export interface LayerPullData {
  nydusifyLayerPull: true;
  logLevel: string;
  ref: string;
  access: RegistryAccess;
  layer: { digest: string; size: number };
  diffId: string;
  /** An existing empty directory. */
  dir: string;
}

export type LayerPullReply = { applied: AppliedLayer } | { error: string };

async function pull(data: LayerPullData): Promise<AppliedLayer> {
  const client = registryClientFor(data.ref, data.access);
  try {
    const { store } = await openImageStore({ kind: 'registry', ...parseReference(data.ref) }, client);
    return await pullLayerInto(store, data.layer, data.diffId, data.dir);
  } finally {
    await client.close();
  }
}

if (parentPort && (workerData as Partial<LayerPullData> | undefined)?.nydusifyLayerPull) {
  const data = workerData as LayerPullData;
  if (isLogLevel(data.logLevel)) setLogLevel(data.logLevel);
  const port = parentPort;
  pull(data).then(
    (applied) => port.postMessage({ applied } satisfies LayerPullReply),
    (err: Error) => port.postMessage({ error: err.message } satisfies LayerPullReply),
  );
}
