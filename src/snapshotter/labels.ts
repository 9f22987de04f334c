// Label rules: which labels a request may carry (bounded, because containerd passes through what
// image annotations and clients put there) and what they say about a layer. A layer is served
// remotely (never downloaded) when its labels mark it as a Nydus layer and name both the image and
// the layer: `ctr-remote image rpull` passes stargz.* labels, CRI passes cri.* labels, and the Nydus
// annotations reach us because containerd inherits every "containerd.io/snapshot/" annotation.
import { Annotation } from '../registry/nydus-layers.js';
import { TOC_DIGEST_ANNOTATION } from '../registry/stargz-layers.js';
import { InvalidArgumentError } from './errors.js';

export const Label = {
  /** The name the client wants the layer committed under (its chain ID). */
  TARGET: 'containerd.io/snapshot.ref',
  STARGZ_REF: 'containerd.io/snapshot/remote/stargz.reference',
  STARGZ_DIGEST: 'containerd.io/snapshot/remote/stargz.digest',
  CRI_REF: 'containerd.io/snapshot/cri.image-ref',
  CRI_DIGEST: 'containerd.io/snapshot/cri.layer-digest',
  /** The layer's digest and those of the layers above it, comma separated (cut short at the top to fit). */
  STARGZ_LAYERS: 'containerd.io/snapshot/remote/stargz.layers',
  CRI_LAYERS: 'containerd.io/snapshot/cri.image-layers',
  NYDUS_BLOB: Annotation.NYDUS_BLOB,
  NYDUS_BOOTSTRAP: Annotation.NYDUS_BOOTSTRAP,
  /** An eStargz layer's TOC digest (containerd passes the layer annotation on). */
  STARGZ_TOC_DIGEST: TOC_DIGEST_ANNOTATION,
  /** nydus-snapshotter's pull secret: the user and password of the image's registry (a Kubernetes image pull secret's, say). */
  PULL_USERNAME: 'containerd.io/snapshot/pullusername',
  PULL_SECRET: 'containerd.io/snapshot/pullsecret',
} as const;

/** containerd's own limit: a label's key and value together at most 4096 bytes. */
export const MAX_LABEL_BYTES = 4096;
/** More labels than containerd would ever send on one snapshot is an abuse, not a request. */
export const MAX_LABELS = 256;
/** Keys are "namespace/id/name" or chain IDs; well under this. */
export const MAX_KEY_BYTES = 4096;
const MAX_REF_LENGTH = 1024;

const DIGEST = /^sha256:[0-9a-f]{64}$/;
// registry host[:port]/path[:tag][@digest]: printable, no whitespace; parsed properly by the daemon
const REFERENCE = /^[A-Za-z0-9][A-Za-z0-9._:\-[\]]*(\/[A-Za-z0-9._-]+)+(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$/;

export function checkKey(key: unknown, what = 'key'): string {
  if (typeof key !== 'string' || key === '') throw new InvalidArgumentError(`${what} must not be empty`);
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new InvalidArgumentError(`${what} is longer than ${MAX_KEY_BYTES} bytes`);
  if (key.includes('\0')) throw new InvalidArgumentError(`${what} contains NUL`);
  return key;
}

/** Labels as a null-prototype object: every key, `__proto__` too, is an own property, and nothing else is one. */
export function labelsOf(entries: Record<string, string> = {}): Record<string, string> {
  return Object.assign(Object.create(null) as Record<string, string>, entries);
}

/** Labels as sent (a protobuf map may arrive as undefined), checked against the limits; a null-prototype object. */
export function checkLabels(labels: unknown): Record<string, string> {
  const out = labelsOf();
  if (labels === undefined || labels === null) return out;
  if (typeof labels !== 'object' || Array.isArray(labels)) throw new InvalidArgumentError('labels must be a map');
  const entries = Object.entries(labels as Record<string, unknown>);
  if (entries.length > MAX_LABELS) throw new InvalidArgumentError(`more than ${MAX_LABELS} labels`);
  for (const [k, v] of entries) {
    if (typeof v !== 'string') throw new InvalidArgumentError(`label ${JSON.stringify(k.slice(0, 64))}: value must be a string`);
    if (k === '') throw new InvalidArgumentError('label key must not be empty');
    if (Buffer.byteLength(k) + Buffer.byteLength(v) > MAX_LABEL_BYTES) throw new InvalidArgumentError(`label ${JSON.stringify(k.slice(0, 64))}: key and value exceed ${MAX_LABEL_BYTES} bytes`);
    if (k.includes('\0') || v.includes('\0')) throw new InvalidArgumentError('labels must not contain NUL');
    out[k] = v;
  }
  return out;
}

/** A layer of a Nydus or eStargz image, served by a daemon rather than unpacked. */
export interface RemoteLayer {
  /** The image reference the layer belongs to (what the daemon mounts). */
  ref: string;
  /** The layer's blob digest. */
  digest: string;
  /**
   * bootstrap: a Nydus image's last layer, whose merged tree is the whole image; blob: a Nydus data
   * blob; stargz: an eStargz layer, whose chain is the image's layers up to it (served merged);
   * indexed: a plain gzip layer of an image with a gzip index, a chain like an eStargz layer's.
   */
  role: 'bootstrap' | 'blob' | 'stargz' | 'indexed';
  /** The image registry's credentials, from the pull secret labels: over any the snapshotter has for that host. */
  auth?: { username: string; password: string };
  /** A Nydus data layer's image's top layer (its bootstrap), when the labels name it for certain: see imageTop. */
  top?: string;
}

/** Whether the layer is served as the chain of its image's layers up to it (an eStargz or indexed gzip layer). */
export const isChainLayer = (remote: RemoteLayer | undefined): remote is RemoteLayer => remote?.role === 'stargz' || remote?.role === 'indexed';

/** A layer's image and digest (and the image's credentials, if its labels give them). */
export type LayerSource = Omit<RemoteLayer, 'role'>;

/** The remote layer the labels describe, or undefined for an ordinary layer. */
export function remoteLayer(labels: Record<string, string>): RemoteLayer | undefined {
  const role = labels[Label.NYDUS_BOOTSTRAP] === 'true' ? 'bootstrap' : labels[Label.NYDUS_BLOB] === 'true' ? 'blob' : labels[Label.STARGZ_TOC_DIGEST] !== undefined ? 'stargz' : undefined;
  if (!role) return undefined;
  const ref = labels[Label.CRI_REF] ?? labels[Label.STARGZ_REF];
  const digest = labels[Label.CRI_DIGEST] ?? labels[Label.STARGZ_DIGEST];
  if (ref === undefined || digest === undefined) return undefined;
  if (ref.length > MAX_REF_LENGTH || !REFERENCE.test(ref)) throw new InvalidArgumentError(`image reference label ${JSON.stringify(ref.slice(0, 128))} is not a reference`);
  if (!DIGEST.test(digest)) throw new InvalidArgumentError(`layer digest label ${JSON.stringify(digest.slice(0, 128))} is not a sha256 digest`);
  const auth = pullSecret(labels);
  const top = role === 'blob' ? imageTop(labels, digest) : undefined;
  return { ref, digest, role, ...(auth ? { auth } : {}), ...(top ? { top } : {}) };
}

/**
 * The image's top layer by the layers label of its layer `digest` (that layer's digest first, then
 * those above it: ctr-remote's and CRI's), unless the label may have been cut short: containerd
 * drops the top digests that would not fit in a label. Undefined then, or for a label of another shape.
 */
function imageTop(labels: Record<string, string>, digest: string): string | undefined {
  const key = labels[Label.CRI_LAYERS] !== undefined ? Label.CRI_LAYERS : Label.STARGZ_LAYERS;
  const value = labels[key];
  // one more digest (as long as this one) would not have fit: the top may be missing
  if (value === undefined || Buffer.byteLength(key) + value.length + 1 + digest.length > MAX_LABEL_BYTES) return undefined;
  const digests = value.split(',');
  if (digests[0] !== digest || digests.length < 2 || !digests.every((d) => DIGEST.test(d))) return undefined;
  return digests.at(-1);
}

/**
 * An ordinary layer whose labels name its image and digest (as `ctr-remote image rpull` and CRI
 * label every layer): one the snapshotter may pull itself (plain-pulls.ts). Undefined for a remote
 * layer or labels that do not name both.
 */
export function plainLayer(labels: Record<string, string>): LayerSource | undefined {
  if (labels[Label.NYDUS_BOOTSTRAP] !== undefined || labels[Label.NYDUS_BLOB] !== undefined || labels[Label.STARGZ_TOC_DIGEST] !== undefined) return undefined;
  const ref = labels[Label.CRI_REF] ?? labels[Label.STARGZ_REF];
  const digest = labels[Label.CRI_DIGEST] ?? labels[Label.STARGZ_DIGEST];
  if (ref === undefined || digest === undefined || ref.length > MAX_REF_LENGTH || !REFERENCE.test(ref) || !DIGEST.test(digest)) return undefined;
  const auth = pullSecret(labels);
  return { ref, digest, ...(auth ? { auth } : {}) };
}

/** The pull secret labels' credentials: both or neither (one alone is refused, rather than a pull without them). */
function pullSecret(labels: Record<string, string>): RemoteLayer['auth'] {
  const username = labels[Label.PULL_USERNAME];
  const password = labels[Label.PULL_SECRET];
  if (username === undefined && password === undefined) return undefined;
  if (!username || !password) throw new InvalidArgumentError(`the pull secret labels go together: ${Label.PULL_USERNAME} and ${Label.PULL_SECRET}, neither empty`);
  // a user name is the part before the first colon of basic credentials
  if (username.includes(':')) throw new InvalidArgumentError(`label ${Label.PULL_USERNAME}: a user name has no colon`);
  return { username, password };
}
