// nydus-snapshotter's config.toml (misc/snapshotter/config.toml), read into our snapshotter's settings:
// root and address, daemon_mode, [daemon] nydusd_config / fs_driver / recover_policy / threads_number,
// [log] level, [cache_manager] cache_dir, [remote] skip_ssl_verify, [remote.auth] enable_cri_keychain and
// image_service_address, [system] enable and address, [metrics] address, [experimental] enable_stargz.
// Keys that change nothing here are listed in `ignored` (the caller reports them once); values that
// would make us do something else than asked (fscache, daemon_mode none, recover_policy none,
// signature validation) are a ConfigError naming the key. [remote] mirrors_config.dir is read as
// containerd's hosts.toml directories.
import { ConfigError } from '../daemon/config-error.js';

type Json = Record<string, unknown>;

/** nydus-snapshotter's default system API socket. */
const DEFAULT_SYSTEM_ADDRESS = '/run/containerd-nydus/system.sock';

export interface SnapshotterSettings {
  root?: string;
  address?: string;
  daemonMode?: 'dedicated' | 'shared';
  recoverPolicy?: 'restart' | 'failover';
  fsDriver?: 'fuse' | 'block';
  /** The daemons' config file ([daemon] nydusd_config: a nydusd config, v1 or v2). */
  daemonConfig?: string;
  threads?: number;
  logLevel?: string;
  cacheDir?: string;
  insecure?: boolean;
  /** [experimental] enable_stargz: serve eStargz layers lazily (false: pull them like any layer). */
  stargz?: boolean;
  /** [system] address, when enable: the system API's socket (system-api.ts). */
  systemAddress?: string;
  /** [remote] mirrors_config.dir: containerd's hosts.toml directories (hosts-toml.ts). */
  mirrorsDir?: string;
  /** [metrics] address: the Prometheus endpoint (metrics-server.ts). */
  metricsAddress?: string;
  /** [remote.auth] enable_cri_keychain: serve the CRI image service and keep kubelet's pull credentials (cri-image-proxy.ts). */
  criKeychain?: boolean;
  /** [remote.auth] image_service_address: containerd's CRI image service. */
  imageServiceAddress?: string;
  ignored: string[];
}

/** A parsed config.toml (`where` names it in errors). */
export function snapshotterSettings(value: unknown, where = 'config'): SnapshotterSettings {
  const o = table(value, where);
  const out: SnapshotterSettings = { ignored: [] };
  const ignore = (t: Json, path: string, known: readonly string[]): void => {
    for (const k of Object.keys(t)) if (!known.includes(k)) out.ignored.push(path === '' ? k : `${path}.${k}`);
  };
  ignore(o, '', ['root', 'address', 'daemon_mode', 'daemon', 'log', 'cache_manager', 'remote', 'experimental', 'system', 'metrics']);
  out.root = optString(o.root, `${where}.root`);
  out.address = optString(o.address, `${where}.address`);
  const mode = optString(o.daemon_mode, `${where}.daemon_mode`);
  if (mode !== undefined) {
    // "multiple" is upstream's old name for dedicated
    if (mode === 'dedicated' || mode === 'multiple') out.daemonMode = 'dedicated';
    else if (mode === 'shared') out.daemonMode = 'shared';
    else throw new ConfigError(`${where}.daemon_mode: "${mode}" is not served here (dedicated, multiple or shared)`);
  }
  if (o.daemon !== undefined) {
    const d = table(o.daemon, `${where}.daemon`);
    ignore(d, 'daemon', ['nydusd_config', 'fs_driver', 'recover_policy', 'threads_number']);
    out.daemonConfig = optString(d.nydusd_config, `${where}.daemon.nydusd_config`);
    const driver = optString(d.fs_driver, `${where}.daemon.fs_driver`);
    if (driver !== undefined) {
      if (driver === 'fusedev') out.fsDriver = 'fuse';
      else if (driver === 'blockdev') out.fsDriver = 'block';
      else throw new ConfigError(`${where}.daemon.fs_driver: "${driver}" is not served here (fusedev or blockdev)`);
    }
    const policy = optString(d.recover_policy, `${where}.daemon.recover_policy`);
    if (policy !== undefined) {
      if (policy !== 'restart' && policy !== 'failover') throw new ConfigError(`${where}.daemon.recover_policy: "${policy}" is not served here (restart or failover)`);
      out.recoverPolicy = policy;
    }
    if (d.threads_number !== undefined) {
      const n = d.threads_number;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 1024) throw new ConfigError(`${where}.daemon.threads_number: expected 0 to 1024`);
      // 0: the daemon's default
      if (n > 0) out.threads = Math.min(n, 64);
    }
  }
  if (o.log !== undefined) {
    const l = table(o.log, `${where}.log`);
    ignore(l, 'log', ['level']);
    out.logLevel = optString(l.level, `${where}.log.level`);
  }
  if (o.cache_manager !== undefined) {
    const c = table(o.cache_manager, `${where}.cache_manager`);
    ignore(c, 'cache_manager', ['cache_dir']);
    const dir = c.cache_dir === '' ? undefined : optString(c.cache_dir, `${where}.cache_manager.cache_dir`);
    if (dir !== undefined) out.cacheDir = dir;
  }
  if (o.remote !== undefined) {
    const r = table(o.remote, `${where}.remote`);
    ignore(r, 'remote', ['skip_ssl_verify', 'mirrors_config', 'auth']);
    if (r.skip_ssl_verify !== undefined) out.insecure = bool(r.skip_ssl_verify, `${where}.remote.skip_ssl_verify`);
    if (r.auth !== undefined) {
      const a = table(r.auth, `${where}.remote.auth`);
      ignore(a, 'remote.auth', ['enable_kubeconfig_keychain', 'enable_cri_keychain', 'image_service_address']);
      // a keychain asked for and not there would mean pulls without the credentials expected
      if (a.enable_kubeconfig_keychain !== undefined && bool(a.enable_kubeconfig_keychain, `${where}.remote.auth.enable_kubeconfig_keychain`)) {
        throw new ConfigError(`${where}.remote.auth.enable_kubeconfig_keychain: that keychain is not here; give credentials as pull secret labels, through the CRI keychain or in a docker config`);
      }
      if (a.enable_cri_keychain !== undefined) out.criKeychain = bool(a.enable_cri_keychain, `${where}.remote.auth.enable_cri_keychain`);
      // upstream's sample leaves it empty for its default
      if (a.image_service_address !== undefined && a.image_service_address !== '') out.imageServiceAddress = optString(a.image_service_address, `${where}.remote.auth.image_service_address`);
    }
    if (r.mirrors_config !== undefined) {
      const m = table(r.mirrors_config, `${where}.remote.mirrors_config`);
      ignore(m, 'remote.mirrors_config', ['dir']);
      if (m.dir !== undefined && m.dir !== '') out.mirrorsDir = optString(m.dir, `${where}.remote.mirrors_config.dir`);
    }
  }
  if (o.metrics !== undefined) {
    const m = table(o.metrics, `${where}.metrics`);
    ignore(m, 'metrics', ['address']);
    if (m.address !== undefined && m.address !== '') out.metricsAddress = optString(m.address, `${where}.metrics.address`);
  }
  if (o.system !== undefined) {
    const sys = table(o.system, `${where}.system`);
    ignore(sys, 'system', ['enable', 'address']);
    const enable = sys.enable === undefined ? false : bool(sys.enable, `${where}.system.enable`);
    if (enable) out.systemAddress = optString(sys.address, `${where}.system.address`) ?? DEFAULT_SYSTEM_ADDRESS;
  }
  if (o.experimental !== undefined) {
    const e = table(o.experimental, `${where}.experimental`);
    ignore(e, 'experimental', ['enable_stargz']);
    if (e.enable_stargz !== undefined) out.stargz = bool(e.enable_stargz, `${where}.experimental.enable_stargz`);
  }
  return out;
}

function table(value: unknown, where: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${where}: expected a table`);
  return value as Json;
}

function optString(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '' || value.includes('\0')) throw new ConfigError(`${where}: expected a non-empty string`);
  return value;
}

function bool(value: unknown, where: string): boolean {
  if (typeof value !== 'boolean') throw new ConfigError(`${where}: expected true or false`);
  return value;
}
