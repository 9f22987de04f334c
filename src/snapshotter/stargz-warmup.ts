// While containerd pulls an eStargz image (rpull: one Prepare per layer), the snapshotter reads
// each new layer's TOC and makes its layer model before it commits the layer remotely: a layer that
// cannot be served lazily (its TOC not the one its annotation names, pieces no RAFS chunk grid
// fits, …) is refused then, and containerd pulls it as an ordinary layer instead of a container
// failing to start on it later. Once the models of the chain a container will mount are made,
// they are merged into the chain's bootstrap in the cache directory (blobcache/built-bootstraps.ts): the daemon that mounts
// the image for the container then finds it there (or waits for it on the build lock, which the
// warm-up takes first), instead of reading and merging every TOC while the container waits. The
// TOCs are parsed, and the chains merged, in a worker thread (stargz-models.ts), so this thread
// answers containerd's calls meanwhile.
import type { BuiltBootstraps } from '../blobcache/built-bootstraps.js';
import { registryClientFor, type RegistryAccess } from '../image/remote.js';
import { stargzChain, stargzChainKey } from '../image/stargz-image.js';
import type { RegistryClient } from '../registry/client.js';
import { type ImageStore, resolveImage } from '../registry/image-store.js';
import type { ImageManifest } from '../registry/media-types.js';
import { isNydusBootstrap } from '../registry/nydus-layers.js';
import { isStargzLayer } from '../registry/stargz-layers.js';
import { forEachLimited } from '../util/concurrency.js';
import { openImageStore } from '../registry/open-image-store.js';
import { parseReference } from '../registry/reference.js';
import { log } from '../util/log.js';
import type { RemoteLayer } from './labels.js';
import { BlobTails, FIRST_TAIL, tailLength } from './blob-tails.js';
import { StargzModels } from './stargz-models.js';

/** How long a mount waits for a warm-up to take its build lock. */
const MAX_WAIT_MS = 10_000;
/** An image nobody pulled or mounted for this long lets go of its connection and layer models. */
const IDLE_MS = 60_000;
/** TOCs read at once for one image. */
const TOC_READS = 4;

/** One image being pulled: its registry connection, manifest and the layer models made so far (kept in the worker under `opened`'s image number). */
interface PulledImage {
  client: RegistryClient;
  opened: Promise<{ store: ImageStore; manifest: ImageManifest; image: number }>;
  models: Map<string, Promise<void>>;
  users: number;
  idle?: NodeJS.Timeout;
}

const chainName = (remote: RemoteLayer): string => `${remote.ref}\n${remote.digest}`;

/** The last of the image's eStargz layers from the bottom up (a container's chain tops there). */
function stargzTop(manifest: ImageManifest): string | undefined {
  const end = manifest.layers.findIndex((l) => !isStargzLayer(l));
  return manifest.layers[(end < 0 ? manifest.layers.length : end) - 1]?.digest;
}

export class StargzWarmup {
  private readonly images = new Map<string, PulledImage>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly models = new StargzModels();

  /** `authOf`: the credentials of a layer's image (its pull secret, or the CRI keychain's). */
  constructor(private readonly access: RegistryAccess, private readonly built: BuiltBootstraps, private readonly authOf: (remote: RemoteLayer) => RemoteLayer['auth']) {}

  /** Starts the model worker and runs the chain path there over a made-up image (stargz-rehearsal.ts): the first pull then finds its code compiled. */
  async rehearse(): Promise<void> {
    const started = performance.now();
    try {
      await this.models.rehearse();
      log.info('eStargz chain path rehearsed', { ms: Math.round(performance.now() - started) });
    } catch (err) {
      log.warn('rehearsing the eStargz chain path failed', { error: (err as Error).message });
    }
  }

  /**
   * Resolves once the layer's model is made (kept for its chain); rejects when it cannot be served
   * lazily. The first layer asked about starts the models of all the image's eStargz layers (containerd
   * asks about them one after another, and each TOC would otherwise wait for the one before) and the
   * warm-up of the chain a container will mount, so `onTop` hears of it (and its daemon can start)
   * while the TOCs are still being read.
   */
  async servable(remote: RemoteLayer, onTop: (remote: RemoteLayer) => void): Promise<void> {
    await this.using(remote, async (image) => {
      const { manifest } = await image.opened;
      const layer = manifest.layers.find((l) => l.digest === remote.digest);
      if (!layer) throw new Error(`${remote.ref} has no layer ${remote.digest}`);
      if (image.models.size === 0) {
        void forEachLimited(manifest.layers.filter(isStargzLayer), TOC_READS, (l) => this.model(image, l).then(() => undefined, () => undefined));
        const top = stargzTop(manifest);
        if (top) this.layer({ ...remote, digest: top }, onTop);
      }
      await this.model(image, layer);
    });
  }

  /**
   * An eStargz layer was committed (or the pull of its image began): if it tops the image's run of
   * eStargz layers (the chain a container of the image mounts), `onTop` hears of it and its chain is
   * built; other chains are built when mounted.
   */
  layer(remote: RemoteLayer, onTop: (remote: RemoteLayer) => void): void {
    const name = chainName(remote);
    if (this.chains.has(name)) return;
    let locked!: () => void;
    this.chains.set(name, new Promise<void>((resolve) => (locked = resolve)));
    void this.using(remote, (image) => this.warm(image, remote, locked, onTop))
      .catch((err: Error) => log.warn('eStargz warm-up failed (the daemon builds the bootstrap itself)', { ref: remote.ref, layer: remote.digest, error: err.message }))
      .finally(() => {
        locked();
        this.chains.delete(name);
      });
  }

  /**
   * Resolves once the chain's warm-up (if one runs) holds its build lock or is done (or after
   * MAX_WAIT_MS): a daemon started then waits for the bootstrap rather than building its own.
   */
  async started(remote: RemoteLayer): Promise<void> {
    const started = this.chains.get(chainName(remote));
    if (!started) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([started, new Promise<void>((resolve) => (timer = setTimeout(resolve, MAX_WAIT_MS)))]);
    clearTimeout(timer);
  }

  /** Runs `fn` with the pull state of the layer's image, opened if need be and let go once idle. */
  private async using<T>(remote: RemoteLayer, fn: (image: PulledImage) => Promise<T>): Promise<T> {
    const { ref } = remote;
    const image = this.images.get(ref) ?? this.open(remote);
    clearTimeout(image.idle);
    image.users++;
    try {
      return await fn(image);
    } finally {
      if (--image.users === 0) {
        image.idle = setTimeout(() => {
          this.images.delete(ref);
          void image.opened.then(({ image: n }) => this.models.drop(n), () => undefined);
          void image.client.close();
        }, IDLE_MS);
        image.idle.unref();
      }
    }
  }

  /** The image's registry connection: with its credentials (`authOf`), if it has any. */
  private open(remote: RemoteLayer): PulledImage {
    const { ref } = remote;
    const auth = this.authOf(remote);
    const client = registryClientFor(ref, auth ? { ...this.access, auth } : this.access);
    const parsed = parseReference(ref);
    // the TOC reads go out together once the manifest is in: their connections open beside it
    void client.preconnect(parsed.host, TOC_READS);
    const storeOpened = openImageStore({ kind: 'registry', ...parsed }, client);
    // this layer's tail (footer and TOC, mostly) is read beside the manifest, the others' once it is in
    const tails = new BlobTails(storeOpened.then(({ store }) => store));
    tails.prefetch(remote.digest, FIRST_TAIL);
    const opened = (async () => {
      const { store, reference } = await storeOpened;
      const manifest = (await resolveImage(store, reference)).manifest.parsed;
      for (const l of manifest.layers) if (isStargzLayer(l)) tails.prefetch(l.digest, tailLength(l.size));
      return { store, manifest, image: this.models.open(store.name, tails.read) };
    })();
    opened.catch(() => undefined); // each user awaits (and reports) it
    const image: PulledImage = { client, opened, models: new Map(), users: 0 };
    this.images.set(ref, image);
    return image;
  }

  /** The layer's model, made once for all the image's chains (a failed one is tried again next time). */
  private model(image: PulledImage, layer: ImageManifest['layers'][number]): Promise<void> {
    let model = image.models.get(layer.digest);
    if (!model) {
      model = image.opened.then(({ image: n, manifest }) => this.models.model(n, layer, manifest.layers.indexOf(layer)));
      model.catch(() => image.models.delete(layer.digest));
      image.models.set(layer.digest, model);
    }
    return model;
  }

  /**
   * Builds the chain topped by `remote` into `built` (in the worker, as soon as its layers' models
   * are made: often before containerd has committed them all). The daemon, started by `onTop`
   * meanwhile, waits on the build lock.
   */
  private async warm(image: PulledImage, remote: RemoteLayer, locked: () => void, onTop: (remote: RemoteLayer) => void): Promise<void> {
    const { store, manifest, image: n } = await image.opened;
    // a Nydus image whose data layers include eStargz ones is mounted by its own bootstrap
    if (manifest.layers.some(isNydusBootstrap) || remote.digest !== stargzTop(manifest)) return;
    const layers = stargzChain(store, manifest, remote.digest);
    const key = stargzChainKey(layers);
    if (await this.built.get(key)) return;
    const lock = await this.built.lock(key);
    locked();
    onTop(remote);
    let kept = false;
    try {
      if (await this.built.get(key)) return;
      await this.built.put(key, await this.models.build(n, layers));
      kept = true;
      log.info('eStargz chain bootstrap built while pulling', { ref: remote.ref, layer: remote.digest, layers: layers.length });
    } finally {
      lock?.release(kept);
    }
  }
}
