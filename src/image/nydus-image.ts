// The Nydus image conventions on top of OCI (docs/rafs-v6.md §4): one nydus blob layer per source layer,
// then a gzip tar layer holding the merged bootstrap at image/image.boot, last; annotations under
// containerd.io/snapshot/ so containerd passes them to snapshotters; config diff_ids to match.
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { gzipCompress } from '../native/index.js';
import { TarWriter } from '../convert/tar/write.js';
import { MediaType, type Descriptor } from '../registry/media-types.js';

/** Media type of a Nydus data blob layer (also used inside Docker schema2 manifests). */
export const NYDUS_BLOB_MEDIA_TYPE = 'application/vnd.oci.image.layer.nydus.blob.v1';

export const Annotation = {
  NYDUS_BLOB: 'containerd.io/snapshot/nydus-blob',
  NYDUS_BOOTSTRAP: 'containerd.io/snapshot/nydus-bootstrap',
  NYDUS_FS_VERSION: 'containerd.io/snapshot/nydus-fs-version',
} as const;

/** Where the bootstrap sits inside the bootstrap layer. */
export const BOOTSTRAP_PATH = 'image/image.boot';

export const sha256Digest = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export function isNydusBlob(d: { mediaType?: string; annotations?: Record<string, string> }): boolean {
  return d.mediaType === NYDUS_BLOB_MEDIA_TYPE || d.annotations?.[Annotation.NYDUS_BLOB] === 'true';
}

export function isNydusBootstrap(d: { annotations?: Record<string, string> }): boolean {
  return d.annotations?.[Annotation.NYDUS_BOOTSTRAP] === 'true';
}

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
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      parts.push(chunk);
      done();
    },
  });
  const tar = new TarWriter(sink);
  await tar.dir({ path: 'image', mode: 0o755 });
  await tar.file({ path: BOOTSTRAP_PATH, mode: 0o444, size: bootstrap.length }, bootstrap);
  await tar.finish();
  const tarBytes = Buffer.concat(parts);
  const blob = gzipCompress(tarBytes);
  return {
    blob,
    diffId: sha256Digest(tarBytes),
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
