// Pull credentials a kubelet sent with its CRI PullImage requests (nydus-snapshotter's and
// stargz-snapshotter's "CRI keychain"): containerd does not hand credentials to a snapshotter, so the
// snapshotter stands between kubelet and containerd's image service (cri-image-proxy.ts) and keeps
// the credentials of each image pulled, for the layers of that image it is then asked to mount.
// Held in memory only, at most MAX_IMAGES of them; an image's RemoveImage forgets its credentials.
import { type CriAuthConfig } from './cri-image-requests.js';
import { DOCKER_HUB, formatReference, type ImageReference, parseReference } from '../registry/reference.js';

/** Images whose credentials are held at once; the oldest go first. */
export const MAX_IMAGES = 1024;

export interface PullCredentials {
  username: string;
  password: string;
}

const repoOf = (ref: ImageReference): string => `${ref.registry}/${ref.repository}`;

/** The registry host a CRI server_address names (`https://index.docker.io/v1/`, `host:port`, …). */
function serverHost(address: string): string {
  const host = /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? new URL(address).host : address.split('/')[0]!;
  return ['index.docker.io', 'registry-1.docker.io'].includes(host) ? DOCKER_HUB : host;
}

/** User and password from a CRI AuthConfig, if it carries them (tokens are not used here). */
export function credentialsOf(auth: CriAuthConfig): PullCredentials | undefined {
  if (auth.username !== undefined && auth.password !== undefined) return { username: auth.username, password: auth.password };
  if (auth.auth !== undefined) {
    const plain = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon > 0) return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
  }
  return undefined;
}

export class CriKeychain {
  /** Normalized image reference → its repository (registry/repository) and credentials, oldest first. */
  private readonly byImage = new Map<string, { repo: string; creds: PullCredentials }>();

  /** A PullImage of `image` came with `auth`: kept for its layers (replacing what an earlier pull gave). */
  remember(image: string, auth: CriAuthConfig | undefined): void {
    const ref = parseReference(image);
    const key = formatReference(ref);
    this.byImage.delete(key);
    // credentials meant for another registry are not this image's
    const creds = auth && (auth.serverAddress === undefined || serverHost(auth.serverAddress) === ref.registry) ? credentialsOf(auth) : undefined;
    if (!creds) return;
    this.byImage.set(key, { repo: repoOf(ref), creds });
    if (this.byImage.size > MAX_IMAGES) this.byImage.delete(this.byImage.keys().next().value!);
  }

  /** The image was removed: its credentials go too. */
  forget(image: string): void {
    this.byImage.delete(formatReference(parseReference(image)));
  }

  /**
   * Credentials for the image `image` names: those of its own pull, else of the latest pull from the
   * same repository (containerd may name a pulled tag by its digest).
   */
  credentialsFor(image: string): PullCredentials | undefined {
    const ref = parseReference(image);
    const exact = this.byImage.get(formatReference(ref));
    if (exact) return exact.creds;
    const repo = repoOf(ref);
    let latest: PullCredentials | undefined;
    for (const held of this.byImage.values()) if (held.repo === repo) latest = held.creds;
    return latest;
  }
}
