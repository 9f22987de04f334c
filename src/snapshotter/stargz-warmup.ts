// While containerd pulls an eStargz image (rpull: one Prepare per layer, each answered at once),
// the snapshotter reads each new layer's TOC and, when the chain's top layer is in, builds the
// chain's bootstrap into the cache directory (blobcache/built-bootstraps.ts): the daemon that
// mounts the image for the container then finds it there (or waits for it on the build lock, which
// the warm-up takes before it reads a TOC), instead of reading and merging every TOC while the
// container waits. Best effort: whatever fails here, the daemon builds it itself.
import type { BuiltBootstraps } from '../blobcache/built-bootstraps.js';
import { registryClientFor, type RegistryAccess } from '../image/remote.js';
import { buildStargzChain, stargzChain, stargzChainKey, storeTocReader, type TocReader } from '../image/stargz-image.js';
import { type ImageStore, resolveImage } from '../registry/image-store.js';
import type { ImageManifest } from '../registry/media-types.js';
import { isNydusBootstrap } from '../registry/nydus-layers.js';
import { openImageStore } from '../registry/open-image-store.js';
import { parseReference } from '../registry/reference.js';
import type { RegistryClient } from '../registry/client.js';
import { log } from '../util/log.js';
import type { RemoteLayer } from './labels.js';

/** How long a mount waits for a warm-up to take its build lock. */
const MAX_WAIT_MS = 10_000;

/** One image being pulled: its registry connection, manifest and the TOCs read so far. */
interface PulledImage {
  client: RegistryClient;
  opened: Promise<{ store: ImageStore; manifest: ImageManifest }>;
  tocs: Map<string, ReturnType<TocReader>>;
  /** The layer committed last: the chain a container will mount ends there (so far). */
  top: string;
  /** Warm-ups of its layers still running. */
  running: number;
}

const chainName = (remote: RemoteLayer): string => `${remote.ref}\n${remote.digest}`;

export class StargzWarmup {
  private readonly images = new Map<string, PulledImage>();
  private readonly chains = new Map<string, Promise<void>>();

  constructor(private readonly access: RegistryAccess, private readonly built: BuiltBootstraps) {}

  /** An eStargz layer was committed: read its chain's TOCs and, if it is still the top, build the chain. */
  layer(remote: RemoteLayer): void {
    const name = chainName(remote);
    if (this.chains.has(name)) return;
    const image = this.images.get(remote.ref) ?? this.open(remote.ref);
    image.top = remote.digest;
    image.running++;
    let locked!: () => void;
    const started = new Promise<void>((resolve) => (locked = resolve));
    this.chains.set(name, started);
    void this.warm(image, remote, locked)
      .catch((err: Error) => log.warn('eStargz warm-up failed (the daemon builds the bootstrap itself)', { ref: remote.ref, layer: remote.digest, error: err.message }))
      .finally(() => {
        locked();
        this.chains.delete(name);
        if (--image.running > 0) return;
        this.images.delete(remote.ref);
        void image.client.close();
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

  private open(ref: string): PulledImage {
    const client = registryClientFor(ref, this.access);
    const opened = (async () => {
      const { store, reference } = await openImageStore({ kind: 'registry', ...parseReference(ref) }, client);
      return { store, manifest: (await resolveImage(store, reference)).manifest.parsed };
    })();
    opened.catch(() => undefined); // each warm-up awaits (and reports) it
    const image: PulledImage = { client, opened, tocs: new Map(), top: '', running: 0 };
    this.images.set(ref, image);
    return image;
  }

  private async warm(image: PulledImage, remote: RemoteLayer, locked: () => void): Promise<void> {
    const { store, manifest } = await image.opened;
    // a Nydus image whose data layers include eStargz ones is mounted by its own bootstrap
    if (manifest.layers.some(isNydusBootstrap)) return;
    const layers = stargzChain(store, manifest, remote.digest);
    const key = stargzChainKey(layers);
    if (await this.built.get(key)) return;
    const lock = await this.built.lock(key);
    locked();
    let kept = false;
    try {
      const read = storeTocReader(store);
      // every TOC of the chain starts now, each read once for all the image's chains
      for (const l of layers) if (!image.tocs.has(l.digest)) image.tocs.set(l.digest, read(l));
      await Promise.all(layers.map((l) => image.tocs.get(l.digest)));
      // a layer above came meanwhile: its chain, not this one, is what a container mounts
      if (image.top !== remote.digest || (await this.built.get(key))) return;
      await this.built.put(key, await buildStargzChain(layers, (l) => image.tocs.get(l.digest)!));
      kept = true;
      log.info('eStargz chain bootstrap built while pulling', { ref: remote.ref, layer: remote.digest, layers: layers.length });
    } finally {
      lock?.release(kept);
    }
  }
}
