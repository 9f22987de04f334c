// One repository on a registry, as an ImageStore: manifests by tag or digest (verified), blobs whole
// (streamed and verified), by range, HEAD, and push (HEAD skip, cross-repository mount, upload); the
// referrers API of OCI distribution 1.1 where the registry has one.
import { pipeline, type Readable } from 'node:stream';
import { log } from '../util/log.js';
import { repositoryScope, mergeScopes } from './auth.js';
import { blobSource, type BlobContent } from './blob-content.js';
import type { RegistrySession } from './request.js';
import { computeDigest, DigestVerifier, isDigest, validateDigest, verifyDigest } from './digest.js';
import { DigestMismatchError, RegistryError, responseError } from './errors.js';
import { MAX_REFERRERS, type BlobRef, type BlobTail, type FetchedManifest, type ImageStore, type PutBlobOptions, type PutBlobResult, type RangeProgress, type SubjectManifestPut } from './image-store.js';
import { MANIFEST_ACCEPT, MediaType, parseManifest, type Descriptor, type ParsedManifest } from './media-types.js';
import { DEFAULT_TAG } from './reference.js';
import { headerValue, readBody, readBodyInto, readErrorText, type HttpResponse } from './transport.js';
import { startUpload, uploadChunked, uploadMonolithic, type UploadTarget } from './upload.js';

/** containerd's limit: a manifest is small, a larger body is a broken or hostile server. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const TAG = /^[\w][\w.-]{0,127}$/;
/** What a registry without the referrers API answers its route: 404 (distribution 2.8), 405, or 400 (the name read as a bad one). */
const NO_REFERRERS_API = new Set([400, 404, 405]);
/** Pages of one referrers list followed: a registry that keeps linking a next page (empty ones, say) is cut off. */
const MAX_REFERRER_PAGES = 20;
const pushLog = log.child({ component: 'registry' });

function parseContentRange(value: string | undefined): { start: number; end: number; total?: number } | undefined {
  const m = value === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), ...(m[3] !== '*' && { total: Number(m[3]) }) };
}

/**
 * The page a `Link: <…>; rel="next"` header names, as a path on this registry; it must be the same referrers
 * list (`path`, another query), since the registry's word is no reason to send our credentials elsewhere.
 */
function nextPage(res: HttpResponse, path: string, where: string): string | undefined {
  const link = headerValue(res, 'link');
  const target = link === undefined ? undefined : /<([^>]*)>[^,]*;\s*rel="?next"?/i.exec(link)?.[1];
  if (target === undefined) return undefined;
  const url = new URL(target, res.url);
  if (url.origin !== new URL(res.url).origin || url.pathname !== path) {
    throw new RegistryError(`${where}: the next page is linked as ${target}, not on this list`, { status: res.status, url: res.url });
  }
  return url.pathname + url.search;
}

export class RegistryRepository implements ImageStore {
  readonly name: string;
  private readonly pullScopes: string[];
  private readonly pushScopes: string[];

  constructor(
    readonly client: RegistrySession,
    readonly host: string,
    readonly repository: string,
  ) {
    this.name = `${host}/${repository}`;
    this.pullScopes = [repositoryScope(repository, ['pull'])];
    this.pushScopes = [repositoryScope(repository, ['pull', 'push'])];
  }

  private async unexpected(res: HttpResponse, method: string): Promise<RegistryError> {
    return responseError(method, res.url, res.status, method === 'HEAD' ? '' : await readErrorText(res));
  }

  private get(path: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<HttpResponse> {
    return this.client.send({ host: this.host, method: 'GET', path, scopes: this.pullScopes, headers, signal });
  }

  async getManifest(reference: string = DEFAULT_TAG): Promise<FetchedManifest> {
    const byDigest = isDigest(reference);
    if (!byDigest && !TAG.test(reference)) throw new RegistryError(`${this.name}: "${reference}" is neither a tag nor a digest`);
    const where = `${this.name}:${reference}`;
    return this.client.retrying(this.host, `GET manifest ${where}`, async () => {
      const res = await this.get(`/v2/${this.repository}/manifests/${reference}`, { accept: MANIFEST_ACCEPT });
      if (res.status !== 200) throw await this.unexpected(res, 'GET');
      const bytes = await readBody(res, MAX_MANIFEST_BYTES);
      let digest: string;
      if (byDigest) {
        verifyDigest(bytes, reference, this.name);
        digest = reference;
      } else {
        digest = computeDigest(bytes);
        const announced = headerValue(res, 'docker-content-digest');
        if (announced?.startsWith('sha256:') && announced !== digest) throw new DigestMismatchError(announced, digest, where);
      }
      return { ...parseManifest(bytes, headerValue(res, 'content-type')), bytes, digest };
    });
  }

  async getBlob(digest: string): Promise<Readable> {
    validateDigest(digest);
    const res = await this.client.retrying(this.host, `GET blob ${digest} from ${this.name}`, async () => {
      const res = await this.get(`/v2/${this.repository}/blobs/${digest}`);
      if (res.status !== 200) throw await this.unexpected(res, 'GET');
      return res;
    });
    // errors of either stream end up on the returned one, which is what the consumer iterates
    return pipeline(res.body, new DigestVerifier(digest, this.name), () => {});
  }

  async getBlobRange(digest: string, offset: number, length: number, progress?: RangeProgress, signal?: AbortSignal): Promise<Buffer> {
    validateDigest(digest);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new RangeError(`bad range offset=${offset} length=${length}`);
    }
    if (length === 0) return Buffer.alloc(0);
    const end = offset + length - 1;
    const range = `bytes=${offset}-${end}`;
    return this.client.retrying(this.host, `GET ${range} of blob ${digest} from ${this.name}`, async () => {
      const res = await this.get(`/v2/${this.repository}/blobs/${digest}`, { range }, signal);
      if (res.status === 206) {
        const got = parseContentRange(headerValue(res, 'content-range'));
        if (!got || got.start !== offset || got.end !== end) {
          res.body.destroy();
          throw new RegistryError(`${this.name}: asked blob ${digest} for ${range}, got Content-Range ${headerValue(res, 'content-range') ?? 'none'}`, { status: 206, url: res.url });
        }
        return readBodyInto(res, Buffer.allocUnsafe(length), progress);
      }
      if (res.status === 200) return this.sliceWholeBody(res, digest, offset, length, progress);
      if (res.status === 416) {
        await readErrorText(res);
        const size = /\/(\d+)$/.exec(headerValue(res, 'content-range') ?? '')?.[1];
        const blobSize = size === undefined ? '' : ` (the blob is ${size} bytes)`;
        throw new RegistryError(`${this.name}: ${range} is outside blob ${digest}${blobSize}`, { status: 416, url: res.url });
      }
      throw await this.unexpected(res, 'GET');
    });
  }

  /**
   * The blob's last min(`length`, size) bytes and its size, in one request (a suffix range, so the size
   * need not be known first); undefined from a server that ignores suffix ranges (it would send the
   * whole blob, which is not read).
   */
  async getBlobTail(digest: string, length: number): Promise<BlobTail | undefined> {
    validateDigest(digest);
    if (!Number.isSafeInteger(length) || length <= 0) throw new RangeError(`bad tail length ${length}`);
    const range = `bytes=-${length}`;
    return this.client.retrying(this.host, `GET ${range} of blob ${digest} from ${this.name}`, async () => {
      const res = await this.get(`/v2/${this.repository}/blobs/${digest}`, { range });
      if (res.status === 200) {
        res.body.destroy();
        return undefined;
      }
      if (res.status !== 206) throw await this.unexpected(res, 'GET');
      const got = parseContentRange(headerValue(res, 'content-range'));
      const size = got?.total;
      if (!got || size === undefined || got.end !== size - 1 || got.start !== Math.max(0, size - length)) {
        res.body.destroy();
        throw new RegistryError(`${this.name}: asked blob ${digest} for ${range}, got Content-Range ${headerValue(res, 'content-range') ?? 'none'}`, { status: 206, url: res.url });
      }
      return { bytes: await readBodyInto(res, Buffer.allocUnsafe(size - got.start)), size };
    });
  }

  /** A server that ignores Range sends the whole blob: keep only the requested bytes and stop reading after them. */
  private async sliceWholeBody(res: HttpResponse, digest: string, offset: number, length: number, progress?: RangeProgress): Promise<Buffer> {
    const out = Buffer.alloc(length);
    let position = 0;
    let filled = 0;
    for await (const piece of res.body) {
      const chunk = piece as Buffer;
      const from = Math.max(0, offset - position);
      const to = Math.min(chunk.length, offset + length - position);
      if (to > from) {
        filled += chunk.copy(out, filled, from, to);
        progress?.(out, filled);
      }
      position += chunk.length;
      if (filled === length) break;
    }
    res.body.destroy();
    if (filled !== length) {
      throw new RegistryError(`${this.name}: blob ${digest} is ${position} bytes; bytes ${offset}-${offset + length - 1} are past its end`, { status: 200, url: res.url });
    }
    return out;
  }

  private async head(digest: string): Promise<HttpResponse> {
    validateDigest(digest);
    return this.client.retrying(this.host, `HEAD blob ${digest} in ${this.name}`, () =>
      this.client.send({ host: this.host, method: 'HEAD', path: `/v2/${this.repository}/blobs/${digest}`, scopes: this.pullScopes }),
    );
  }

  async hasBlob(digest: string): Promise<boolean> {
    const res = await this.head(digest);
    await res.body.dump();
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.unexpected(res, 'HEAD');
  }

  async blobSize(digest: string): Promise<number> {
    const res = await this.head(digest);
    await res.body.dump();
    const length = Number(headerValue(res, 'content-length'));
    if (res.status === 200 && Number.isSafeInteger(length)) return length;
    if (res.status === 200) throw new RegistryError(`HEAD ${res.url}: no Content-Length`, { status: 200, url: res.url });
    throw await this.unexpected(res, 'HEAD');
  }

  async putBlob(blob: BlobRef, content: BlobContent, options: PutBlobOptions = {}): Promise<PutBlobResult> {
    validateDigest(blob.digest);
    if (await this.hasBlob(blob.digest)) {
      pushLog.debug('blob already present', { repository: this.name, digest: blob.digest });
      return 'exists';
    }
    const source = options.mountFrom;
    const mountFrom = source instanceof RegistryRepository && source.host === this.host && source.repository !== this.repository ? source.repository : undefined;
    const target: UploadTarget = {
      client: this.client,
      host: this.host,
      repository: this.repository,
      scopes: mountFrom === undefined ? this.pushScopes : mergeScopes(this.pushScopes, [repositoryScope(mountFrom, ['pull'])]),
    };
    const bytes = blobSource(content);
    const { chunkedThreshold, chunkSize } = this.client.upload;
    const result = await this.client.retrying(
      this.host,
      `push blob ${blob.digest} to ${this.name}`,
      async (): Promise<PutBlobResult> => {
        const location = await startUpload(target, blob.digest, mountFrom);
        if (location === undefined) return 'mounted';
        if (blob.size > chunkedThreshold) await uploadChunked(target, location, blob, bytes, chunkSize);
        else await uploadMonolithic(target, location, blob, bytes);
        return 'uploaded';
      },
      bytes.reopenable,
    );
    pushLog.debug('blob pushed', { repository: this.name, digest: blob.digest, size: blob.size, result, ...(mountFrom !== undefined && { mountFrom }) });
    return result;
  }

  async putManifest(bytes: Buffer, mediaType: string, tag?: string): Promise<string> {
    return (await this.sendManifest(bytes, mediaType, tag)).digest;
  }

  /** A registry with the referrers API answers the PUT of a manifest with a subject with `OCI-Subject: <subject digest>`. */
  async putManifestWithSubject(bytes: Buffer, mediaType: string): Promise<SubjectManifestPut> {
    const subject = parseManifest(bytes, mediaType).parsed.subject?.digest;
    const { digest, ociSubject } = await this.sendManifest(bytes, mediaType);
    return { digest, subjectIndexed: subject !== undefined && ociSubject === subject };
  }

  private async sendManifest(bytes: Buffer, mediaType: string, tag?: string): Promise<{ digest: string; ociSubject: string | undefined }> {
    const digest = computeDigest(bytes);
    if (tag !== undefined && !TAG.test(tag)) throw new RegistryError(`${this.name}: bad tag "${tag}"`);
    const reference = tag ?? digest;
    return this.client.retrying(this.host, `PUT manifest ${this.name}:${reference}`, async () => {
      const res = await this.client.send({
        host: this.host,
        method: 'PUT',
        path: `/v2/${this.repository}/manifests/${reference}`,
        scopes: this.pushScopes,
        headers: { 'content-type': mediaType },
        body: bytes,
      });
      if (res.status !== 201) throw await this.unexpected(res, 'PUT');
      await res.body.dump();
      const stored = headerValue(res, 'docker-content-digest');
      if (stored?.startsWith('sha256:') && stored !== digest) throw new DigestMismatchError(digest, stored, `${this.name}:${reference} (as stored by the registry)`);
      return { digest, ociSubject: headerValue(res, 'oci-subject') };
    });
  }

  /**
   * GET /v2/<name>/referrers/<subject>: an OCI image index of the referrers, in pages linked by `Link`
   * (followed while they are few and short); undefined when the registry has no such route.
   */
  async getReferrers(subject: string, artifactType?: string): Promise<Descriptor[] | undefined> {
    validateDigest(subject);
    const path = `/v2/${this.repository}/referrers/${subject}`;
    const found: Descriptor[] = [];
    let page: string | undefined = artifactType === undefined ? path : `${path}?artifactType=${encodeURIComponent(artifactType)}`;
    for (let n = 1; page !== undefined; n++) {
      if (n > MAX_REFERRER_PAGES) throw new RegistryError(`${this.name}: the referrers of ${subject} run to more than ${MAX_REFERRER_PAGES} pages`);
      const answer = await this.referrersPage(page, path, subject, n === 1);
      if (answer === undefined) return undefined;
      found.push(...answer.manifests);
      if (found.length > MAX_REFERRERS) throw new RegistryError(`${this.name}: ${subject} has more than ${MAX_REFERRERS} referrers`);
      page = answer.next;
    }
    return found;
  }

  /** One page of a referrers list; undefined when the first answers that there is no referrers API. */
  private async referrersPage(page: string, path: string, subject: string, first: boolean): Promise<{ manifests: Descriptor[]; next?: string } | undefined> {
    const where = `${this.name}: referrers of ${subject}`;
    return this.client.retrying(this.host, `GET ${where}`, async () => {
      const res = await this.get(page, { accept: MediaType.ociIndex });
      if (first && NO_REFERRERS_API.has(res.status)) {
        await res.body.dump();
        return undefined;
      }
      if (res.status !== 200) throw await this.unexpected(res, 'GET');
      const bytes = await readBody(res, MAX_MANIFEST_BYTES);
      let parsed: ParsedManifest;
      try {
        parsed = parseManifest(bytes, headerValue(res, 'content-type'));
      } catch (err) {
        throw new RegistryError(`${where}: ${(err as Error).message}`, { status: 200, url: res.url, cause: err });
      }
      if (parsed.kind !== 'index') throw new RegistryError(`${where}: answered with a ${parsed.mediaType}, not an image index`, { status: 200, url: res.url });
      const next = nextPage(res, path, where);
      return { manifests: parsed.parsed.manifests, ...(next !== undefined && { next }) };
    });
  }
}
