// Blob push over the distribution API: POST opens an upload session (or, with ?mount=&from=, mounts the blob
// from another repository of the same registry: 201 = done, 202 = not mountable, upload into the session it
// opened), then one PUT with the whole body, or PATCH chunks with Content-Range and a closing PUT for blobs
// above the chunked threshold. Registries do not accept the body on the POST itself (distribution 2.8 ignores it).
import type { BlobSource, BlobStream } from './blob-content.js';
import type { RegistryRequest, RegistrySession } from './request.js';
import { RegistryError, responseError } from './errors.js';
import type { BlobRef } from './image-store.js';
import { headerValue, readErrorText, type HttpResponse } from './transport.js';

export interface UploadTarget {
  client: RegistrySession;
  host: string;
  repository: string;
  /** Push scopes (plus the mount source's pull scope when mounting). */
  scopes: readonly string[];
}

async function unexpected(res: HttpResponse, method: string): Promise<RegistryError> {
  return responseError(method, res.url, res.status, await readErrorText(res));
}

function nextLocation(res: HttpResponse, method: string): string {
  const location = headerValue(res, 'location');
  if (!location) throw new RegistryError(`${method} ${res.url}: ${res.status} without a Location header`, { status: res.status, url: res.url });
  return new URL(location, res.url).href;
}

function send(target: UploadTarget, req: Omit<RegistryRequest, 'host' | 'scopes'>): Promise<HttpResponse> {
  return target.client.send({ ...req, host: target.host, scopes: target.scopes });
}

/** Opens an upload session, or mounts the blob from `mountFrom`; returns the session URL, or undefined when mounted. */
export async function startUpload(target: UploadTarget, digest: string, mountFrom?: string): Promise<string | undefined> {
  const query = mountFrom === undefined ? '' : `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}`;
  const res = await send(target, { method: 'POST', path: `/v2/${target.repository}/blobs/uploads/${query}`, headers: { 'content-length': '0' } });
  if (res.status === 201 && mountFrom !== undefined) {
    await res.body.dump();
    return undefined;
  }
  if (res.status !== 202) throw await unexpected(res, 'POST');
  await res.body.dump();
  return nextLocation(res, 'POST');
}

function withDigest(location: string, digest: string): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.href;
}

async function finish(target: UploadTarget, res: HttpResponse, blob: BlobRef): Promise<void> {
  if (res.status !== 201) throw await unexpected(res, 'PUT');
  await res.body.dump();
  const stored = headerValue(res, 'docker-content-digest');
  if (stored !== undefined && stored !== blob.digest) {
    throw new RegistryError(`${target.host}/${target.repository} stored blob ${blob.digest} as ${stored}`, { url: res.url });
  }
}

/** A body factory that opens the source only when the request is actually sent (again, after a 401). */
function lazyBody(source: BlobSource): () => BlobStream {
  return async function* () {
    yield* await source.open();
  };
}

/** The whole blob in one PUT to the session at `location`. */
export async function uploadMonolithic(target: UploadTarget, location: string, blob: BlobRef, source: BlobSource): Promise<void> {
  const res = await send(target, {
    method: 'PUT',
    path: withDigest(location, blob.digest),
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
    body: lazyBody(source),
  });
  await finish(target, res, blob);
}

/** Regroups a stream into Buffers of exactly `size` bytes (the last may be shorter). */
export async function* rechunk(stream: BlobStream, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const piece of stream) {
    let data = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    while (pendingBytes + data.length >= size) {
      const take = size - pendingBytes;
      pending.push(data.subarray(0, take));
      yield Buffer.concat(pending, size);
      data = data.subarray(take);
      pending = [];
      pendingBytes = 0;
    }
    if (data.length) {
      pending.push(data);
      pendingBytes += data.length;
    }
  }
  if (pendingBytes) yield Buffer.concat(pending, pendingBytes);
}

/** The blob in PATCH chunks of `chunkSize` with Content-Range, then a closing PUT with the digest. */
export async function uploadChunked(target: UploadTarget, location: string, blob: BlobRef, source: BlobSource, chunkSize: number): Promise<void> {
  let url = location;
  let offset = 0;
  for await (const chunk of rechunk(await source.open(), chunkSize)) {
    const end = offset + chunk.length - 1;
    const res = await send(target, {
      method: 'PATCH',
      path: url,
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end}`, 'content-length': String(chunk.length) },
      body: chunk,
    });
    if (res.status !== 202) throw await unexpected(res, 'PATCH');
    await res.body.dump();
    url = nextLocation(res, 'PATCH');
    offset = end + 1;
  }
  if (offset !== blob.size) throw new RegistryError(`blob ${blob.digest}: the source gave ${offset} bytes but the descriptor says ${blob.size}`);
  const res = await send(target, { method: 'PUT', path: withDigest(url, blob.digest), headers: { 'content-length': '0' } });
  await finish(target, res, blob);
}
