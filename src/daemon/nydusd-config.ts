// Upstream nydusd's configuration, as users and nydus-snapshotter write it, read into ours: the v1
// layout (`device.backend` / `device.cache`, `mode`, `digest_validate`, `fs_prefetch`, `amplify_io`)
// and the v2 one (`version = 2`, `backend`, `cache`, `rafs`). What has a meaning here is taken with
// that meaning; a key that changes nothing here (metadata mode, xattr switch, statistics, thread
// counts, TLS client files, proxies) is listed in `ignored`, for the caller to report once; a value
// that would make us do something other than what it asks (a backend or cache kind we do not have,
// a blob file instead of a directory) is a ConfigError. Digest validation stays on whatever the
// config says: we never serve unverified bytes.
import { ConfigError } from './config-error.js';
import { mirrorHeaders } from './mirror-headers.js';

type Json = Record<string, unknown>;

/** Where blobs come from, when the config says: a registry repository's blobs, or a local directory. */
export type NydusdBackend =
  | { type: 'registry'; host?: string; repo?: string }
  | { type: 'localfs'; dir: string };

/** Our config's JSON (config.ts checks it), with the parts of theirs that have no key of ours. */
interface Ours {
  cacheDir?: string;
  blobDir?: string;
  blobRepository?: string;
  fetchTimeout?: number;
  registry: {
    plainHttp?: boolean; insecure?: boolean; retries?: number; mirrors?: { host: string; plainHttp: boolean; headers?: Record<string, string> }[];
    auth?: { host?: string } & ({ username: string; password: string } | { registryToken: string });
    proxy?: { url: string; fallback: boolean; checkIntervalMs?: number };
    mirrorFailureLimit?: number;
    mirrorRecheckMs?: number;
  };
  prefetch: { enable?: boolean; all?: boolean; bandwidth?: number };
  fetch: { amplify?: number };
}

export interface NydusdConfig {
  /** The config in our terms, for parseDaemonConfig. */
  ours: Ours;
  backend?: NydusdBackend;
  /** Keys that change nothing here, as dotted paths. */
  ignored: string[];
}

/** Whether a parsed config is upstream nydusd's rather than ours. */
export function isNydusdConfig(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return 'device' in value || (value as Json).version === 2 || isBlobCacheEntry(value as Json);
}

/**
 * An entry of nydusd's blob cache (fscache) mode: `type` bootstrap or blob, with the daemon config
 * it is served by under `config` or `config_v2`. Upstream ships such files beside daemon configs.
 */
const isBlobCacheEntry = (o: Json): boolean => (o.type === 'bootstrap' || o.type === 'blob') && ('config' in o || 'config_v2' in o);

/** A v1 or v2 nydusd config in our terms (`where` names it in errors). */
export function nydusdToOurs(value: unknown, where = 'config'): NydusdConfig {
  const reader = new Reader(where);
  const o = reader.object(value, '');
  if (isBlobCacheEntry(o)) {
    throw new ConfigError(`${where}: a blob cache entry of nydusd's fscache mode (type "${String(o.type)}"), not a daemon config: `
      + 'fscache is not served here (this kernel has no erofs over fscache); give the daemon a FUSE config (device.backend / backend)');
  }
  return o.version === 2 ? reader.v2(o) : reader.v1(o);
}

class Reader {
  readonly ignored: string[] = [];
  private readonly config: Ours = { registry: {}, prefetch: {}, fetch: {} };
  private backend: NydusdBackend | undefined;

  constructor(private readonly where: string) {}

  v1(o: Json): NydusdConfig {
    this.take(o, '', {
      device: (d) => this.take(this.object(d, 'device'), 'device', {
        backend: (b) => this.backendOf(this.object(b, 'device.backend'), 'device.backend', 'config'),
        cache: (c) => this.cacheOf(this.object(c, 'device.cache'), 'device.cache', 'config'),
      }),
      fs_prefetch: (p) => this.prefetchOf(this.object(p, 'fs_prefetch'), 'fs_prefetch'),
      amplify_io: (a) => (this.config.fetch.amplify = Math.round(this.num(a, 'amplify_io', 0, 64 << 20))),
    });
    return this.done();
  }

  v2(o: Json): NydusdConfig {
    this.take(o, '', {
      version: () => undefined,
      backend: (b) => this.backendOf(this.object(b, 'backend'), 'backend', undefined),
      cache: (c) => this.cacheOf(this.object(c, 'cache'), 'cache', undefined),
      rafs: (r) => this.take(this.object(r, 'rafs'), 'rafs', {
        batch_size: (a) => (this.config.fetch.amplify = Math.round(this.num(a, 'rafs.batch_size', 0, 64 << 20))),
        prefetch: (p) => this.prefetchOf(this.object(p, 'rafs.prefetch'), 'rafs.prefetch'),
      }),
    });
    return this.done();
  }

  private done(): NydusdConfig {
    if (this.backend?.type === 'localfs') this.config.blobDir = this.backend.dir;
    return { ours: this.config, ...(this.backend ? { backend: this.backend } : {}), ignored: this.ignored };
  }

  /**
   * The backend: v1 has its settings under `config`, v2 under a key named for its type (`settings`
   * undefined). Only registry and localfs exist here.
   */
  private backendOf(b: Json, path: string, settings: string | undefined): void {
    const type = this.str(b.type, `${path}.type`);
    const key = settings ?? type;
    this.take(b, path, {
      type: () => undefined,
      [key]: (c) => {
        const at = `${path}.${key}`;
        if (type === 'registry') this.registryOf(this.object(c, at), at);
        else if (type === 'localfs') this.localfsOf(this.object(c, at), at);
      },
    }, (k) => settings === undefined && ['registry', 'localfs', 'oss', 's3', 'http-proxy'].includes(k));
    if (type !== 'registry' && type !== 'localfs') throw this.error(`${path}.type`, `backend "${type}" is not one this daemon has (registry or localfs)`);
    if (type === 'registry') this.backend ??= { type: 'registry' };
    if (type === 'localfs' && this.backend?.type !== 'localfs') throw this.error(path, 'a localfs backend needs its dir');
  }

  private registryOf(c: Json, path: string): void {
    const backend: NydusdBackend & { type: 'registry' } = { type: 'registry' };
    const r = this.config.registry;
    let token: string | undefined;
    this.take(c, path, {
      scheme: (s) => {
        const scheme = this.str(s, `${path}.scheme`);
        if (scheme !== 'http' && scheme !== 'https') throw this.error(`${path}.scheme`, 'expected "http" or "https"');
        r.plainHttp = scheme === 'http';
      },
      host: (h) => (backend.host = this.str(h, `${path}.host`)),
      repo: (v) => (backend.repo = this.str(v, `${path}.repo`)),
      skip_verify: (v) => (r.insecure = this.bool(v, `${path}.skip_verify`)),
      timeout: (v) => (this.config.fetchTimeout = this.num(v, `${path}.timeout`, 0.001, 3600)),
      retry_limit: (v) => (r.retries = Math.round(this.num(v, `${path}.retry_limit`, 0, 20))),
      mirrors: (m) => (r.mirrors = this.list(m, `${path}.mirrors`).map((x, i) => this.mirrorOf(this.object(x, `${path}.mirrors[${i}]`), `${path}.mirrors[${i}]`))),
      auth: (a) => (r.auth = this.credentials(this.str(a, `${path}.auth`), `${path}.auth`)),
      // a token given is what nydusd sends: it wins over auth
      registry_token: (t) => (token = this.str(t, `${path}.registry_token`)),
      proxy: (p) => (r.proxy = this.proxyOf(this.object(p, `${path}.proxy`), `${path}.proxy`)),
    });
    if (token !== undefined) r.auth = { registryToken: token };
    if (r.auth && backend.host) r.auth.host = backend.host;
    // nydus-snapshotter names the image's repository here: a local bootstrap's blobs are read from it
    if (backend.host && backend.repo) this.config.blobRepository = `${backend.host}/${backend.repo}`;
    this.backend = backend;
  }

  /** nydusd's proxy: its url (scheme optional, as in its samples), fallback and check interval; ping_url and use_http change nothing here. */
  private proxyOf(p: Json, path: string): { url: string; fallback: boolean; checkIntervalMs?: number } | undefined {
    let url: string | undefined;
    let fallback = false;
    let checkIntervalMs: number | undefined;
    this.take(p, path, {
      url: (u) => {
        if (u === '') return;
        const given = this.str(u, `${path}.url`);
        url = /^https?:\/\//.test(given) ? given : `http://${given}`;
        if (!/^https?:\/\/[^/\s]+\/?$/.test(url)) throw this.error(`${path}.url`, `expected host:port or http://host:port, not ${JSON.stringify(given)}`);
      },
      fallback: (f) => (fallback = this.bool(f, `${path}.fallback`)),
      check_interval: (c) => (checkIntervalMs = Math.round(this.num(c, `${path}.check_interval`, 0, 3600) * 1000)),
    });
    // an empty url is nydusd's "no proxy"
    return url === undefined ? undefined : { url, fallback, ...(checkIntervalMs === undefined ? {} : { checkIntervalMs }) };
  }

  /** `auth`: base64 of user:password, as in a docker config. */
  private credentials(auth: string, path: string): { username: string; password: string } {
    const text = Buffer.from(auth, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon <= 0) throw this.error(path, 'expected base64 of user:password');
    return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  }

  private mirrorOf(m: Json, path: string): { host: string; plainHttp: boolean; headers?: Record<string, string> } {
    let mirror: { host: string; plainHttp: boolean } | undefined;
    let headers: Record<string, string> | undefined;
    this.take(m, path, {
      headers: (h) => (headers = mirrorHeaders(h, `${this.where}.${path}.headers`)),
      host: (h) => {
        const url = this.str(h, `${path}.host`);
        // upstream names a mirror by URL; ours by host[:port] and whether it speaks plain HTTP
        const match = /^(https?):\/\/([^/]+)\/?$/.exec(url);
        if (!match) throw this.error(`${path}.host`, `expected a URL such as http://127.0.0.1:65001, not ${JSON.stringify(url)}`);
        mirror = { host: match[2]!, plainHttp: match[1] === 'http' };
      },
      // nydusd keeps these per mirror; here one rule serves all mirrors: the strictest given wins
      failure_limit: (f) => {
        const limit = Math.round(this.num(f, `${path}.failure_limit`, 1, 1000));
        this.config.registry.mirrorFailureLimit = Math.min(this.config.registry.mirrorFailureLimit ?? limit, limit);
      },
      health_check_interval: (i) => {
        const ms = Math.round(this.num(i, `${path}.health_check_interval`, 0, 3600) * 1000);
        this.config.registry.mirrorRecheckMs = Math.min(this.config.registry.mirrorRecheckMs ?? ms, ms);
      },
    });
    if (!mirror) throw this.error(`${path}.host`, 'a mirror needs its host');
    return headers ? { ...mirror, headers } : mirror;
  }

  /**
   * A localfs backend: the directory of blobs named by their ids. nydusd's blob_file (one file for
   * a single-blob image) is not served; beside a dir, the blobs are read from the dir instead (each
   * chunk is checked against its digest all the same, so a blob that is not there is an error,
   * never other bytes), which is reported.
   */
  private localfsOf(c: Json, path: string): void {
    let dir: string | undefined;
    let blobFile = false;
    this.take(c, path, {
      dir: (d) => (dir = this.str(d, `${path}.dir`)),
      blob_file: (f) => (blobFile = this.str(f, `${path}.blob_file`) !== ''),
    });
    if (dir === undefined) {
      throw this.error(blobFile ? `${path}.blob_file` : path, blobFile ? 'one blob file is not served here: give dir, the directory of blobs named by their ids' : 'a localfs backend needs its dir');
    }
    if (blobFile) this.ignored.push(`${path}.blob_file (the blobs are read from dir, by their ids)`);
    this.backend = { type: 'localfs', dir };
  }

  private cacheOf(c: Json, path: string, settings: string | undefined): void {
    const type = c.type === undefined || c.type === '' ? 'blobcache' : this.str(c.type, `${path}.type`);
    if (type !== 'blobcache' && type !== 'filecache') throw this.error(`${path}.type`, `cache "${type}" is not one this daemon has (blobcache, filecache)`);
    const key = settings ?? type;
    this.take(c, path, {
      type: () => undefined,
      [key]: (s) => this.fileCacheOf(this.object(s, `${path}.${key}`), `${path}.${key}`),
      prefetch: (p) => this.prefetchOf(this.object(p, `${path}.prefetch`), `${path}.prefetch`),
    }, (k) => settings === undefined && ['blobcache', 'filecache', 'fscache'].includes(k));
  }

  /**
   * The cache's own settings (nydusd's FileCacheConfig): its directory, and whether its files are
   * encrypted at rest. They would be in the clear here, which is not what was asked for: refused.
   * (Upstream reads the encryption keys here only; its v2 sample also has them a level up, where
   * they change nothing, and are reported as ignored like any such key.)
   */
  private fileCacheOf(s: Json, path: string): void {
    this.take(s, path, {
      work_dir: (w) => (this.config.cacheDir = this.str(w, `${path}.work_dir`)),
      enable_encryption: (e) => {
        if (this.bool(e, `${path}.enable_encryption`)) throw this.error(`${path}.enable_encryption`, 'an encrypted cache is not kept here: the cache files would hold the chunks in the clear');
      },
    }, (k) => k === 'enable_convergent_encryption' || k === 'encryption_key');
  }

  private prefetchOf(p: Json, path: string): void {
    this.take(p, path, {
      enable: (e) => (this.config.prefetch.enable = this.bool(e, `${path}.enable`)),
      prefetch_all: (a) => (this.config.prefetch.all = this.bool(a, `${path}.prefetch_all`)),
      bandwidth_rate: (b) => (this.config.prefetch.bandwidth = Math.round(this.num(b, `${path}.bandwidth_rate`, 0, 2 ** 40))),
      bandwidth_limit: (b) => (this.config.prefetch.bandwidth = Math.round(this.num(b, `${path}.bandwidth_limit`, 0, 2 ** 40))),
    });
  }

  /**
   * Applies `handlers` to the keys of `o` that have one; every other key is recorded as ignored
   * (with `skip`: left alone, the settings of kinds not chosen).
   */
  private take(o: Json, path: string, handlers: Record<string, (value: unknown) => unknown>, skip: (key: string) => boolean = () => false): void {
    for (const [k, v] of Object.entries(o)) {
      if (Object.hasOwn(handlers, k)) handlers[k]!(v);
      else if (!skip(k)) this.ignored.push(path === '' ? k : `${path}.${k}`);
    }
  }

  object(value: unknown, path: string): Json {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw this.error(path, 'expected an object');
    return value as Json;
  }

  private list(value: unknown, path: string): unknown[] {
    if (!Array.isArray(value)) throw this.error(path, 'expected a list');
    return value;
  }

  private str(value: unknown, path: string): string {
    if (typeof value !== 'string' || value === '' || value.includes('\0')) throw this.error(path, 'expected a non-empty string');
    return value;
  }

  private bool(value: unknown, path: string): boolean {
    if (typeof value !== 'boolean') throw this.error(path, 'expected true or false');
    return value;
  }

  private num(value: unknown, path: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) throw this.error(path, `expected a number from ${min} to ${max}`);
    return value;
  }

  private error(path: string, message: string): ConfigError {
    return new ConfigError(`${this.where}${path === '' ? '' : `.${path}`}: ${message}`);
  }
}
