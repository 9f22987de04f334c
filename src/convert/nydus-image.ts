// Building the layers of a Nydus image (docs/rafs-v6.md §4): the blob layer descriptors, the
// bootstrap packed as a gzip tar layer, and the config whose diff_ids match them.
import { createHash } from 'node:crypto';
import { gzipCompress } from '../native/index.js';
import { MediaType, type Descriptor } from '../registry/media-types.js';
import { Annotation, BOOTSTRAP_PATH, NYDUS_BLOB_MEDIA_TYPE } from '../registry/nydus-layers.js';
import { tarBytes } from './tar/write.js';

export const sha256Digest = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export function blobLayerDescriptor(blobId: string, size: number): Descriptor {
  return { mediaType: NYDUS_BLOB_MEDIA_TYPE, digest: `sha256:${blobId}`, size, annotations: { [Annotation.NYDUS_BLOB]: 'true' } };
}

export interface BootstrapLayer {
  /** The gzip-compressed layer as pushed. */
  blob: Buffer;
  descriptor: Descriptor;
  /** Digest of the uncompressed tar: the config's diff_id for this layer. */
  diffId: string;
}

/** The bootstrap packed as the image's last layer: dir `image/`, file `image/image.boot` (0444). */
export async function bootstrapLayer(bootstrap: Buffer, dockerMediaTypes: boolean): Promise<BootstrapLayer> {
  const tar = await tarBytes(async (t) => {
    await t.dir({ path: 'image', mode: 0o755 });
    await t.file({ path: BOOTSTRAP_PATH, mode: 0o444, size: bootstrap.length }, bootstrap);
  });
  const blob = gzipCompress(tar);
  return {
    blob,
    diffId: sha256Digest(tar),
    descriptor: {
      mediaType: dockerMediaTypes ? MediaType.dockerLayerGzip : MediaType.ociLayerGzip,
      digest: sha256Digest(blob),
      size: blob.length,
      annotations: { [Annotation.NYDUS_FS_VERSION]: '6', [Annotation.NYDUS_BOOTSTRAP]: 'true' },
    },
  };
}

/** The source config with the Nydus layers' diff_ids and a history entry for the bootstrap layer. */
export function nydusConfig(source: Record<string, unknown>, diffIds: string[]): Record<string, unknown> {
  const history = Array.isArray(source.history) ? source.history : [];
  return {
    ...source,
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: [...history, { created_by: 'Nydus Converter', comment: 'Nydus Bootstrap Layer' }],
  };
}
