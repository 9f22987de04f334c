// An OCI image layout directory (oci-layout, index.json, blobs/<alg>/<hex>) as an ImageStore. Tags are the
// `org.opencontainers.image.ref.name` annotations of index.json entries. Blobs are written to a temporary
// file, verified, then renamed into place; index.json is replaced the same way, so a reader never sees half.
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { pipeline, Readable } from 'node:stream';
import { blobSource, type BlobContent } from './blob-content.js';
import { computeDigest, DigestVerifier, isDigest, validateDigest, verifyDigest } from './digest.js';
import { RegistryError } from './errors.js';
import type { BlobRef, FetchedManifest, ImageStore, PutBlobResult } from './image-store.js';
import { MediaType, parseManifest, type Descriptor, type ImageIndex } from './media-types.js';
import { writeAtomically } from '../util/files.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
const LAYOUT_FILE = 'oci-layout';
const INDEX_FILE = 'index.json';
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

function notFound(message: string, code: 'BLOB_UNKNOWN' | 'MANIFEST_UNKNOWN', path: string): RegistryError {
  return new RegistryError(message, { status: 404, code, url: path });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Writes `data` to a temporary sibling of `path` and renames it over `path`. */
export class OciLayoutStore implements ImageStore {
  readonly name: string;
  /** index.json updates are read-modify-write: one at a time within this process. */
  private indexUpdate: Promise<unknown> = Promise.resolve();

  private constructor(readonly dir: string) {
    this.name = `oci:${dir}`;
  }

  /** Opens an existing layout; throws when `dir` has no `oci-layout` file. */
  static async open(dir: string): Promise<OciLayoutStore> {
    if (!(await exists(join(dir, LAYOUT_FILE)))) throw new Error(`${dir} is not an OCI image layout (no ${LAYOUT_FILE} file)`);
    return new OciLayoutStore(dir);
  }

  /** Opens the layout at `dir`, creating the directory, `oci-layout` and an empty index.json where missing. */
  static async create(dir: string): Promise<OciLayoutStore> {
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    if (!(await exists(join(dir, LAYOUT_FILE)))) await writeAtomically(join(dir, LAYOUT_FILE), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    if (!(await exists(join(dir, INDEX_FILE)))) {
      const empty: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
      await writeAtomically(join(dir, INDEX_FILE), JSON.stringify(empty));
    }
    return new OciLayoutStore(dir);
  }

  blobPath(digest: string): string {
    const [algorithm, encoded] = validateDigest(digest).split(':') as [string, string];
    return join(this.dir, 'blobs', algorithm, encoded);
  }

  async readIndex(): Promise<ImageIndex> {
    const path = join(this.dir, INDEX_FILE);
    const parsed = parseManifest(await readFile(path), MediaType.ociIndex);
    if (parsed.kind !== 'index') throw new Error(`${path} is not an image index`);
    return parsed.parsed;
  }

  /** The tags in index.json, in order. */
  async tags(): Promise<string[]> {
    return (await this.readIndex()).manifests.flatMap((d) => (d.annotations?.[REF_NAME_ANNOTATION] !== undefined ? [d.annotations[REF_NAME_ANNOTATION]] : []));
  }

  private async findDescriptor(reference: string | undefined): Promise<Descriptor> {
    const index = await this.readIndex();
    const indexPath = join(this.dir, INDEX_FILE);
    if (reference === undefined) {
      if (index.manifests.length === 1) return index.manifests[0]!;
      throw notFound(`${this.name}: holds ${index.manifests.length} images; name one by tag (${(await this.tags()).join(', ') || 'none tagged'})`, 'MANIFEST_UNKNOWN', indexPath);
    }
    const found = index.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] === reference).at(-1);
    if (!found) throw notFound(`${this.name}: no image tagged "${reference}" (tags: ${(await this.tags()).join(', ') || 'none'})`, 'MANIFEST_UNKNOWN', indexPath);
    return found;
  }

  async getManifest(reference?: string): Promise<FetchedManifest> {
    let digest: string;
    let hint: string | undefined;
    if (reference !== undefined && isDigest(reference)) {
      digest = reference;
      hint = (await this.readIndex()).manifests.find((d) => d.digest === reference)?.mediaType;
    } else {
      const descriptor = await this.findDescriptor(reference);
      digest = descriptor.digest;
      hint = descriptor.mediaType;
    }
    const path = this.blobPath(digest);
    let bytes: Buffer;
    try {
      if ((await stat(path)).size > MAX_MANIFEST_BYTES) throw new Error(`${path}: larger than ${MAX_MANIFEST_BYTES} bytes, not a manifest`);
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`${this.name}: manifest ${digest} is missing from blobs/`, 'MANIFEST_UNKNOWN', path);
      throw err;
    }
    verifyDigest(bytes, digest, this.name);
    return { ...parseManifest(bytes, hint), bytes, digest };
  }

  async getBlob(digest: string): Promise<Readable> {
    const path = this.blobPath(digest);
    await this.blobSize(digest); // a missing blob is a 404 RegistryError now, not an ENOENT from the stream later
    return pipeline(createReadStream(path), new DigestVerifier(digest, this.name), () => {});
  }

  async getBlobRange(digest: string, offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new RangeError(`bad range offset=${offset} length=${length}`);
    }
    const size = await this.blobSize(digest);
    if (offset + length > size) {
      throw new RegistryError(`${this.name}: blob ${digest} is ${size} bytes; bytes ${offset}-${offset + length - 1} are past its end`, { status: 416, url: this.blobPath(digest) });
    }
    const file = await open(this.blobPath(digest), 'r');
    try {
      const out = Buffer.alloc(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await file.read(out, filled, length - filled, offset + filled);
        if (bytesRead === 0) throw new RegistryError(`${this.name}: blob ${digest} shrank while being read`, { url: this.blobPath(digest) });
        filled += bytesRead;
      }
      return out;
    } finally {
      await file.close();
    }
  }

  async hasBlob(digest: string): Promise<boolean> {
    return exists(this.blobPath(digest));
  }

  async blobSize(digest: string): Promise<number> {
    const path = this.blobPath(digest);
    try {
      return (await stat(path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`${this.name}: blob ${digest} not found`, 'BLOB_UNKNOWN', path);
      throw err;
    }
  }

  /** Writes the blob unless a file of the right size is there; the bytes are verified before they get their name. */
  async putBlob(blob: BlobRef, content: BlobContent): Promise<PutBlobResult> {
    const path = this.blobPath(blob.digest);
    if ((await this.hasBlob(blob.digest)) && (await this.blobSize(blob.digest)) === blob.size) return 'exists';
    await mkdir(join(path, '..'), { recursive: true });
    const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
    const verifier = new DigestVerifier(blob.digest, `${this.name} (writing)`);
    try {
      await pipelineAsync(Readable.from(await blobSource(content).open()), verifier, createWriteStream(tmp));
      if (verifier.size !== blob.size) throw new RegistryError(`${this.name}: blob ${blob.digest} has ${verifier.size} bytes, the descriptor says ${blob.size}`);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return 'uploaded';
  }

  /** Stores the manifest blob and points `tag` at it in index.json (replacing what the tag pointed at). */
  async putManifest(bytes: Buffer, mediaType: string, tag?: string): Promise<string> {
    const digest = computeDigest(bytes);
    await this.putBlob({ digest, size: bytes.length }, bytes);
    const update = this.indexUpdate.then(async () => {
      const index = await this.readIndex();
      const descriptor: Descriptor = { mediaType, digest, size: bytes.length, ...(tag !== undefined && { annotations: { [REF_NAME_ANNOTATION]: tag } }) };
      const kept = index.manifests.filter((d) => {
        const name = d.annotations?.[REF_NAME_ANNOTATION];
        return tag !== undefined ? name !== tag : !(name === undefined && d.digest === digest);
      });
      await writeAtomically(join(this.dir, INDEX_FILE), JSON.stringify({ ...index, manifests: [...kept, descriptor] }));
    });
    this.indexUpdate = update.catch(() => {});
    await update;
    return digest;
  }
}
