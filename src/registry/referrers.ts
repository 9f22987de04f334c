// OCI 1.1 referrers: the manifests that name another one as their `subject` (signatures, SBOMs, indexes
// beside an image), found through the registry's referrers API, or through the referrers tag schema where
// the store has none (distribution 2.8, OCI layouts): an OCI index tagged `<alg>-<hex>` of the subject
// that pushers keep up to date themselves.
import { isDigest, validateDigest } from './digest.js';
import { RegistryError } from './errors.js';
import { MAX_REFERRERS, type FetchedManifest, type ImageStore, type SubjectManifestPut } from './image-store.js';
import { ManifestFormatError, MediaType, parseManifest, type Descriptor, type ImageIndex, type ParsedManifest } from './media-types.js';

/** The fallback tag of the OCI 1.1 referrers tag schema: `sha256-<hex>` for subject `sha256:<hex>`. */
export function referrersTag(subjectDigest: string): string {
  const [algorithm, encoded] = validateDigest(subjectDigest).split(':') as [string, string];
  // the spec's truncations keep a sha512 tag within the 128 characters a tag may have
  return `${algorithm.slice(0, 32)}-${encoded.slice(0, 64)}`;
}

/**
 * The manifests that name `subject` (a manifest digest) as their subject, optionally only those of
 * `artifactType`: from the registry's referrers API (GET /v2/<name>/referrers/<digest>[?artifactType=…],
 * OCI distribution spec 1.1) when it has one, else from the referrers tag schema (the OCI index
 * tagged referrersTag(subject), filtered here). No referrers → []. Descriptors are checked
 * (validateDigest, sizes non-negative integers), the list is bounded (e.g. 1000 entries; more is an error).
 */
export async function findReferrers(store: ImageStore, subject: string, artifactType?: string): Promise<Descriptor[]> {
  validateDigest(subject);
  const listed = (await store.getReferrers?.(subject, artifactType)) ?? (await readTagIndex(store, subject))?.parsed.manifests ?? [];
  const where = `${store.name}: referrers of ${subject}`;
  if (listed.length > MAX_REFERRERS) throw new RegistryError(`${where}: ${listed.length} of them, more than the ${MAX_REFERRERS} read`);
  listed.forEach((d, i) => checkReferrer(d, `${where}, entry ${i}`));
  // a registry may ignore the filter (it says so in OCI-Filters-Applied); filtering again costs nothing
  return artifactType === undefined ? listed : listed.filter((d) => d.artifactType === artifactType);
}

/**
 * Pushes `manifest` (bytes of an OCI image manifest whose `subject` is `subject`) by digest, and makes it
 * discoverable: a registry that answers the PUT with an `OCI-Subject` header indexes it itself; else the
 * referrers tag index (referrersTag) is read (absent = empty), the manifest's descriptor (mediaType,
 * digest, size, artifactType, annotations from the manifest) added unless already there, and the index
 * put back under that tag. Returns the manifest's digest.
 */
export async function pushReferrer(store: ImageStore, manifest: Buffer, mediaType: string): Promise<string> {
  const parsed = parseManifest(manifest, mediaType);
  // parseManifest checks config and layers, not the subject: checked here, before anything is pushed
  const subject: unknown = parsed.parsed.subject?.digest;
  if (typeof subject !== 'string' || !isDigest(subject)) {
    throw new ManifestFormatError(`a referrer pushed to ${store.name} must name a subject by digest; this ${parsed.mediaType} names ${JSON.stringify(subject) ?? 'none'}`);
  }
  const { digest, subjectIndexed } = await putWithSubject(store, manifest, mediaType);
  if (subjectIndexed) return digest;
  await addToTagIndex(store, subject, referrerDescriptor(parsed, digest, manifest.length));
  return digest;
}

async function putWithSubject(store: ImageStore, manifest: Buffer, mediaType: string): Promise<SubjectManifestPut> {
  if (store.putManifestWithSubject) return store.putManifestWithSubject(manifest, mediaType);
  return { digest: await store.putManifest(manifest, mediaType), subjectIndexed: false };
}

/**
 * Read, add, write: two pushers of referrers of one subject at once may each write an index without the
 * other's entry (the tag schema has no compare-and-swap); that race is left to the callers.
 */
async function addToTagIndex(store: ImageStore, subject: string, entry: Descriptor): Promise<void> {
  const tag = referrersTag(subject);
  const index: ImageIndex = (await readTagIndex(store, subject))?.parsed ?? { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  if (index.manifests.some((d) => d.digest === entry.digest)) return;
  if (index.manifests.length >= MAX_REFERRERS) throw new RegistryError(`${store.name}:${tag}: already lists ${index.manifests.length} referrers, the most kept`);
  const updated: ImageIndex = { ...index, mediaType: MediaType.ociIndex, manifests: [...index.manifests, entry] };
  await store.putManifest(Buffer.from(JSON.stringify(updated)), MediaType.ociIndex, tag);
}

/** The index tagged referrersTag(subject); undefined when there is no such tag (a 404 of the store). */
async function readTagIndex(store: ImageStore, subject: string): Promise<(FetchedManifest & { kind: 'index'; parsed: ImageIndex }) | undefined> {
  const tag = referrersTag(subject);
  let fetched: FetchedManifest;
  try {
    fetched = await store.getManifest(tag);
  } catch (err) {
    if (err instanceof RegistryError && err.status === 404) return undefined;
    if (err instanceof ManifestFormatError) throw new RegistryError(`${store.name}:${tag}: the referrers tag of ${subject} holds no image index: ${err.message}`, { cause: err });
    throw err;
  }
  if (fetched.kind !== 'index') throw new RegistryError(`${store.name}:${tag}: the referrers tag of ${subject} holds a ${fetched.mediaType}, not an image index`);
  return fetched;
}

/** How the referrers list names a manifest: as the referrers API would (artifactType defaults to the config's type). */
function referrerDescriptor(manifest: ParsedManifest, digest: string, size: number): Descriptor {
  const body = manifest.parsed;
  const artifactType = body.artifactType ?? (manifest.kind === 'manifest' ? manifest.parsed.config.mediaType : undefined);
  return {
    mediaType: manifest.mediaType,
    digest,
    size,
    ...(artifactType !== undefined && { artifactType }),
    ...(body.annotations !== undefined && { annotations: body.annotations }),
  };
}

/** A descriptor of an untrusted list, before a caller fetches what it names. */
function checkReferrer(d: Descriptor, where: string): void {
  if (typeof d !== 'object' || d === null) throw new RegistryError(`${where}: not a descriptor`);
  if (typeof d.mediaType !== 'string') throw new RegistryError(`${where}: mediaType missing`);
  if (typeof d.digest !== 'string' || !isDigest(d.digest)) throw new RegistryError(`${where}: ${JSON.stringify(d.digest)} is not a digest`);
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw new RegistryError(`${where}: size must be a non-negative integer`);
  if (d.artifactType !== undefined && typeof d.artifactType !== 'string') throw new RegistryError(`${where}: artifactType must be a string`);
}
