// Plain OCI images pulled whole by the snapshotter, all their layers at once. containerd's own pull
// downloads a few layers at a time and unpacks each only once it is in; here, the first Prepare of
// an image's layer (its labels name the image and the layer) starts every layer the node lacks,
// LAYER_PULLS at a time, bottom first, each streamed from the registry, decompressed and written as
// it comes (layer-pull-worker.ts, a thread per layer) into a directory of its own. containerd then
// asks for the layers one by one, and each is committed as soon as its own pull is done.
//
// What is committed is checked against the image: the blob against its digest and size, its tar
// against the config's diff_id, and the snapshot containerd names (the target label) against the
// chain ID those diff_ids give for its place in the image, so no label can put a layer's content
// under another layer's name.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { AppliedLayer } from '../image/apply-layer.js';
import { registryClientFor, type RegistryAccess } from '../image/remote.js';
import { type ImageStore, MAX_CONFIG_BYTES, readBlob, resolveImage } from '../registry/image-store.js';
import type { RegistryClient } from '../registry/client.js';
import { MediaType, type ImageManifest } from '../registry/media-types.js';
import { openImageStore } from '../registry/open-image-store.js';
import { parseReference } from '../registry/reference.js';
import { forEachLimited } from '../util/concurrency.js';
import { getLogLevel, log } from '../util/log.js';
import type { LayerSource, RemoteLayer } from './labels.js';
import type { BlobMessage, LayerPullData, LayerPullJob, LayerPullReply } from './layer-pull-worker.js';

/** Layers of one image pulled at once. */
const LAYER_PULLS = 3;
/** A layer pull thread started ahead of need and not taken by then is stopped. */
const SPARE_THREAD_MS = 30_000;
/** A pulled image nobody asked about for this long lets go of the layers containerd never took. */
const IDLE_MS = 10 * 60_000;
const PLAIN_LAYER_TYPES: ReadonlySet<string> = new Set([MediaType.ociLayer, MediaType.ociLayerGzip, MediaType.ociLayerZstd, MediaType.dockerLayerGzip]);
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * A layer pulled whole into `dir` (rename it to make it a snapshot's): its tree in `fs`, or, as an
 * EROFS image, the image's files (named relative to `dir`) for the kernel to mount at `fs`.
 */
export interface PulledLayer {
  dir: string;
  applied?: AppliedLayer;
  erofs?: ErofsFiles;
}

/** An EROFS layer's bootstrap and blob device (none for a layer without file data), relative to its snapshot directory. */
export interface ErofsFiles {
  bootstrap: string;
  blob?: string;
  /** Directories the layer holds that no entry of it describes (made 0755 root:root). */
  implicitDirs: string[][];
}

/** An image that is not wholly plain layers (or whose config does not say their diff_ids): containerd pulls it. */
export class NotPlainImageError extends Error {}

interface ImageLayer {
  digest: string;
  size: number;
  diffId: string;
  /** The chain ID of the image's layers up to this one: the snapshot containerd names for it. */
  chainId: string;
}

interface OpenedImage {
  client: RegistryClient;
  store: ImageStore;
  layers: ImageLayer[];
  /** What the image's pulls have downloaded so far (the pace, the progress lines). */
  progress: PullProgress;
}

interface PullingImage {
  /** Its registry connection (kept while the image is pulled) and layers. */
  opened: Promise<OpenedImage>;
  pulls: Map<string, Promise<PulledLayer>>;
  /** The pulls of all its layers have been started (once, by the first layer asked about). */
  started: boolean;
  /** Pulled layers containerd has not taken yet (their directories are ours to remove). */
  untaken: Set<string>;
  idle?: NodeJS.Timeout;
}

export interface PullLimits {
  /** Bytes per second one image's layers are downloaded at, together (0 or none: no limit). */
  bandwidth?: number;
}

/** How often an image being pulled logs how far it is. */
const PROGRESS_MS = 5_000;

/**
 * An image's download, paced to `bandwidth` (bytes per second; 0: not paced) and reported every
 * PROGRESS_MS: `took(n)` counts n bytes in and says how long to wait before reading more.
 */
export class PullProgress {
  private readonly started = performance.now();
  private bytes = 0;
  private lastReport = this.started;

  constructor(private readonly ref: string, private readonly total: number, private readonly bandwidth = 0) {}

  took(n: number): number {
    this.bytes += n;
    const now = performance.now();
    if (now - this.lastReport >= PROGRESS_MS) {
      this.lastReport = now;
      log.info('pulling', { ref: this.ref, mb: Math.round(this.bytes / 1e6), ofMb: Math.round(this.total / 1e6), mbPerSecond: Number((this.bytes / 1e3 / (now - this.started)).toFixed(1)) });
    }
    return this.bandwidth > 0 ? Math.max(0, (this.bytes / this.bandwidth) * 1000 - (now - this.started)) : 0;
  }
}

/** Bytes of a blob sent to a layer thread and not yet taken by it, past which the blob is held back. */
const IN_FLIGHT_MAX = 8 << 20;

/**
 * Runs `job` in `worker`, sending it the blob's bytes (the blob's stream checks its digest: a
 * mismatch reaches the thread as the stream's error); resolves with how the layer went.
 */
function streamTo(worker: Worker, job: LayerPullJob, blob: Readable, progress: PullProgress): Promise<Exclude<LayerPullReply, { took: number }>> {
  return new Promise((resolve, reject) => {
    let inFlight = 0;
    let pacing = false;
    const send = (m: BlobMessage): void => worker.postMessage(m);
    const resumeIfDue = (): void => {
      if (!pacing && inFlight < IN_FLIGHT_MAX && blob.isPaused()) blob.resume();
    };
    worker.on('message', (m: LayerPullReply) => {
      if (!('took' in m)) return resolve(m);
      inFlight -= m.took;
      resumeIfDue();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the layer pull thread exited (${code}) before it was done`)));
    worker.postMessage(job);
    blob.on('data', (bytes: Buffer) => {
      send({ bytes });
      inFlight += bytes.length;
      const wait = progress.took(bytes.length);
      if (wait > 0) {
        pacing = true;
        setTimeout(() => {
          pacing = false;
          resumeIfDue();
        }, wait);
      }
      if (wait > 0 || inFlight >= IN_FLIGHT_MAX) blob.pause();
    });
    blob.once('end', () => send({ end: true }));
    blob.once('error', (err) => send({ error: err.message }));
  }).finally(() => {
    blob.destroy();
    void worker.terminate();
  }) as Promise<Exclude<LayerPullReply, { took: number }>>;
}

function startPullThread(): Worker {
  const worker = new Worker(new URL('./layer-pull-worker.js', import.meta.url), { workerData: { nydusifyLayerPull: true, logLevel: getLogLevel() } satisfies LayerPullData });
  // a failure is its job's (heard there), or nobody's (a spare never taken)
  worker.on('error', () => undefined);
  return worker;
}

export class PlainPulls {
  private readonly images = new Map<string, PullingImage>();
  private readonly dir: string;
  /** Layer pull threads started while an image's manifest is read (loading their modules takes ~0.1 s, more on a busy node). */
  private spares: { worker: Worker; idle: NodeJS.Timeout }[] = [];

  /**
   * `root`: the snapshotter's (pulls go to ROOT/pulls, on the snapshots' filesystem); `has`: whether
   * the snapshot of a chain ID exists already (its layer is not pulled again); `erofs`: each layer an
   * EROFS image the kernel mounts (else files written into a directory).
   */
  constructor(root: string, private readonly access: RegistryAccess, private readonly authOf: (layer: LayerSource) => RemoteLayer['auth'], private readonly has: (chainId: string) => boolean, private readonly erofs: boolean, private readonly limits: PullLimits = {}) {
    this.dir = join(root, 'pulls');
  }

  /** Removes the pulls a previous run left behind (never committed). */
  async clearStale(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  /**
   * The layer `remote` names, pulled whole, for the snapshot `target` on `parent`; the first layer
   * asked about starts the pulls of all the image's layers the node lacks. Rejects with
   * NotPlainImageError for an image this does not pull.
   */
  async layer(remote: LayerSource, target: string, parent: string | undefined): Promise<PulledLayer> {
    const image = this.imageOf(remote);
    const { layers } = await image.opened;
    const index = layers.findIndex((l) => l.digest === remote.digest);
    if (index < 0) throw new Error(`${remote.ref} has no layer ${remote.digest}`);
    const layer = layers[index]!;
    if (target !== layer.chainId || parent !== (index === 0 ? undefined : layers[index - 1]!.chainId)) {
      throw new Error(`snapshot ${target} on ${parent ?? 'nothing'} is not layer ${index} of ${remote.ref} (chain ${layer.chainId})`);
    }
    if (!image.started) {
      image.started = true;
      const wanted = layers.filter((l) => l === layer || !this.has(l.chainId));
      void forEachLimited(wanted, LAYER_PULLS, (l) => this.pull(remote, image, l).then(() => undefined, () => undefined));
    }
    const pulled = await this.pull(remote, image, layer);
    image.untaken.delete(pulled.dir);
    return pulled;
  }

  private imageOf(remote: LayerSource): PullingImage {
    let image = this.images.get(remote.ref);
    if (!image) {
      this.startSpares();
      image = { opened: this.open(remote), pulls: new Map(), started: false, untaken: new Set() };
      image.opened.catch(() => this.images.delete(remote.ref));
      this.images.set(remote.ref, image);
    }
    clearTimeout(image.idle);
    const held = image;
    held.idle = setTimeout(() => void this.letGo(remote.ref, held), IDLE_MS);
    held.idle.unref();
    return held;
  }

  /** The image's registry connection, and its layers with their diff_ids and chain IDs, if they are all plain ones. */
  private async open(remote: LayerSource): Promise<OpenedImage> {
    const client = registryClientFor(remote.ref, this.accessOf(remote));
    // the layers' GETs go out together once the config is in
    void client.preconnect(parseReference(remote.ref).host, LAYER_PULLS);
    try {
      const { store, reference } = await openImageStore({ kind: 'registry', ...parseReference(remote.ref) }, client);
      const manifest: ImageManifest = (await resolveImage(store, reference)).manifest.parsed;
      const foreign = manifest.layers.find((l) => !PLAIN_LAYER_TYPES.has(l.mediaType));
      if (foreign) throw new NotPlainImageError(`${remote.ref}: layer ${foreign.digest} is ${foreign.mediaType}, not a plain tar layer`);
      const config = JSON.parse((await readBlob(store, manifest.config, MAX_CONFIG_BYTES)).toString('utf8')) as { rootfs?: { diff_ids?: unknown } };
      const diffIds = config.rootfs?.diff_ids;
      if (!Array.isArray(diffIds) || diffIds.length !== manifest.layers.length || !diffIds.every((d) => typeof d === 'string' && DIGEST.test(d))) {
        throw new NotPlainImageError(`${remote.ref}: its config does not give one sha256 diff_id per layer`);
      }
      let chainId = '';
      const layers = manifest.layers.map((l, i) => {
        const diffId = diffIds[i] as string;
        chainId = i === 0 ? diffId : `sha256:${createHash('sha256').update(`${chainId} ${diffId}`).digest('hex')}`;
        return { digest: l.digest, size: l.size, diffId, chainId };
      });
      return { client, store, layers, progress: new PullProgress(remote.ref, manifest.layers.reduce((n, l) => n + l.size, 0), this.limits.bandwidth) };
    } catch (err) {
      await client.close();
      throw err;
    }
  }

  private pull(remote: LayerSource, image: PullingImage, layer: ImageLayer): Promise<PulledLayer> {
    let pull = image.pulls.get(layer.digest);
    if (!pull) {
      pull = image.opened.then((opened) => this.pullInThread(remote, opened, layer));
      void pull.then((p) => image.untaken.add(p.dir), () => image.pulls.delete(layer.digest));
      image.pulls.set(layer.digest, pull);
    }
    return pull;
  }

  private async pullInThread(remote: LayerSource, { store, progress }: OpenedImage, layer: ImageLayer): Promise<PulledLayer> {
    const dir = join(this.dir, `${layer.digest.slice('sha256:'.length, 'sha256:'.length + 16)}-${randomBytes(4).toString('hex')}`);
    await mkdir(join(dir, 'fs'), { recursive: true, mode: 0o755 });
    const started = performance.now();
    const data: LayerPullJob = {
      layer: { digest: layer.digest, size: layer.size }, diffId: layer.diffId, as: this.erofs ? 'erofs' : 'dir', dir: this.erofs ? dir : join(dir, 'fs'),
    };
    try {
      const reply = await streamTo(this.thread(), data, await store.getBlob(layer.digest), progress);
      if ('error' in reply) throw new Error(reply.error);
      const pulled: PulledLayer = 'erofs' in reply
        ? { dir, erofs: { bootstrap: relative(dir, reply.erofs.bootstrap), ...(reply.erofs.blob ? { blob: relative(dir, reply.erofs.blob) } : {}), implicitDirs: reply.erofs.implicitDirs } }
        : { dir, applied: reply.applied };
      const files = 'erofs' in reply ? reply.erofs.entries : reply.applied.entries;
      log.info('layer pulled', { ref: remote.ref, layer: layer.digest, bytes: layer.size, files, as: data.as, ms: Math.round(performance.now() - started) });
      return pulled;
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Starts layer pull threads (LAYER_PULLS in all) for an image's first layers; one not taken in SPARE_THREAD_MS is stopped. */
  private startSpares(): void {
    while (this.spares.length < LAYER_PULLS) {
      const worker = startPullThread();
      const idle = setTimeout(() => {
        this.spares = this.spares.filter((s) => s.worker !== worker);
        void worker.terminate();
      }, SPARE_THREAD_MS);
      idle.unref();
      this.spares.push({ worker, idle });
    }
  }

  /** A started layer pull thread: a spare (no longer stopped for idling) if one is left. */
  private thread(): Worker {
    const spare = this.spares.shift();
    if (!spare) return startPullThread();
    clearTimeout(spare.idle);
    return spare.worker;
  }

  private accessOf(remote: LayerSource): RegistryAccess {
    const auth = this.authOf(remote);
    return auth ? { ...this.access, auth } : this.access;
  }

  /** Forgets an idle image: the layers it pulled that containerd never took are removed. */
  private async letGo(ref: string, image: PullingImage): Promise<void> {
    if (this.images.get(ref) !== image) return;
    this.images.delete(ref);
    await Promise.allSettled([...image.pulls.values()]);
    for (const dir of image.untaken) await rm(dir, { recursive: true, force: true });
    await image.opened.then(({ client }) => client.close(), () => undefined);
  }
}
