// The Nydus image conventions on top of OCI (spec §4): one nydus blob layer per source layer,
// then a gzip tar layer holding the merged bootstrap at image/image.boot, last; annotations under
// containerd.io/snapshot/ so containerd passes them to snapshotters; config diff_ids to match.
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { gzipCompress } from '../native/index.js';
import { TarWriter } from '../convert/tar/write.js';

export const MediaType = {
  OCI_MANIFEST: 'application/vnd.oci.image.manifest.v1+json',
  OCI_INDEX: 'application/vnd.oci.image.index.v1+json',
  OCI_CONFIG: 'application/vnd.oci.image.config.v1+json',
  OCI_LAYER_GZIP: 'application/vnd.oci.image.layer.v1.tar+gzip',
  DOCKER_MANIFEST: 'application/vnd.docker.distribution.manifest.v2+json',
  DOCKER_LIST: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DOCKER_CONFIG: 'application/vnd.docker.container.image.v1+json',
  DOCKER_LAYER_GZIP: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  NYDUS_BLOB: 'application/vnd.oci.image.layer.nydus.blob.v1',
} as const;

export const Annotation = {
  NYDUS_BLOB: 'containerd.io/snapshot/nydus-blob',
  NYDUS_BOOTSTRAP: 'containerd.io/snapshot/nydus-bootstrap',
  NYDUS_FS_VERSION: 'containerd.io/snapshot/nydus-fs-version',
} as const;

/** Where the bootstrap sits inside the bootstrap layer. */
export const BOOTSTRAP_PATH = 'image/image.boot';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

export const sha256Digest = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export function isNydusBlob(d: { mediaType?: string; annotations?: Record<string, string> }): boolean {
  return d.mediaType === MediaType.NYDUS_BLOB || d.annotations?.[Annotation.NYDUS_BLOB] === 'true';
}

export function isNydusBootstrap(d: { annotations?: Record<string, string> }): boolean {
  return d.annotations?.[Annotation.NYDUS_BOOTSTRAP] === 'true';
}

export function blobLayerDescriptor(blobId: string, size: number): Descriptor {
  return { mediaType: MediaType.NYDUS_BLOB, digest: `sha256:${blobId}`, size, annotations: { [Annotation.NYDUS_BLOB]: 'true' } };
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
      mediaType: dockerMediaTypes ? MediaType.DOCKER_LAYER_GZIP : MediaType.OCI_LAYER_GZIP,
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
