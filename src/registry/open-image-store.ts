// A store for a location string: an OCI layout directory, or a repository through a registry client.
// Apart from image-store.ts (the interface both kinds implement) so that the stores can depend on
// the interface without the interface depending on them.
import type { RegistryClient } from './client.js';
import type { ImageStore } from './image-store.js';
import { OciLayoutStore } from './oci-layout.js';
import { manifestReference, parseImageLocation, type ImageLocation } from './reference.js';

export interface OpenedImage {
  store: ImageStore;
  /** What to pass to getManifest/putManifest: the digest or tag of a registry reference, a layout's tag. */
  reference?: string;
}

/**
 * The store and reference for a location string (`oci:DIR[:TAG]` or a registry reference). `create` makes
 * a missing layout directory (for targets); registry repositories need nothing created.
 */
export async function openImageStore(location: string | ImageLocation, client: RegistryClient, options: { create?: boolean } = {}): Promise<OpenedImage> {
  const parsed = typeof location === 'string' ? parseImageLocation(location) : location;
  if (parsed.kind === 'oci-layout') {
    const store = options.create ? await OciLayoutStore.create(parsed.dir) : await OciLayoutStore.open(parsed.dir);
    return parsed.tag === undefined ? { store } : { store, reference: parsed.tag };
  }
  return { store: client.repository(parsed), reference: manifestReference(parsed) };
}
