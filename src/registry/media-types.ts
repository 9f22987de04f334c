// Manifest and index media types (OCI and Docker schema2), their JSON shapes, and how to tell which one a
// body is. umoci writes manifests without a top-level mediaType, so detection falls back to the content.
import { validateDigest } from './digest.js';

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export type ManifestKind = 'manifest' | 'index';

const KIND_OF: Record<string, ManifestKind> = {
  [MediaType.ociManifest]: 'manifest',
  [MediaType.dockerManifest]: 'manifest',
  [MediaType.ociIndex]: 'index',
  [MediaType.dockerManifestList]: 'index',
};

/** The Accept header for manifest GETs: every type this client can parse. */
export const MANIFEST_ACCEPT = Object.keys(KIND_OF).join(', ');

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export type ParsedManifest = { kind: 'manifest'; mediaType: string; parsed: ImageManifest } | { kind: 'index'; mediaType: string; parsed: ImageIndex };

export class ManifestFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestFormatError';
  }
}

/** `application/vnd.oci.image.index.v1+json; charset=utf-8` → the bare type, lowercased. */
export function bareMediaType(contentType: string | undefined): string | undefined {
  const bare = contentType?.split(';')[0]?.trim().toLowerCase();
  return bare || undefined;
}

/** Whether a media type names a manifest or an index; undefined for anything else (layers, configs, JSON). */
export function manifestKindOf(mediaType: string | undefined): ManifestKind | undefined {
  const bare = bareMediaType(mediaType);
  return bare === undefined ? undefined : KIND_OF[bare];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw new ManifestFormatError(`${where}: not an object`);
  if (typeof value.mediaType !== 'string') throw new ManifestFormatError(`${where}: mediaType missing`);
  if (typeof value.digest !== 'string') throw new ManifestFormatError(`${where}: digest missing`);
  validateDigest(value.digest);
  if (!Number.isSafeInteger(value.size) || (value.size as number) < 0) throw new ManifestFormatError(`${where}: size must be a non-negative integer`);
  if (value.platform !== undefined) checkPlatform(value.platform, `${where}.platform`);
  return value as unknown as Descriptor;
}

/** A descriptor's platform: os and architecture strings, variant a string when present. */
function checkPlatform(value: unknown, where: string): void {
  if (!isObject(value)) throw new ManifestFormatError(`${where}: not an object`);
  if (typeof value.os !== 'string' || typeof value.architecture !== 'string') throw new ManifestFormatError(`${where}: os and architecture must be strings`);
  if (value.variant !== undefined && typeof value.variant !== 'string') throw new ManifestFormatError(`${where}: variant must be a string`);
}

/**
 * Parses a manifest or index body. Its media type is, in order: the body's own `mediaType`, then `hint`
 * (Content-Type or the descriptor that pointed here) when it names a manifest type, then the shape —
 * `manifests` means an OCI index, `config` + `layers` an OCI manifest (schema2 always carries mediaType).
 */
export function parseManifest(bytes: Uint8Array, hint?: string): ParsedManifest {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new ManifestFormatError(`manifest is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(body)) throw new ManifestFormatError('manifest is not a JSON object');
  if (body.schemaVersion === 1) throw new ManifestFormatError('Docker schema1 manifests are not supported');
  if (body.schemaVersion !== 2) throw new ManifestFormatError(`unsupported manifest schemaVersion ${JSON.stringify(body.schemaVersion)}`);

  const declared = typeof body.mediaType === 'string' ? body.mediaType : undefined;
  const hinted = manifestKindOf(hint) ? bareMediaType(hint) : undefined;
  const detected = Array.isArray(body.manifests) ? MediaType.ociIndex : 'config' in body && Array.isArray(body.layers) ? MediaType.ociManifest : undefined;
  const mediaType = declared ?? hinted ?? detected;
  if (mediaType === undefined) throw new ManifestFormatError('neither a manifest (config + layers) nor an index (manifests)');
  const kind = manifestKindOf(mediaType);
  if (kind === undefined) throw new ManifestFormatError(`unsupported manifest media type ${mediaType}`);

  if (kind === 'index') {
    if (!Array.isArray(body.manifests)) throw new ManifestFormatError(`${mediaType} without a manifests array`);
    body.manifests.forEach((d, i) => checkDescriptor(d, `manifests[${i}]`));
    return { kind, mediaType, parsed: body as unknown as ImageIndex };
  }
  if (!Array.isArray(body.layers)) throw new ManifestFormatError(`${mediaType} without a layers array`);
  checkDescriptor(body.config, 'config');
  body.layers.forEach((d, i) => checkDescriptor(d, `layers[${i}]`));
  return { kind, mediaType, parsed: body as unknown as ImageManifest };
}
