// The registry client: one per set of options, shared by every repository it opens. All requests go through
// `send` (auth: challenge → credentials or token → one retry on 401) and, when they may be repeated,
// `retrying` (bounded exponential backoff; a registry that stays down becomes RegistryUnreachableError).
import { log } from '../util/log.js';
import { Authenticator, mergeScopes } from './auth.js';
import { dockerConfigCredentials, type Credentials } from './docker-config.js';
import { AuthenticationError, describeErrorBody, RegistryError, RegistryUnreachableError, responseError } from './errors.js';
import { DOCKER_HUB, DOCKER_HUB_HOST, parseImageLocation, parseReference, type ImageReference } from './reference.js';
import { RegistryRepository } from './repository.js';
import { DEFAULT_RETRY_POLICY, isConnectionError, withRetry, type RetryPolicy } from './retry.js';
import type { RegistryRequest, RegistrySession, UploadSettings } from './request.js';
import { headerValue, HttpTransport, readErrorText, type HttpResponse, type TransportOptions } from './transport.js';

export interface RegistryClientOptions extends TransportOptions {
  /** Explicit credentials by host[:port] (`docker.io` for Docker Hub); they win over the docker config. */
  credentials?: Record<string, Credentials>;
  /** Path of a docker config.json to read credentials from; default $DOCKER_CONFIG/config.json or ~/.docker/config.json; false = none. */
  dockerConfig?: string | false;
  retry?: Partial<RetryPolicy>;
  /** Blobs larger than this are uploaded in PATCH chunks instead of one PUT. */
  chunkedUploadThreshold?: number;
  uploadChunkSize?: number;
}

const MiB = 1024 * 1024;
const requestLog = log.child({ component: 'registry' });

function isTransientStatus(status: number): boolean {
  return (status >= 500 && status !== 501) || status === 429;
}

export class RegistryClient implements RegistrySession {
  readonly retryPolicy: RetryPolicy;
  readonly upload: UploadSettings;
  private readonly transport: HttpTransport;
  private readonly auth: Authenticator;

  constructor(options: RegistryClientOptions = {}) {
    this.transport = new HttpTransport(options);
    this.retryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.upload = { chunkedThreshold: options.chunkedUploadThreshold ?? 64 * MiB, chunkSize: options.uploadChunkSize ?? 16 * MiB };
    const explicit = options.credentials ?? {};
    const dockerConfig = options.dockerConfig;
    this.auth = new Authenticator(this.transport, async (host) => {
      const given = explicit[host] ?? (host === DOCKER_HUB_HOST ? explicit[DOCKER_HUB] : undefined);
      if (given) return given;
      return dockerConfig === false ? undefined : dockerConfigCredentials(host, dockerConfig);
    });
  }

  /** A repository on its registry; a string is parsed as a reference (its tag or digest is ignored). */
  repository(reference: string | Pick<ImageReference, 'host' | 'repository'>): RegistryRepository {
    const { host, repository } = typeof reference === 'string' ? parseReference(reference) : reference;
    return new RegistryRepository(this, host, repository);
  }

  /**
   * One request with auth. 401 is handled here (or becomes AuthenticationError); 5xx and 429 throw a retryable
   * RegistryError. Credentials go to the registry's own origin only: an upload Location on another origin (a
   * storage service the registry hands the upload to) is sent to without them, as containerd does.
   */
  async send(req: RegistryRequest): Promise<HttpResponse> {
    const base = this.transport.baseUrl(req.host);
    const url = /^https?:\/\//i.test(req.path) ? req.path : base + req.path;
    if (base.startsWith('https:') && url.startsWith('http:')) {
      throw new RegistryError(`${req.host} handed out a plain-http URL (${url}) for an https registry; refusing to downgrade`, { url });
    }
    const res = new URL(url).origin === new URL(base).origin ? await this.sendAuthorized(req, url) : await this.exchange(req, url, undefined);
    if (isTransientStatus(res.status)) {
      throw responseError(req.method, url, res.status, await readErrorText(res), headerValue(res, 'retry-after'));
    }
    return res;
  }

  private async sendAuthorized(req: RegistryRequest, url: string): Promise<HttpResponse> {
    let authorization = await this.auth.authorization(req.host, req.scopes);
    const res = await this.exchange(req, url, authorization);
    if (res.status !== 401) return res;
    const detail = describeErrorBody(await readErrorText(res)).summary;
    const extra = await this.auth.unauthorized(req.host, res.headers['www-authenticate'], authorization, detail);
    authorization = await this.auth.authorization(req.host, mergeScopes(req.scopes, extra));
    const retried = await this.exchange(req, url, authorization);
    if (retried.status !== 401) return retried;
    const { code, summary } = describeErrorBody(await readErrorText(retried));
    this.auth.forget(req.host, authorization);
    const anonymous = (await this.auth.credentials(req.host)) === undefined ? ` (no credentials are configured for ${req.host})` : '';
    throw new AuthenticationError(`authentication failed for ${req.host}: 401 ${summary}${anonymous}`, { status: 401, code, url });
  }

  private async exchange(req: RegistryRequest, url: string, authorization: string | undefined): Promise<HttpResponse> {
    const headers = { ...req.headers, ...(authorization !== undefined && { authorization }) };
    const started = performance.now();
    let res: HttpResponse;
    try {
      res = await this.transport.send({ method: req.method, url, headers, ...(req.body !== undefined && { body: req.body }), signal: req.signal });
    } catch (err) {
      // connection errors stay as they are (retry.ts classifies them); others, e.g. TLS failures, get the URL
      if (err instanceof RegistryError || isConnectionError(err)) throw err;
      // OpenSSL's text for this one is a wall of internals; it means an http server on an https URL
      const reason =
        (err as { code?: unknown }).code === 'ERR_SSL_WRONG_VERSION_NUMBER'
          ? `TLS handshake failed: ${req.host} does not speak TLS (a plain-HTTP registry must be named as one; only a loopback one is asked in plain HTTP by itself)`
          : (err as Error).message;
      throw new RegistryError(`${req.method} ${url}: ${reason}`, { url, cause: err });
    }
    requestLog.debug('request', { method: req.method, url, status: res.status, ms: Math.round(performance.now() - started) });
    return res;
  }

  /**
   * Runs `attempt` under the retry policy (once only when `repeatable` is false, e.g. a one-shot stream).
   * What still fails is reported against `host`: unreachable after N attempts, or the last registry error.
   */
  retrying<T>(host: string, what: string, attempt: () => Promise<T>, repeatable = true): Promise<T> {
    const policy = repeatable ? this.retryPolicy : { ...this.retryPolicy, attempts: 1 };
    return withRetry(policy, what, attempt, (err, attempts) => {
      const tries = `(${attempts} attempt${attempts === 1 ? '' : 's'})`;
      if (isConnectionError(err)) {
        return new RegistryUnreachableError(`registry ${host} unreachable: ${(err as Error).message} ${tries}`, { cause: err });
      }
      const last = err as RegistryError;
      return new RegistryError(`${last.message} ${tries}`, { status: last.status, code: last.code, url: last.url, cause: err });
    });
  }

  /**
   * Opens `count` connections to `host` now (each a GET of the API root, its answer dropped), so
   * that the requests about to go out at once (a pull's footer reads, say) find them open instead of
   * each waiting a round trip for its own TCP (and TLS) handshake. Never fails.
   */
  async preconnect(host: string, count: number): Promise<void> {
    const url = `${this.transport.baseUrl(host)}/v2/`;
    await Promise.all(Array.from({ length: count }, async () => {
      try {
        await (await this.transport.send({ method: 'GET', url })).body.dump();
      } catch {
        // a connection not opened now is opened by the request that needs it
      }
    }));
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}

/**
 * A registry client for the hosts of `refs` (each with its own --*-insecure flag): plain HTTP when asked
 * (--plain-http), else only to a loopback registry that answers TLS in plain HTTP (transport.ts). Asked,
 * it holds for every host the client talks to, token realms included: the flag is what allows a
 * password to travel to an http realm.
 */
export function clientForReferences(refs: [string, boolean | undefined][], plainHttp: boolean | undefined, retries = 3): RegistryClient {
  const hosts: Record<string, { insecure?: boolean }> = {};
  for (const [ref, insecure] of refs) {
    const loc = parseImageLocation(ref);
    if (loc.kind === 'registry' && insecure) hosts[loc.host] = { insecure: true };
  }
  return new RegistryClient({ hosts, ...(plainHttp && { plainHttp: true }), retry: { attempts: retries + 1 } });
}
