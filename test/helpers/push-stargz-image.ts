// A hand-made stargz-family image pushed to a registry through the project's own client: layer
// blobs given byte for byte (honest, corrupted or forged) with the annotations a test chooses, an
// OCI config and manifest around them. For hostile-image tests of what `mount --target` serves.
import { createHash } from 'node:crypto';
import { clientForReferences } from '../../src/registry/client.js';
import { openImageStore } from '../../src/registry/index.js';

const sha256Digest = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface PushedLayer {
  /** The bytes pushed, under their own digest. */
  blob: Buffer;
  /** What the config's rootfs lists for the layer (the uncompressed tar's digest). */
  diffId: string;
  annotations: Record<string, string>;
  mediaType?: string;
}

/** Pushes an amd64/linux image of `layers` as `ref` (plain http), with the manifest's `annotations`; returns the manifest digest. */
export async function pushStargzImage(ref: string, layers: PushedLayer[], annotations?: Record<string, string>): Promise<string> {
  const { store, reference } = await openImageStore(ref, clientForReferences([[ref, false]], true));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
  const configDescriptor = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.length };
  const descriptors = layers.map((l) => ({
    mediaType: l.mediaType ?? 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: sha256Digest(l.blob),
    size: l.blob.length,
    annotations: l.annotations,
  }));
  for (const [i, d] of descriptors.entries()) await store.putBlob(d, layers[i]!.blob);
  await store.putBlob(configDescriptor, config);
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDescriptor, layers: descriptors, ...(annotations ? { annotations } : {}) };
  return store.putManifest(Buffer.from(JSON.stringify(manifest)), manifest.mediaType, reference);
}
