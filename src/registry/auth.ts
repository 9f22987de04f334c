// Who may do what: per registry host, the scheme its last challenge asked for (Basic, or Bearer with a token
// realm) and a cache of bearer tokens by the scopes they were issued for. Requests ask `authorization()` for
// a header before going out; a 401 goes to `unauthorized()`, which learns the challenge, forgets a token the
// registry no longer accepts (expired, revoked) and lets the caller retry once.
import { parseChallenges } from './challenge.js';
import type { Credentials } from './docker-config.js';
import { AuthenticationError } from './errors.js';
import { fetchToken, type BearerRealm, type Token } from './token.js';
import type { HttpTransport } from './transport.js';

export type CredentialLookup = (host: string) => Promise<Credentials | undefined>;

export type Action = 'pull' | 'push';

/** `repository:NAME:pull` or `repository:NAME:pull,push`. */
export function repositoryScope(repository: string, actions: readonly Action[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}

/** Resource (`repository:NAME`) → actions, from a list of scopes. */
function scopeMap(scopes: readonly string[]): Map<string, Set<string>> {
  const map = new Map<string, Set<string>>();
  for (const scope of scopes) {
    const last = scope.lastIndexOf(':');
    const resource = last > 0 ? scope.slice(0, last) : scope;
    const actions = last > 0 ? scope.slice(last + 1).split(',') : [];
    const set = map.get(resource) ?? new Set<string>();
    for (const action of actions) set.add(action);
    map.set(resource, set);
  }
  return map;
}

/** Sorted, merged scope strings: the cache key and what is sent to the token server. */
export function mergeScopes(...lists: (readonly string[])[]): string[] {
  return [...scopeMap(lists.flat())].map(([resource, actions]) => (actions.size ? `${resource}:${[...actions].sort().join(',')}` : resource)).sort();
}

function covers(granted: Map<string, Set<string>>, wanted: readonly string[]): boolean {
  for (const [resource, actions] of scopeMap(wanted)) {
    const have = granted.get(resource);
    if (!have) return false;
    for (const action of actions) if (!have.has(action)) return false;
  }
  return true;
}

type HostScheme = { scheme: 'basic' } | ({ scheme: 'bearer' } & BearerRealm);

interface CachedToken extends Token {
  scopes: Map<string, Set<string>>;
}

/** A token is renewed this long before the expiry the server announced. */
const EXPIRY_MARGIN_MS = 5_000;

function basicHeader(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username ?? ''}:${credentials.password ?? ''}`).toString('base64')}`;
}

export class Authenticator {
  private readonly schemes = new Map<string, HostScheme>();
  private readonly tokens = new Map<string, CachedToken[]>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();
  private readonly credentialCache = new Map<string, Promise<Credentials | undefined>>();

  constructor(
    private readonly transport: HttpTransport,
    private readonly lookup: CredentialLookup,
    private readonly now: () => number = Date.now,
  ) {}

  credentials(host: string): Promise<Credentials | undefined> {
    let found = this.credentialCache.get(host);
    if (!found) {
      found = this.lookup(host);
      this.credentialCache.set(host, found);
    }
    return found;
  }

  /** The Authorization header for a request to `host` needing `scopes`, or undefined while the host has not challenged us. */
  async authorization(host: string, scopes: readonly string[]): Promise<string | undefined> {
    const given = (await this.credentials(host))?.registryToken;
    if (given !== undefined) return `Bearer ${given}`;
    const scheme = this.schemes.get(host);
    if (!scheme) return undefined;
    if (scheme.scheme === 'basic') {
      const credentials = await this.credentials(host);
      return credentials ? basicHeader(credentials) : undefined;
    }
    return `Bearer ${(await this.token(host, scheme, scopes)).token}`;
  }

  private async token(host: string, realm: BearerRealm, scopes: readonly string[]): Promise<CachedToken> {
    const now = this.now();
    const cached = (this.tokens.get(host) ?? []).find((t) => t.expiresAt - EXPIRY_MARGIN_MS > now && covers(t.scopes, scopes));
    if (cached) return cached;
    const wanted = mergeScopes(scopes);
    const key = `${host} ${wanted.join(' ')}`;
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = (async () => {
        const token = await fetchToken(this.transport, host, realm, wanted, await this.credentials(host), this.now);
        const entry: CachedToken = { ...token, scopes: scopeMap(wanted) };
        const live = (this.tokens.get(host) ?? []).filter((t) => t.expiresAt - EXPIRY_MARGIN_MS > this.now());
        this.tokens.set(host, [...live, entry]);
        return entry;
      })().finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  /** Drops the bearer token behind `authorization` (if it was one), so the next request fetches a fresh one. */
  forget(host: string, authorization: string | undefined): void {
    if (!authorization?.startsWith('Bearer ')) return;
    const token = authorization.slice('Bearer '.length);
    this.tokens.set(host, (this.tokens.get(host) ?? []).filter((t) => t.token !== token));
  }

  /**
   * Learns from a 401 sent for a request that carried `sent` (its Authorization header, if any). Returns the
   * scopes the challenge asked for, to add to the retry; throws AuthenticationError when retrying cannot help.
   * `detail` is the registry's error text, for the message.
   */
  async unauthorized(host: string, wwwAuthenticate: string | string[] | undefined, sent: string | undefined, detail: string): Promise<string[]> {
    const challenges = parseChallenges(wwwAuthenticate);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer) {
      const realm = bearer.params.realm;
      if (!realm) throw new AuthenticationError(`${host} sent a Bearer challenge without a realm`);
      this.schemes.set(host, { scheme: 'bearer', realm, ...(bearer.params.service !== undefined && { service: bearer.params.service }) });
      this.forget(host, sent);
      return bearer.params.scope ? bearer.params.scope.split(' ').filter(Boolean) : [];
    }
    if (basic) {
      const credentials = await this.credentials(host);
      if (!credentials || credentials.password === undefined) {
        throw new AuthenticationError(`authentication required by ${host} (Basic) and no username/password is configured for it`, { status: 401 });
      }
      if (sent?.startsWith('Basic ')) throw new AuthenticationError(`authentication failed for ${host}: 401 ${detail}`, { status: 401 });
      this.schemes.set(host, { scheme: 'basic' });
      return [];
    }
    const offered = challenges.map((c) => c.scheme).join(', ') || 'no WWW-Authenticate challenge';
    throw new AuthenticationError(`${host} answered 401 with no supported challenge (${offered}): ${detail}`, { status: 401 });
  }
}
