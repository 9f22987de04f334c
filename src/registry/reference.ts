// Image references: `[host[:port]/]repo[:tag][@digest]` for registries, with Docker Hub's defaults
// (`busybox` = docker.io/library/busybox:latest, served by registry-1.docker.io), and `oci:DIR[:TAG]`
// for OCI image layout directories.
import { validateDigest } from './digest.js';

export const DOCKER_HUB = 'docker.io';
/** Where Docker Hub's distribution API actually lives. */
export const DOCKER_HUB_HOST = 'registry-1.docker.io';
const DOCKER_HUB_ALIASES = new Set([DOCKER_HUB, DOCKER_HUB_HOST, 'index.docker.io']);
export const DEFAULT_TAG = 'latest';

export interface ImageReference {
  /** The registry as people name it: `docker.io`, `127.0.0.1:5000`, `ghcr.io`. */
  registry: string;
  /** host[:port] to send API requests to (differs from `registry` only for Docker Hub). */
  host: string;
  /** Repository path, e.g. `library/busybox`. */
  repository: string;
  /** Tag; `latest` when the reference names neither tag nor digest. */
  tag?: string;
  digest?: string;
}

export interface OciLayoutReference {
  /** The layout directory (holds `oci-layout`, `index.json`, `blobs/`). */
  dir: string;
  /** `org.opencontainers.image.ref.name` of the image in index.json; absent = the only image there. */
  tag?: string;
}

export type ImageLocation = ({ kind: 'registry' } & ImageReference) | ({ kind: 'oci-layout' } & OciLayoutReference);

export class InvalidReferenceError extends Error {
  constructor(readonly reference: string, reason: string) {
    super(`invalid image reference "${reference}": ${reason}`);
    this.name = 'InvalidReferenceError';
  }
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;
const MAX_NAME_LENGTH = 255;

/** Docker's rule: the first path component is a registry when it has a dot or a port, or is localhost. */
function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component.startsWith('[') || component === 'localhost';
}

/** Parses a registry reference; throws InvalidReferenceError with the reason. */
export function parseReference(input: string): ImageReference {
  const fail = (reason: string): never => {
    throw new InvalidReferenceError(input, reason);
  };
  let rest = input.trim();
  if (rest === '') fail('empty');

  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      validateDigest(digest);
    } catch (err) {
      fail((err as Error).message);
    }
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) fail(`bad tag "${tag}"`);
  }

  const slash = rest.indexOf('/');
  let registry = DOCKER_HUB;
  let repository = rest;
  if (slash > 0 && looksLikeHost(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    repository = rest.slice(slash + 1);
    if (!HOST.test(registry)) fail(`bad registry host "${registry}"`);
  }
  if (DOCKER_HUB_ALIASES.has(registry)) {
    registry = DOCKER_HUB;
    if (!repository.includes('/')) repository = `library/${repository}`;
  }
  if (repository === '') fail('no repository');
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) fail(`bad repository component "${component}" (lowercase letters, digits and . _ - separators)`);
  }
  if (`${registry}/${repository}`.length > MAX_NAME_LENGTH) fail(`name longer than ${MAX_NAME_LENGTH} characters`);

  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  const host = registry === DOCKER_HUB ? DOCKER_HUB_HOST : registry;
  return { registry, host, repository, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** `registry/repository[:tag][@digest]`. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** What to ask the registry for: the digest when pinned, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}

/**
 * `oci:DIR[:TAG]` → an OCI layout location; anything else → a registry reference. As in skopeo, the first
 * colon after the directory starts the tag, so the directory itself cannot contain one.
 */
export function parseImageLocation(input: string): ImageLocation {
  if (!input.startsWith('oci:')) return { kind: 'registry', ...parseReference(input) };
  const spec = input.slice('oci:'.length);
  const colon = spec.indexOf(':');
  const dir = colon < 0 ? spec : spec.slice(0, colon);
  const tag = colon < 0 ? undefined : spec.slice(colon + 1);
  if (dir === '') throw new InvalidReferenceError(input, 'oci: needs a directory');
  if (tag !== undefined && tag === '') throw new InvalidReferenceError(input, 'empty tag after the directory');
  return tag === undefined ? { kind: 'oci-layout', dir } : { kind: 'oci-layout', dir, tag };
}

export function formatImageLocation(location: ImageLocation): string {
  return location.kind === 'oci-layout' ? `oci:${location.dir}${location.tag !== undefined ? `:${location.tag}` : ''}` : formatReference(location);
}
