// One HTTP exchange over undici: scheme per host (https unless the caller says plain HTTP), TLS verification
// unless the host is marked insecure, GET/HEAD redirects followed without ever going from https to http and
// without carrying credentials to another origin. Auth and retries sit one level up, in client.ts.
// Through a forward proxy when one is given (a nydusd config's `proxy`: Range and every header pass
// through it as they are), else as HTTP_PROXY / HTTPS_PROXY / NO_PROXY say, as containerd reads them
// (Go's rules): a loopback registry is never reached through the environment's proxy.
// A proxy given with `fallback` that cannot be reached is left alone for `checkIntervalMs` and the
// request goes straight to the registry. A loopback registry asked over HTTPS that answers the
// handshake in plain HTTP is asked in plain HTTP from then on, as containerd's own resolver does.
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { Agent, EnvHttpProxyAgent, ProxyAgent } from './undici-parts.js';
import { RegistryError } from './errors.js';
import { log } from '../util/log.js';

export interface HostOptions {
  /**
   * Talk plain HTTP to this host. Inferred only for a loopback host whose TLS handshake gets a
   * plain-HTTP answer (as containerd's resolver does for localhost): that traffic never leaves the machine.
   */
  plainHttp?: boolean;
  /** HTTPS without certificate verification (still HTTPS). */
  insecure?: boolean;
  /** Sent with every request to this host (a mirror's: Dragonfly's X-Dragonfly-Registry, say). */
  headers?: Readonly<Record<string, string>>;
}

/** A forward proxy for every request (nydusd's backend `proxy`). */
export interface ProxyOptions {
  /** http://host:port */
  url: string;
  /** When the proxy cannot be reached, go to the registry directly. */
  fallback: boolean;
  /** How long an unreachable proxy is left alone before it is tried again. Default 5 s. */
  checkIntervalMs?: number;
}

export interface TransportOptions extends HostOptions {
  /** Per-host overrides of plainHttp/insecure, keyed by host[:port]. */
  hosts?: Record<string, HostOptions>;
  /** Every request through this proxy (else the environment's HTTP_PROXY / HTTPS_PROXY / NO_PROXY). */
  proxy?: ProxyOptions;
  /** A server silent this long, waiting for its headers or between two pieces of its body, is given up (a transient error). Default 30 s. */
  idleTimeoutMs?: number;
}

/** A body that can be produced again, so a request can be re-sent after a 401 or a transient failure. */
export type RequestBody = Buffer | (() => AsyncIterable<Uint8Array>);

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Aborts the exchange, its body included (a deadline set by the caller). */
  signal?: AbortSignal;
}

export type ResponseBody = Dispatcher.ResponseData['body'];

export interface HttpResponse {
  status: number;
  /** The URL that answered (after redirects). */
  url: string;
  headers: Dispatcher.ResponseData['headers'];
  body: ResponseBody;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/** First value of a response header. */
export function headerValue(res: HttpResponse, name: string): string | undefined {
  const value = res.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** The whole body, refusing more than `limit` bytes (a manifest or error body is small; a bad server is not). */
export async function readBody(res: HttpResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    total += (chunk as Buffer).length;
    if (total > limit) {
      res.body.destroy();
      throw new RegistryError(`${res.url}: response body larger than ${limit} bytes`, { url: res.url, status: res.status });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, total);
}

/**
 * A body that ended, cleanly, before all the bytes its request was answered with (a Content-Range,
 * say) had come: a broken connection or proxy, worth another try.
 */
export class BodyEndedEarlyError extends Error {
  constructor(readonly url: string, readonly got: number, readonly wanted: number) {
    super(`${url}: the response body ended after ${got} of ${wanted} bytes`);
    this.name = 'BodyEndedEarlyError';
  }
}

/**
 * The body into `out`, which it must fill exactly, reporting each piece to `progress`. A body
 * longer than `out` is an error; one that ends short of it is a BodyEndedEarlyError.
 */
export async function readBodyInto(res: HttpResponse, out: Buffer, progress?: (buf: Buffer, filled: number) => void): Promise<Buffer> {
  let filled = 0;
  for await (const piece of res.body) {
    const chunk = piece as Buffer;
    if (filled + chunk.length > out.length) {
      res.body.destroy();
      throw new RegistryError(`${res.url}: response body larger than ${out.length} bytes`, { url: res.url, status: res.status });
    }
    filled += chunk.copy(out, filled);
    progress?.(out, filled);
  }
  if (filled < out.length) throw new BodyEndedEarlyError(res.url, filled, out.length);
  return out;
}

/**
 * Up to 64 KiB of the body as text, for error messages; the rest is discarded. A body that breaks off yields
 * what arrived: distribution 2.8 answers 416 with the blob's Content-Length but a short text body, and the
 * status is what matters then.
 */
export async function readErrorText(res: HttpResponse): Promise<string> {
  const limit = 64 * 1024;
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body) {
      chunks.push(chunk as Buffer);
      total += (chunk as Buffer).length;
      if (total >= limit) break;
    }
  } catch {
    // keep the partial text
  }
  res.body.destroy();
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

/** Whether the environment names a proxy (HTTP_PROXY / HTTPS_PROXY, either case). */
const environmentProxy = (): boolean => ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].some((k) => (process.env[k] ?? '') !== '');

export class HttpTransport {
  private readonly verifyingAgent: Dispatcher;
  private insecureAgent: Dispatcher | undefined;
  /** Straight to the registry, for a proxy's fallback. */
  private directAgents: { verifying: Agent; insecure?: Agent } | undefined;
  /** undici's own defaults (300 s each) would leave a stalled registry holding a request for minutes. */
  private readonly timeouts: { headersTimeout: number; bodyTimeout: number };
  /** Until when (ms since the epoch) an unreachable proxy is left alone. */
  private proxyDownUntil = 0;
  /** Loopback hosts found to speak plain HTTP (see plainLoopback). */
  private readonly plainLoopbackHosts = new Set<string>();

  constructor(private readonly options: TransportOptions = {}) {
    const idle = options.idleTimeoutMs ?? 30_000;
    this.timeouts = { headersTimeout: idle, bodyTimeout: idle };
    this.verifyingAgent = this.dispatcher(false);
  }

  /** The dispatcher for verifying or insecure TLS: through the given proxy, the environment's, or none. */
  private dispatcher(insecure: boolean): Dispatcher {
    const tls = { timeout: 10_000, ...(insecure ? { rejectUnauthorized: false } : {}) };
    // plain HTTP goes to the proxy as it is (absolute-form, every header seen: what Dragonfly-style
    // caching proxies need); HTTPS through a CONNECT tunnel
    if (this.options.proxy) return new ProxyAgent({ uri: this.options.proxy.url, requestTls: tls, proxyTls: tls, proxyTunnel: false, ...this.timeouts });
    if (environmentProxy()) return new EnvHttpProxyAgent({ connect: tls, proxyTunnel: false, ...this.timeouts });
    return new Agent({ connect: tls, ...this.timeouts });
  }

  hostOptions(host: string): HostOptions {
    const own = this.options.hosts?.[host] ?? {};
    const plainHttp = own.plainHttp ?? this.options.plainHttp ?? false;
    return { plainHttp: plainHttp || this.plainLoopbackHosts.has(host), insecure: own.insecure ?? this.options.insecure ?? false, ...(own.headers ? { headers: own.headers } : {}) };
  }

  /**
   * Whether `url` (an HTTPS URL that failed with `err`) is a loopback registry answering TLS in plain
   * HTTP: it is then recorded as a plain-HTTP host, and asked again in plain HTTP.
   */
  private plainLoopback(url: URL, err: unknown): boolean {
    if (url.protocol !== 'https:' || !isLoopback(url.hostname) || !isPlainHttpAnswer(err)) return false;
    if (!this.plainLoopbackHosts.has(url.host)) log.info('a loopback registry answers plain HTTP: asked in plain HTTP, as containerd does', { host: url.host });
    this.plainLoopbackHosts.add(url.host);
    return true;
  }

  /** `http://host` or `https://host`, from the host options alone. */
  baseUrl(host: string): string {
    return `${this.hostOptions(host).plainHttp ? 'http' : 'https'}://${host}`;
  }

  private agentFor(url: URL): Dispatcher {
    const insecure = url.protocol === 'https:' && this.hostOptions(url.host).insecure === true;
    if (this.options.proxy && Date.now() < this.proxyDownUntil) return this.direct(insecure);
    if (!this.options.proxy && isLoopback(url.hostname) && environmentProxy()) return this.direct(insecure);
    if (insecure) {
      this.insecureAgent ??= this.dispatcher(true);
      return this.insecureAgent;
    }
    return this.verifyingAgent;
  }

  private direct(insecure: boolean): Agent {
    const tls = { timeout: 10_000, ...(insecure ? { rejectUnauthorized: false } : {}) };
    this.directAgents ??= { verifying: new Agent({ connect: { timeout: 10_000 }, ...this.timeouts }) };
    if (!insecure) return this.directAgents.verifying;
    this.directAgents.insecure ??= new Agent({ connect: tls, ...this.timeouts });
    return this.directAgents.insecure;
  }

  /** One exchange; a proxy with fallback that cannot be reached is left alone a while and the registry asked directly. */
  private async exchange(url: URL, options: Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { body?: Dispatcher.DispatchOptions['body'] }): Promise<Dispatcher.ResponseData> {
    const dispatcher = this.agentFor(url);
    try {
      return await dispatcher.request(requestOptions(url, options));
    } catch (err) {
      const proxy = this.options.proxy;
      const viaProxy = proxy !== undefined && dispatcher !== this.directAgents?.verifying && dispatcher !== this.directAgents?.insecure;
      if (!viaProxy || !proxy.fallback || (options.signal as AbortSignal | undefined)?.aborted || !isUnreachable(err)) throw err;
      this.proxyDownUntil = Date.now() + (proxy.checkIntervalMs ?? 5_000);
      return this.agentFor(url).request(requestOptions(url, options));
    }
  }

  /** Sends one request; GET and HEAD follow redirects. Any status is returned; only connection failures throw. */
  async send(req: HttpRequest): Promise<HttpResponse> {
    let url = new URL(req.url);
    // the host's own headers under the request's (never carried along a redirect to another origin)
    let headers = { ...this.hostOptions(url.host).headers, ...req.headers };
    for (let hop = 0; ; hop++) {
      const body = (): Dispatcher.DispatchOptions['body'] => (req.body === undefined || Buffer.isBuffer(req.body) ? req.body : Readable.from(req.body()));
      const res = await this.exchange(url, { method: req.method, headers, body: body(), signal: req.signal }).catch((err: unknown) => {
        if (!this.plainLoopback(url, err)) throw err;
        url = new URL(url.href.replace(/^https:/, 'http:'));
        return this.exchange(url, { method: req.method, headers, body: body(), signal: req.signal });
      });
      const location = res.headers.location;
      if (!REDIRECTS.has(res.statusCode) || (req.method !== 'GET' && req.method !== 'HEAD') || typeof location !== 'string') {
        return { status: res.statusCode, url: url.href, headers: res.headers, body: res.body };
      }
      await res.body.dump();
      if (hop >= MAX_REDIRECTS) throw new RegistryError(`${req.method} ${req.url}: more than ${MAX_REDIRECTS} redirects`, { url: req.url });
      const next = new URL(location, url);
      if (url.protocol === 'https:' && next.protocol !== 'https:') {
        throw new RegistryError(`${req.method} ${url.href}: refusing redirect from https to ${next.href}`, { url: url.href, status: res.statusCode });
      }
      if (next.origin !== url.origin) {
        // credentials for the registry must not reach the storage backend it redirects to, nor the host's own headers
        const { authorization: _dropped, ...rest } = headers;
        for (const name of Object.keys(this.hostOptions(url.host).headers ?? {})) delete rest[name];
        headers = rest;
      }
      url = next;
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.verifyingAgent.close(), this.insecureAgent?.close(), this.directAgents?.verifying.close(), this.directAgents?.insecure?.close()]);
  }
}

/** localhost, 127.0.0.0/8 or ::1: never proxied by the environment's settings. */
function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(hostname) || hostname === '[::1]' || hostname === '::1';
}

/** A TLS handshake that got a plain-HTTP answer (OpenSSL's "wrong version number"). */
const isPlainHttpAnswer = (err: unknown): boolean => hasCauseCode(err, ['ERR_SSL_WRONG_VERSION_NUMBER']);

/** A connection that could not be made (refused, unreachable, timed out connecting): what a proxy's fallback is for. */
const isUnreachable = (err: unknown): boolean =>
  hasCauseCode(err, ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

/** Whether `err` or an error in its cause chain has one of `codes`. */
function hasCauseCode(err: unknown, codes: readonly string[]): boolean {
  for (let e = err as { code?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (codes.includes(e.code ?? '')) return true;
  }
  return false;
}

/** A dispatcher's request options for `url` (what undici's top-level request() makes of a URL). */
function requestOptions(url: URL, options: Omit<Dispatcher.RequestOptions, 'origin' | 'path'>): Dispatcher.RequestOptions {
  return { ...options, origin: url.origin, path: `${url.pathname}${url.search}` };
}
