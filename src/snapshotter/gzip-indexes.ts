// Which plain images have a gzip index (image/gzip-index.ts), or else a SOCI index
// (image/soci-index.ts): asked at the first Prepare of each of their layers, answered once per image
// (the manifest, then its referrers) and kept a while, so the other layers of a pull ask nothing of
// the registry. An indexed image's layers are then served
// lazily, each as the chain of the image's layers up to it; others are pulled (plain-pulls.ts).
import { isPlainGzipImage } from '../image/gzip-index.js';
import { findPlainImageIndex, registryClientFor, type RegistryAccess } from '../image/remote.js';
import { resolveImage } from '../registry/image-store.js';
import { isNydusBootstrap } from '../registry/nydus-layers.js';
import { openImageStore } from '../registry/open-image-store.js';
import { parseReference } from '../registry/reference.js';
import { log } from '../util/log.js';
import type { LayerSource, RemoteLayer } from './labels.js';

/** How long an answer is kept: a pull asks for every layer within it; an index pushed later is seen after it. */
const KEEP_MS = 60_000;

export class GzipIndexes {
  private readonly answers = new Map<string, Promise<string | undefined>>();

  /** `authOf`: the credentials of a layer's image (its pull secret, or the CRI keychain's). */
  constructor(private readonly access: RegistryAccess, private readonly authOf: (layer: LayerSource) => RemoteLayer['auth']) {}

  /**
   * The top layer of the layer's image when the image is a plain gzip image with a gzip index
   * (undefined otherwise, or when that cannot be told: the layer is then pulled). `onIndexed`
   * hears of the image's top layer once, when the index is first found.
   */
  async top(layer: LayerSource, onIndexed: (top: RemoteLayer) => void): Promise<string | undefined> {
    let answer = this.answers.get(layer.ref);
    if (!answer) {
      answer = this.lookUp(layer);
      this.answers.set(layer.ref, answer);
      setTimeout(() => this.answers.delete(layer.ref), KEEP_MS).unref();
      void answer.then((top) => top !== undefined && onIndexed({ ...layer, digest: top, role: 'indexed' }));
    }
    return answer;
  }

  private async lookUp(layer: LayerSource): Promise<string | undefined> {
    const auth = this.authOf(layer);
    const client = registryClientFor(layer.ref, auth ? { ...this.access, auth } : this.access);
    try {
      const { store, reference } = await openImageStore({ kind: 'registry', ...parseReference(layer.ref) }, client);
      const { manifest } = await resolveImage(store, reference);
      const layers = manifest.parsed.layers;
      if (!isPlainGzipImage(layers) || layers.some(isNydusBootstrap) || !layers.some((l) => l.digest === layer.digest)) return undefined;
      const found = await findPlainImageIndex(store, manifest);
      if (!found) return undefined;
      log.info('plain image has a gzip index: served lazily', { ref: layer.ref, index: found.index.digest, soci: found.kind === 'soci' ? found.index.version : undefined });
      return layers[layers.length - 1]!.digest;
    } catch (err) {
      log.warn('looking for a gzip index failed: the image is pulled', { ref: layer.ref, error: (err as Error).message });
      return undefined;
    } finally {
      await client.close();
    }
  }
}
