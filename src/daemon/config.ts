// The one configuration shape of the daemon (and of `mount`, which starts daemons): JSON, checked
// once when loaded, so everything past this file can trust it. Unknown keys are errors: a typo in
// a config file should not silently mean "default".
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import type { RegistryAccess, RegistryMirror } from '../image/remote.js';
import { InvalidReferenceError, parseReference } from '../registry/reference.js';
import { log } from '../util/log.js';
import { ConfigError } from './config-error.js';
import { isNydusdConfig, nydusdToOurs } from './nydusd-config.js';
import { mirrorHeaders } from './mirror-headers.js';

/** Where the blob cache lives unless the config says otherwise. */
export const DEFAULT_CACHE_DIR = '/var/lib/nydusify-ts/cache';

export interface DaemonConfig {
  cacheDir: string;
  /** A cache directory (same layout) read on a miss before the backend, never written. */
  fallbackCacheDir?: string;
  /** FUSE serving threads. */
  threads: number;
  /**
   * The kernel's readahead on the FUSE mount, KiB. Unset: 1024, but 0 for a dedicated mount of an
   * optimized image (its hot region holds the pages a start touches, at a small chunk size: reading
   * ahead around each fault would fetch the cold chunks next to them).
   */
  kernelReadaheadKb?: number;
  /** Seconds a read waits for the backend before it fails with EIO. */
  fetchTimeout: number;
  registry: {
    plainHttp: boolean; insecure: boolean; retries: number; mirrors: RegistryMirror[]; auth?: RegistryAccess['auth']; proxy?: RegistryAccess['proxy'];
    /** A mirror failing this many reads in a row is asked after the others for mirrorRecheckMs (blob-sources.ts). */
    mirrorFailureLimit?: number;
    mirrorRecheckMs?: number;
  };
  /** Where a local bootstrap's blobs are when a mount names none (a nydusd config's localfs backend). */
  blobDir?: string;
  /**
   * Else, the registry repository (`host[:port]/repo`) a local bootstrap's blobs are read from,
   * lazily through the cache (a nydusd config's registry backend with host and repo).
   */
  blobRepository?: string;
  prefetch: {
    /** Mounts fetch their prefetch list unless a mount says otherwise (a nydusd config's fs_prefetch.enable). */
    enable: boolean;
    /** Bytes per second prefetch may fetch (0: no limit). On-demand reads are never limited. */
    bandwidth: number;
    /** After the prefetch list, fetch every chunk of every blob in the background. */
    all: boolean;
  };
  fetch: {
    /** A miss's request grows with the blob's next missing chunks toward this many bytes (0: off). */
    amplify: number;
    /** Largest readahead window after misses that go forward through a blob (0: no readahead). */
    readahead: number;
    /** Stream an optimized image's hot region into the cache as soon as it is mounted. */
    hotRegion: boolean;
    /** Put the hot region's pages into the kernel's page cache as they arrive (hot-pages.ts). */
    hotPages: boolean;
    /** Most uncompressed bytes of an executable fetched in the background as its start begins (exec-prefetch.ts; 0: off). */
    execPrefetch: number;
    /** Programs whose start is smaller are left to their faults (their libraries are still found ahead). */
    execPrefetchMin: number;
  };
}

export const DEFAULT_CONFIG: DaemonConfig = {
  cacheDir: DEFAULT_CACHE_DIR,
  threads: 2,
  fetchTimeout: 30,
  registry: { plainHttp: false, insecure: false, retries: 3, mirrors: [] },
  prefetch: { enable: false, bandwidth: 0, all: false },
  fetch: { amplify: 1 << 20, readahead: 0, hotRegion: true, hotPages: true, execPrefetch: 64 << 20, execPrefetchMin: 8 << 20 },
};

/** What to mount: a registry image (lazily, through the cache), or local bootstrap + blob files. */
export interface MountSpec {
  target?: string;
  bootstrap?: string;
  blobDir?: string;
  /** Else the registry repository (`host[:port]/repo`) the bootstrap's blobs are read from (a nydusd mount request's config). */
  blobRepository?: string;
  /** Fetch the image's prefetch list (and with prefetch.all, everything) in the background. */
  prefetch?: boolean;
  /** Absolute paths fetched in the background instead of the image's prefetch list (nydusd's prefetch_files). */
  prefetchFiles?: string[];
  /**
   * Absolute paths fetched as the image is mounted, beside its hot region if it has one: a
   * snapshotter names the files a container runtime reads as it makes a container (its user and
   * group lookups), which come before anything of the image runs.
   */
  runtimeFiles?: string[];
  /** os/arch[/variant] to mount from a multi-platform image (default linux/amd64). */
  platform?: string;
  /** Per-image overrides of the daemon's registry settings. */
  plainHttp?: boolean;
  insecure?: boolean;
  /** Credentials for the target's registry (a snapshotter's pull secret), over the daemon's own. */
  auth?: { username: string; password: string };
  /** Mirrors of the target's registry (a snapshotter's hosts.toml), tried before the daemon's own. */
  mirrors?: RegistryMirror[];
  /**
   * A stargz-family image only: serve its layers up to and including this one (a layer digest), the
   * tree a snapshotter's chain ending in that layer must show.
   */
  upToLayer?: string;
  /** Write the image's access trace (trace/access-trace.ts) to this file when it is unmounted or the daemon stops. */
  trace?: string;
}

export { ConfigError };

type Json = Record<string, unknown>;

function object(value: unknown, where: string, keys: readonly string[]): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${where}: expected an object`);
  for (const k of Object.keys(value)) if (!keys.includes(k)) throw new ConfigError(`${where}: unknown key "${k}" (known: ${keys.join(', ')})`);
  return value as Json;
}

function str(o: Json, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '' || v.includes('\0')) throw new ConfigError(`${where}.${key}: expected a non-empty string`);
  return v;
}

function bool(o: Json, key: string, where: string): boolean | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new ConfigError(`${where}.${key}: expected true or false`);
  return v;
}

function num(o: Json, key: string, where: string, min: number, max: number, integer = false): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new ConfigError(`${where}.${key}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
  }
  return v;
}

function registryAuth(value: unknown, where: string): NonNullable<RegistryAccess['auth']> {
  const o = object(value, where, ['host', 'username', 'password', 'registryToken']);
  const username = str(o, 'username', where);
  const password = str(o, 'password', where);
  const registryToken = str(o, 'registryToken', where);
  const host = str(o, 'host', where);
  const on = host === undefined ? {} : { host };
  if (registryToken !== undefined && username === undefined && password === undefined) return { ...on, registryToken };
  if (registryToken !== undefined || username === undefined || password === undefined) throw new ConfigError(`${where}: expected username and password, or registryToken`);
  return { ...on, username, password };
}

function mountMirrors(value: unknown, where: string): RegistryMirror[] {
  if (!Array.isArray(value) || value.length > MAX_MOUNT_MIRRORS) throw new ConfigError(`${where}: expected a list of at most ${MAX_MOUNT_MIRRORS} mirrors`);
  return value.map((m, i) => mirror(m, `${where}[${i}]`));
}

/** Most mirrors a mount names. */
const MAX_MOUNT_MIRRORS = 32;

/** A mount's credentials for its target's registry: a user and password. */
function mountAuth(value: unknown, where: string): NonNullable<MountSpec['auth']> {
  const o = object(value, where, ['username', 'password']);
  const username = str(o, 'username', where);
  const password = str(o, 'password', where);
  if (!username || !password) throw new ConfigError(`${where}: expected username and password`);
  return { username, password };
}

/** `{key: value}`, or nothing when the value is undefined. */
const optional = <K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> => (value === undefined ? {} : ({ [key]: value } as Record<K, V>));

function registryProxy(value: unknown, where: string): NonNullable<RegistryAccess['proxy']> {
  const o = object(value, where, ['url', 'fallback', 'checkIntervalMs']);
  const url = str(o, 'url', where);
  if (url === undefined || !/^https?:\/\/[^/\s]+\/?$/.test(url)) throw new ConfigError(`${where}.url: expected http://host:port`);
  const checkIntervalMs = num(o, 'checkIntervalMs', where, 0, 3_600_000, true);
  return { url, fallback: bool(o, 'fallback', where) ?? false, ...(checkIntervalMs === undefined ? {} : { checkIntervalMs }) };
}

function mirror(value: unknown, where: string): RegistryMirror {
  const o = object(value, where, ['host', 'plainHttp', 'insecure', 'headers']);
  const host = str(o, 'host', where);
  if (host === undefined || !/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$/.test(host)) throw new ConfigError(`${where}.host: expected host[:port]`);
  const headers = o.headers === undefined ? undefined : mirrorHeaders(o.headers, `${where}.headers`);
  return { host, plainHttp: bool(o, 'plainHttp', where) ?? false, insecure: bool(o, 'insecure', where) ?? false, ...(headers ? { headers } : {}) };
}


/**
 * A daemon config from parsed JSON (or TOML), defaults filled in: ours, or upstream nydusd's v1 / v2
 * (nydusd-config.ts), whose keys that change nothing here are reported once.
 */
export function parseDaemonConfig(value: unknown, where = 'config'): DaemonConfig {
  if (isNydusdConfig(value)) {
    const { ours, ignored } = nydusdToOurs(value, where);
    if (ignored.length > 0) log.warn('nydusd config keys that change nothing here, ignored', { config: where, keys: ignored });
    return parseDaemonConfig(ours, `${where} (as nydusd's)`);
  }
  const o = object(value, where, ['cacheDir', 'fallbackCacheDir', 'blobDir', 'blobRepository', 'threads', 'kernelReadaheadKb', 'fetchTimeout', 'registry', 'prefetch', 'fetch']);
  const d = DEFAULT_CONFIG;
  const r = o.registry === undefined ? {} : object(o.registry, `${where}.registry`, ['plainHttp', 'insecure', 'retries', 'mirrors', 'auth', 'proxy', 'mirrorFailureLimit', 'mirrorRecheckMs']);
  const rw = `${where}.registry`;
  if (r.mirrors !== undefined && !Array.isArray(r.mirrors)) throw new ConfigError(`${rw}.mirrors: expected a list`);
  const p = o.prefetch === undefined ? {} : object(o.prefetch, `${where}.prefetch`, ['enable', 'bandwidth', 'all']);
  const f = o.fetch === undefined ? {} : object(o.fetch, `${where}.fetch`, ['amplify', 'readahead', 'hotRegion', 'hotPages', 'execPrefetch', 'execPrefetchMin']);
  const fallbackCacheDir = str(o, 'fallbackCacheDir', where);
  const blobDir = str(o, 'blobDir', where);
  const blobRepository = str(o, 'blobRepository', where);
  if (blobRepository !== undefined) checkReference(blobRepository, `${where}.blobRepository`);
  const kernelReadaheadKb = num(o, 'kernelReadaheadKb', where, 0, 1 << 20, true);
  return {
    cacheDir: str(o, 'cacheDir', where) ?? d.cacheDir,
    ...(fallbackCacheDir === undefined ? {} : { fallbackCacheDir }),
    ...(blobDir === undefined ? {} : { blobDir }),
    ...(blobRepository === undefined ? {} : { blobRepository }),
    threads: num(o, 'threads', where, 1, 64, true) ?? d.threads,
    ...(kernelReadaheadKb === undefined ? {} : { kernelReadaheadKb }),
    fetchTimeout: num(o, 'fetchTimeout', where, 0.001, 3600) ?? d.fetchTimeout,
    registry: {
      plainHttp: bool(r, 'plainHttp', rw) ?? d.registry.plainHttp,
      insecure: bool(r, 'insecure', rw) ?? d.registry.insecure,
      retries: num(r, 'retries', rw, 0, 20, true) ?? d.registry.retries,
      mirrors: ((r.mirrors as unknown[] | undefined) ?? []).map((m, i) => mirror(m, `${rw}.mirrors[${i}]`)),
      ...(r.auth === undefined ? {} : { auth: registryAuth(r.auth, `${rw}.auth`) }),
      ...(r.proxy === undefined ? {} : { proxy: registryProxy(r.proxy, `${rw}.proxy`) }),
      ...optional('mirrorFailureLimit', num(r, 'mirrorFailureLimit', rw, 1, 1000, true)),
      ...optional('mirrorRecheckMs', num(r, 'mirrorRecheckMs', rw, 0, 3_600_000, true)),
    },
    prefetch: {
      enable: bool(p, 'enable', `${where}.prefetch`) ?? d.prefetch.enable,
      bandwidth: num(p, 'bandwidth', `${where}.prefetch`, 0, 2 ** 40, true) ?? d.prefetch.bandwidth,
      all: bool(p, 'all', `${where}.prefetch`) ?? d.prefetch.all,
    },
    fetch: {
      amplify: num(f, 'amplify', `${where}.fetch`, 0, 64 << 20, true) ?? d.fetch.amplify,
      readahead: num(f, 'readahead', `${where}.fetch`, 0, 256 << 20, true) ?? d.fetch.readahead,
      hotRegion: bool(f, 'hotRegion', `${where}.fetch`) ?? d.fetch.hotRegion,
      hotPages: bool(f, 'hotPages', `${where}.fetch`) ?? d.fetch.hotPages,
      execPrefetch: num(f, 'execPrefetch', `${where}.fetch`, 0, 2 ** 40, true) ?? d.fetch.execPrefetch,
      execPrefetchMin: num(f, 'execPrefetchMin', `${where}.fetch`, 0, 2 ** 40, true) ?? d.fetch.execPrefetchMin,
    },
  };
}

export function loadDaemonConfig(path: string): DaemonConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as Error).message}`);
  }
  // nydusd's v2 configs are TOML as often as JSON
  const toml = path.endsWith('.toml');
  let parsed: unknown;
  try {
    parsed = toml ? parseToml(text) : JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config ${path} is not ${toml ? 'TOML' : 'JSON'}: ${(err as Error).message}`);
  }
  return parseDaemonConfig(parsed, path);
}

/**
 * A mount request's body. Besides our names it takes nydusd's: `source` for the bootstrap, `fs_type`
 * (which must be rafs), `config` (a nydusd config as a JSON string: its localfs dir, registry scheme
 * and skip_verify and prefetch switch apply to this mount; the rest is the daemon's) and
 * `prefetch_files` (none: files of a list of the request's own are not prefetched here).
 */
export function parseMountSpec(value: unknown): MountSpec {
  const where = 'mount';
  const o = object(value, where, ['target', 'bootstrap', 'source', 'blobDir', 'prefetch', 'plainHttp', 'insecure', 'fs_type', 'upToLayer', 'trace', 'config', 'prefetch_files', 'prefetchFiles', 'platform', 'runtimeFiles', 'auth', 'mirrors']);
  const fsType = str(o, 'fs_type', where);
  if (fsType !== undefined && fsType !== 'rafs') throw new ConfigError(`${where}.fs_type: only "rafs" is served`);
  if (o.prefetch_files !== undefined && o.prefetchFiles !== undefined) throw new ConfigError(`${where}: prefetch_files and prefetchFiles are one list: give one`);
  const prefetchFiles = o.prefetchFiles !== undefined ? pathList(o.prefetchFiles, `${where}.prefetchFiles`) : pathList(o.prefetch_files, `${where}.prefetch_files`);
  const runtimeFiles = pathList(o.runtimeFiles, `${where}.runtimeFiles`);
  const bootstrap = str(o, 'bootstrap', where) ?? str(o, 'source', where);
  const upstream = mountConfig(o, where);
  const spec: MountSpec = {
    target: str(o, 'target', where), bootstrap, blobDir: str(o, 'blobDir', where) ?? upstream.blobDir, blobRepository: bootstrap === undefined ? undefined : upstream.blobRepository,
    prefetch: bool(o, 'prefetch', where) ?? (prefetchFiles.length > 0 ? true : upstream.prefetch.enable), prefetchFiles: prefetchFiles.length > 0 ? prefetchFiles : undefined,
    runtimeFiles: runtimeFiles.length > 0 ? runtimeFiles : undefined,
    plainHttp: bool(o, 'plainHttp', where) ?? upstream.registry.plainHttp, insecure: bool(o, 'insecure', where) ?? upstream.registry.insecure,
    upToLayer: str(o, 'upToLayer', where), trace: str(o, 'trace', where), platform: str(o, 'platform', where),
    auth: o.auth === undefined ? undefined : mountAuth(o.auth, `${where}.auth`),
    mirrors: o.mirrors === undefined ? undefined : mountMirrors(o.mirrors, `${where}.mirrors`),
  };
  if (spec.mirrors !== undefined && spec.target === undefined) throw new ConfigError(`${where}.mirrors: mirrors go with target`);
  if (spec.auth !== undefined && spec.target === undefined) throw new ConfigError(`${where}.auth: credentials go with target`);
  if (spec.platform !== undefined && (spec.target === undefined || !/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(spec.platform))) throw new ConfigError(`${where}.platform: os/arch[/variant], with target`);
  if (spec.trace !== undefined && !isAbsolute(spec.trace)) throw new ConfigError(`${where}.trace: expected an absolute path`);
  if (spec.upToLayer !== undefined && (spec.target === undefined || !/^sha256:[0-9a-f]{64}$/.test(spec.upToLayer))) throw new ConfigError(`${where}.upToLayer: a sha256 layer digest, with target`);
  if ((spec.target === undefined) === (spec.bootstrap === undefined)) throw new ConfigError(`${where}: give either target (a registry image) or bootstrap (a local file)`);
  if (spec.target !== undefined && spec.blobDir !== undefined) throw new ConfigError(`${where}: blobDir goes with bootstrap, not with target`);
  if (spec.target !== undefined) checkReference(spec.target, `${where}.target`);
  if (spec.blobRepository !== undefined) checkReference(spec.blobRepository, `${where}.config (registry host/repo)`);
  return Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)) as MountSpec;
}

/** Most paths a mount's own prefetch list may name. */
const MAX_PREFETCH_FILES = 65_536;

/** A list of absolute paths (none when absent). */
export function pathList(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_PREFETCH_FILES) throw new ConfigError(`${where}: expected a list of at most ${MAX_PREFETCH_FILES} absolute paths`);
  return value.map((v, i) => {
    if (typeof v !== 'string' || !v.startsWith('/') || v.length > 4096 || v.includes('\0')) throw new ConfigError(`${where}[${i}]: expected an absolute path`);
    return v;
  });
}

/** The parts of a mount request's nydusd `config` string that are the mount's own (none without one). */
function mountConfig(o: Json, where: string): ReturnType<typeof nydusdToOurs>['ours'] {
  const text = str(o, 'config', where);
  if (text === undefined) return { registry: {}, prefetch: {}, fetch: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${where}.config: not JSON: ${(err as Error).message}`);
  }
  if (!isNydusdConfig(parsed)) throw new ConfigError(`${where}.config: expected a nydusd config (with device, or version 2)`);
  const { ours, ignored } = nydusdToOurs(parsed, `${where}.config`);
  if (ignored.length > 0) log.warn('nydusd config keys that change nothing here, ignored', { config: `${where}.config`, keys: ignored });
  return ours;
}

/** A bad reference is the caller's mistake (a ConfigError, 400 from the API), found before any mount starts. */
function checkReference(value: string, where: string): void {
  try {
    parseReference(value);
  } catch (err) {
    if (err instanceof InvalidReferenceError) throw new ConfigError(`${where}: ${err.message}`);
    throw err;
  }
}

/** A valid image name under a shared mount: one path component. */
export function checkImageName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) throw new ConfigError(`mount name ${JSON.stringify(name)}: expected 1-128 of [A-Za-z0-9._-], not starting with a dot or dash`);
  return name;
}
