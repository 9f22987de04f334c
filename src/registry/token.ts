// Bearer tokens from a registry's token server (the realm of its WWW-Authenticate challenge), the way
// containerd gets them: with credentials, the OAuth2 POST form (grant_type=password, or refresh_token for an
// identity token), falling back to the docker token GET with Basic auth when the realm does not take the form;
// without credentials, an anonymous GET.
import type { Credentials } from './docker-config.js';
import { AuthenticationError, describeErrorBody, parseRetryAfter, RegistryError } from './errors.js';
import { headerValue, readBody, readErrorText, type HttpResponse, type HttpTransport } from './transport.js';

export interface BearerRealm {
  realm: string;
  service?: string;
}

export interface Token {
  token: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

/** The spec's default lifetime when the server does not say. */
const DEFAULT_EXPIRES_IN_S = 60;
const CLIENT_ID = 'nydusify-ts';
/** Statuses after which containerd retries a failed OAuth2 POST as a GET. */
const POST_FALLBACK_STATUSES = new Set([400, 401, 404, 405]);

interface TokenResponse {
  token?: unknown;
  access_token?: unknown;
  expires_in?: unknown;
  issued_at?: unknown;
}

async function exchange(transport: HttpTransport, realm: string, req: Parameters<HttpTransport['send']>[0]): Promise<HttpResponse> {
  try {
    return await transport.send(req);
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    // say it was the token server, not the registry, and keep the code so connection errors stay retryable
    throw Object.assign(new Error(`token server ${realm}: ${(err as Error).message}`, { cause: err }), { code: (err as { code?: unknown }).code });
  }
}

async function parseToken(res: HttpResponse, host: string, realm: string, now: number): Promise<Token> {
  let body: TokenResponse;
  try {
    body = JSON.parse((await readBody(res, 1024 * 1024)).toString('utf8')) as TokenResponse;
  } catch (err) {
    throw new AuthenticationError(`token server ${realm} for ${host} answered 200 without a JSON body: ${(err as Error).message}`, { url: realm, cause: err });
  }
  const token = typeof body.access_token === 'string' && body.access_token ? body.access_token : body.token;
  if (typeof token !== 'string' || token === '') throw new AuthenticationError(`token server ${realm} for ${host} answered without a token`, { url: realm });
  const expiresIn = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_EXPIRES_IN_S;
  const issued = typeof body.issued_at === 'string' ? Date.parse(body.issued_at) : NaN;
  // the server's clock may differ from ours; trust issued_at only when it is not in our future
  const start = Number.isNaN(issued) || issued > now ? now : issued;
  return { token, expiresAt: start + expiresIn * 1000 };
}

async function failure(res: HttpResponse, host: string, realm: string): Promise<RegistryError> {
  const { summary, code } = describeErrorBody(await readErrorText(res));
  const detail = `token server ${realm} answered ${res.status}${summary ? `: ${summary}` : ''}`;
  if (res.status >= 500 || res.status === 429) {
    return new RegistryError(`${host}: ${detail}`, { status: res.status, code, url: realm, retryAfterMs: parseRetryAfter(headerValue(res, 'retry-after')) });
  }
  return new AuthenticationError(`authentication failed for ${host}: ${detail}`, { status: res.status, code, url: realm });
}

/**
 * Throws unless credentials for `host` may go to `realm`: over TLS, or over plain HTTP only from a registry
 * that is itself plain HTTP, to a host the caller declared plain-HTTP. A hostile or misconfigured registry
 * must not be able to send its users' password over the wire in clear text by naming an http realm.
 */
function checkRealmTakesCredentials(transport: HttpTransport, host: string, realm: string): void {
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new AuthenticationError(`${host} names token realm "${realm}", which is not a URL`, { url: realm });
  }
  if (url.protocol === 'https:') return;
  const refuse = (why: string) => new AuthenticationError(`${host}: refusing to send credentials to token realm ${realm}: ${why}`, { url: realm });
  if (url.protocol !== 'http:') throw refuse('not an http(s) URL');
  if (!transport.hostOptions(host).plainHttp) throw refuse('plain HTTP from an HTTPS registry');
  if (!transport.hostOptions(url.host).plainHttp) throw refuse(`plain HTTP to ${url.host}, which is not a plain-HTTP host of this client`);
}

/** Fetches a token for `scopes` from `realm`; `host` (the registry) is only for messages. */
export async function fetchToken(
  transport: HttpTransport,
  host: string,
  { realm, service }: BearerRealm,
  scopes: string[],
  credentials: Credentials | undefined,
  now = Date.now,
): Promise<Token> {
  const { username, password, identityToken } = credentials ?? {};
  const basic = username !== undefined && password !== undefined ? { username, password } : undefined;
  if (identityToken !== undefined || basic) {
    checkRealmTakesCredentials(transport, host, realm);
    const form = new URLSearchParams({ client_id: CLIENT_ID });
    if (service) form.set('service', service);
    if (scopes.length) form.set('scope', scopes.join(' '));
    if (identityToken !== undefined) {
      form.set('grant_type', 'refresh_token');
      form.set('refresh_token', identityToken);
    } else if (basic) {
      form.set('grant_type', 'password');
      form.set('username', basic.username);
      form.set('password', basic.password);
    }
    const res = await exchange(transport, realm, {
      method: 'POST',
      url: realm,
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body: Buffer.from(form.toString()),
    });
    if (res.status === 200) return parseToken(res, host, realm, now());
    // an identity token only works with the form; a username and password also work with the GET
    if (identityToken !== undefined || !POST_FALLBACK_STATUSES.has(res.status)) throw await failure(res, host, realm);
    await res.body.dump();
  }

  const url = new URL(realm);
  if (service) url.searchParams.set('service', service);
  for (const scope of scopes) url.searchParams.append('scope', scope);
  const headers: Record<string, string> = {};
  if (basic) headers.authorization = `Basic ${Buffer.from(`${basic.username}:${basic.password}`).toString('base64')}`;
  const res = await exchange(transport, realm, { method: 'GET', url: url.href, headers });
  if (res.status === 200) return parseToken(res, host, realm, now());
  throw await failure(res, host, realm);
}
