// The one interface convert reads images from and writes them to, whatever they live in: a registry
// repository (repository.ts) or an OCI image layout directory (oci-layout.ts).
import type { Readable } from 'node:stream';
import type { BlobContent } from './blob-content.js';
import { RegistryError } from './errors.js';
import type { Descriptor, ImageIndex, ImageManifest, ParsedManifest, Platform } from './media-types.js';
import { DEFAULT_PLATFORM, selectPlatform } from './platform.js';

/** A manifest or index exactly as stored: its bytes, media type, digest (verified) and parsed body. */
export type FetchedManifest = ParsedManifest & { bytes: Buffer; digest: string };

/** Called as a range arrives: `buf` (the buffer that is returned) holds its first `filled` bytes. */
export type RangeProgress = (buf: Buffer, filled: number) => void;

export type BlobRef = Pick<Descriptor, 'digest' | 'size'>;

/** The last bytes of a blob, and its size. */
export interface BlobTail {
  bytes: Buffer;
  size: number;
}

/** What putBlob did: nothing (already there), a cross-repository mount, or an upload. */
export type PutBlobResult = 'exists' | 'mounted' | 'uploaded';

export interface PutBlobOptions {
  /** Where the blob already is; a repository on the same registry is mounted from instead of uploading. */
  mountFrom?: ImageStore;
}

export interface ImageStore {
  /** For messages: `127.0.0.1:5000/repo` or `oci:/dir`. */
  readonly name: string;
  /** A manifest or index by tag or digest; without one, the store's default (`latest`, or a layout's only image). */
  getManifest(reference?: string): Promise<FetchedManifest>;
  /** The whole blob as a stream that fails with DigestMismatchError at its end when the bytes are not `digest`. */
  getBlob(digest: string): Promise<Readable>;
  /**
   * Exactly `length` bytes at `offset` of the blob; `progress`, if given, sees the buffer fill as the
   * bytes arrive; `signal` gives up on the request.
   */
  getBlobRange(digest: string, offset: number, length: number, progress?: RangeProgress, signal?: AbortSignal): Promise<Buffer>;
  /**
   * The blob's last min(`length`, size) bytes and its size in one request; undefined when the store
   * cannot (a server without suffix ranges). Absent: the store never can.
   */
  getBlobTail?(digest: string, length: number): Promise<BlobTail | undefined>;
  hasBlob(digest: string): Promise<boolean>;
  /** Size in bytes; a missing blob is a RegistryError with status 404. */
  blobSize(digest: string): Promise<number>;
  /** Stores a blob unless it is already there; `content` is only opened when bytes must be sent. */
  putBlob(blob: BlobRef, content: BlobContent, options?: PutBlobOptions): Promise<PutBlobResult>;
  /** Stores a manifest or index (its blobs must be there already) under `tag`, or by digest only; returns its digest. */
  putManifest(bytes: Buffer, mediaType: string, tag?: string): Promise<string>;
  /**
   * Stores a manifest that names a `subject` by digest, like putManifest, and tells whether the store indexed
   * it as a referrer of its subject itself (a registry's `OCI-Subject` answer). Absent: the store never does.
   */
  putManifestWithSubject?(bytes: Buffer, mediaType: string): Promise<SubjectManifestPut>;
  /**
   * The referrers API (OCI distribution 1.1): the descriptors of the manifests naming `subject` as theirs,
   * as the store lists them (`artifactType` is a hint it may ignore), at most MAX_REFERRERS of them; undefined
   * when the store has no such API. Absent: the store never has one.
   */
  getReferrers?(subject: string, artifactType?: string): Promise<Descriptor[] | undefined>;
}

/** What putManifestWithSubject did: the manifest's digest, and whether its subject's referrers list it now. */
export interface SubjectManifestPut {
  digest: string;
  subjectIndexed: boolean;
}

/** The most referrers of one subject read: a list is held in memory, and it comes from an untrusted store. */
export const MAX_REFERRERS = 1000;

export interface ResolvedImage {
  manifest: FetchedManifest & { kind: 'manifest'; parsed: ImageManifest };
  /** The index the manifest was chosen from, when the reference named one. */
  index?: FetchedManifest & { kind: 'index'; parsed: ImageIndex };
}

/** The image manifest `reference` names, choosing `platform` (default linux/amd64) when it names an index. */
export async function resolveImage(store: ImageStore, reference?: string, platform: string | Platform = DEFAULT_PLATFORM): Promise<ResolvedImage> {
  const top = await store.getManifest(reference);
  if (top.kind === 'manifest') return { manifest: top };
  const chosen = selectPlatform(top.parsed, platform);
  const manifest = await store.getManifest(chosen.digest);
  if (manifest.kind !== 'manifest') throw new Error(`${store.name}: index entry ${chosen.digest} is itself an index; nested indexes are not supported`);
  return { manifest, index: top };
}

/** The most an image config may be: read whole into memory, it comes from an untrusted registry. */
export const MAX_CONFIG_BYTES = 16 << 20;

/**
 * The whole blob `blob` names, in memory, returned only once all of it has arrived and hashed to its digest
 * (getBlob's stream fails at its end otherwise). A descriptor larger than `limit`, or a body longer than the
 * descriptor says, is refused before it is buffered.
 */
export async function readBlob(store: ImageStore, blob: BlobRef, limit: number): Promise<Buffer> {
  if (!Number.isSafeInteger(blob.size) || blob.size < 0 || blob.size > limit) {
    throw new RegistryError(`${store.name}: blob ${blob.digest} is ${blob.size} bytes, more than the ${limit} read whole`);
  }
  const out = Buffer.allocUnsafe(blob.size);
  let filled = 0;
  const stream = await store.getBlob(blob.digest);
  for await (const piece of stream) {
    const chunk = piece as Buffer;
    if (filled + chunk.length > blob.size) {
      stream.destroy();
      throw new RegistryError(`${store.name}: blob ${blob.digest} is longer than the ${blob.size} bytes its descriptor says`);
    }
    filled += chunk.copy(out, filled);
  }
  if (filled !== blob.size) throw new RegistryError(`${store.name}: blob ${blob.digest} ended after ${filled} of the ${blob.size} bytes its descriptor says`);
  return out;
}
