// `nydusify-ts snapshotter`: containerd's snapshots API on a unix socket (register it as a proxy
// plugin), serving ordinary layers like containerd's overlayfs snapshotter and Nydus images lazily
// through supervised daemons. Runs in the foreground until SIGINT/SIGTERM; the daemons outlive it,
// so running containers keep reading while it is restarted.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { DaemonMode } from '../daemon/router.js';
import { CacheGc } from '../blobcache/cache-gc.js';
import { type FsDriver, ImageMounts, type RecoverPolicy } from '../snapshotter/image-mounts.js';
import { claimSocketPath, serveSnapshotter } from '../snapshotter/service.js';
import { CriImageProxy, DEFAULT_IMAGE_SERVICE_ADDRESS } from '../snapshotter/cri-image-proxy.js';
import { CriKeychain } from '../snapshotter/cri-keychain.js';
import { Snapshotter } from '../snapshotter/snapshotter.js';
import { PrefetchLists } from '../snapshotter/prefetch-lists.js';
import { serveMetrics } from '../snapshotter/metrics-server.js';
import { serveSystemApi, type SystemApiParts } from '../snapshotter/system-api.js';
import type { Server } from 'node:http';
import { isLogLevel, log, LOG_LEVELS, setLogLevel } from '../util/log.js';
import { parse as parseToml } from 'smol-toml';
import { ConfigError } from '../daemon/config-error.js';
import { snapshotterSettings } from '../snapshotter/snapshotter-config.js';
import { addConfigOptions, type ConfigFlags, configFrom } from './daemon-options.js';
import { parseSize } from './options.js';

interface SnapshotterFlags extends ConfigFlags {
  address?: string;
  root?: string;
  daemonMode: DaemonMode;
  recoverPolicy: RecoverPolicy;
  fsDriver: FsDriver;
  spareDaemons: number;
  nydusdConfig?: string;
  systemAddress?: string;
  mirrorsDir?: string;
  metricsAddress?: string;
  criKeychain?: boolean;
  imageServiceAddress?: string;
  fastPull: boolean;
  fastPullBandwidth?: number;
  gzipIndex: boolean;
}

/**
 * The flags with nydus-snapshotter's config.toml (`--config FILE.toml`) under them: a flag given on
 * the command line wins over the file, the file over a flag's default. A JSON `--config` (or a v2
 * nydusd TOML) is the daemons' config, as before; `--nydusd-config` names that one too.
 */
function withConfigToml(given: SnapshotterFlags, cmd: Command): SnapshotterFlags & { stargz?: boolean } {
  if (given.nydusdConfig !== undefined && given.config !== undefined && !given.config.endsWith('.toml')) throw new Error('--nydusd-config and a JSON --config both name the daemons\' config');
  const flags = { ...given, ...(given.nydusdConfig !== undefined ? { config: given.nydusdConfig } : {}) };
  if (given.config === undefined || !given.config.endsWith('.toml')) return flags;
  let parsed: unknown;
  try {
    parsed = parseToml(readFileSync(given.config, 'utf8'));
  } catch (err) {
    throw new ConfigError(`config ${given.config}: ${(err as Error).message}`);
  }
  if ((parsed as { version?: unknown }).version === 2) return flags;
  const s = snapshotterSettings(parsed, given.config);
  if (s.ignored.length > 0) log.warn('snapshotter config keys that change nothing here, ignored', { config: given.config, keys: s.ignored });
  if (s.logLevel !== undefined) {
    if (!isLogLevel(s.logLevel)) throw new ConfigError(`${given.config}.log.level: expected one of ${LOG_LEVELS.join(', ')}`);
    setLogLevel(s.logLevel);
  }
  const unset = (key: string): boolean => cmd.getOptionValueSource(key) !== 'cli';
  const pick = <K extends keyof SnapshotterFlags>(key: K, value: SnapshotterFlags[K] | undefined): Partial<SnapshotterFlags> => (value !== undefined && unset(key) ? { [key]: value } : {});
  return {
    ...flags,
    // the TOML is not the daemons' config: theirs is [daemon] nydusd_config (or --nydusd-config)
    config: given.nydusdConfig ?? s.daemonConfig,
    ...pick('root', s.root), ...pick('address', s.address), ...pick('daemonMode', s.daemonMode), ...pick('recoverPolicy', s.recoverPolicy),
    ...pick('fsDriver', s.fsDriver), ...pick('threads', s.threads), ...pick('cacheDir', s.cacheDir), ...pick('insecure', s.insecure), ...pick('systemAddress', s.systemAddress), ...pick('mirrorsDir', s.mirrorsDir), ...pick('metricsAddress', s.metricsAddress),
    ...pick('criKeychain', s.criKeychain), ...pick('imageServiceAddress', s.imageServiceAddress),
    ...(s.stargz === undefined ? {} : { stargz: s.stargz }),
  };
}

/** The system API on `address` (a socket left by a killed snapshotter is replaced, a live one refused). */
async function serveSystem(address: string, parts: SystemApiParts): Promise<Server> {
  mkdirSync(dirname(address), { recursive: true, mode: 0o700 });
  await claimSocketPath(address);
  return serveSystemApi(address, parts);
}

async function runSnapshotter(given: SnapshotterFlags, cmd: Command): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the snapshotter mounts overlays and FUSE: it needs root');
  const flags = withConfigToml(given, cmd);
  if (flags.root === undefined || flags.address === undefined) throw new Error('give --root and --address (or root and address in a config.toml)');
  const root = resolve(flags.root);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const config = configFrom(flags);
  // the blob cache lives with the snapshotter's state unless the config or --cache-dir says otherwise
  if (flags.cacheDir === undefined && flags.config === undefined) config.cacheDir = join(root, 'cache');
  const prefetchLists = new PrefetchLists();
  const keychain = flags.criKeychain ? new CriKeychain() : undefined;
  const images = new ImageMounts({ root, mode: flags.daemonMode, config, policy: flags.recoverPolicy, fsDriver: flags.fsDriver, spareDaemons: flags.spareDaemons, prefetchLists, ...(keychain ? { keychain } : {}), ...(flags.mirrorsDir === undefined ? {} : { mirrorsDir: resolve(flags.mirrorsDir) }), ...(flags.stargz === undefined ? {} : { stargz: flags.stargz }) });
  const sn = new Snapshotter(root, images, new CacheGc(config.cacheDir), { fastPull: flags.fastPull, gzipIndex: flags.gzipIndex, ...(flags.fastPullBandwidth === undefined ? {} : { fastPullBandwidth: flags.fastPullBandwidth }) });
  // before recovering: a second snapshotter on a live socket must not adopt the first one's daemons
  const address = resolve(flags.address);
  await claimSocketPath(address);
  await sn.recover();
  await sn.start();
  const imageService = flags.imageServiceAddress ?? DEFAULT_IMAGE_SERVICE_ADDRESS;
  const imageProxy = keychain ? new CriImageProxy(imageService, keychain) : undefined;
  const server = await serveSnapshotter(sn, address, imageProxy);
  const system = flags.systemAddress === undefined ? undefined : await serveSystem(resolve(flags.systemAddress), { images, snapshotter: sn, prefetch: prefetchLists });
  const metrics = flags.metricsAddress === undefined ? undefined : await serveMetrics(flags.metricsAddress, images, sn);
  log.info('snapshotter ready', { address: flags.address, root, daemonMode: flags.daemonMode, recoverPolicy: flags.recoverPolicy, fsDriver: flags.fsDriver, spareDaemons: flags.spareDaemons, cacheDir: config.cacheDir, ...(imageProxy ? { criImageService: imageService } : {}) });
  void images.rehearse();
  const signal = await new Promise<NodeJS.Signals>((done) => {
    process.once('SIGINT', () => done('SIGINT'));
    process.once('SIGTERM', () => done('SIGTERM'));
  });
  log.info('snapshotter stopping (daemons keep serving)', { signal });
  await new Promise<void>((done) => server.tryShutdown(() => done()));
  imageProxy?.close();
  for (const s of [system, metrics]) await new Promise<void>((done) => (s ? s.close(() => done()) : done()));
  await images.close();
}

function spareCount(value: string): number {
  if (!/^\d$/.test(value)) throw new InvalidArgumentError('expected 0 to 9.');
  return Number(value);
}

export function snapshotterCommand(): Command {
  const cmd = new Command('snapshotter')
    .description('containerd remote snapshotter (proxy plugin): overlayfs for OCI layers, lazily mounted Nydus images')
    .option('--address <socket>', 'unix socket to serve the snapshots API on')
    .option('--root <dir>', 'snapshots, metadata, daemon records and (by default) the blob cache')
    .option('--nydusd-config <file>', 'the daemons\' config (ours, or a nydusd v1/v2 config); --config FILE.toml is nydus-snapshotter\'s config.toml')
    .addOption(new Option('--daemon-mode <mode>', 'dedicated: a daemon per image; shared: one daemon for all').choices(['dedicated', 'shared']).default('dedicated'))
    .addOption(new Option('--recover-policy <policy>', 'when a daemon dies: restart it and remount, or hand its FUSE connection to the new one (failover)').choices(['restart', 'failover']).default('restart'))
    .addOption(new Option('--spare-daemons <n>', 'dedicated daemons kept started ahead of need, so an image mounts without waiting for a process to start (restart policy; 0: none)').argParser(spareCount).default(1))
    .option('--mirrors-dir <dir>', 'containerd\'s hosts.toml directories (DIR/HOST/hosts.toml): each image\'s registry\'s mirrors (nydus-snapshotter\'s [remote] mirrors_config.dir)')
    .option('--metrics-address <host:port>', 'serve Prometheus metrics (every daemon\'s, labelled daemon_id, and the snapshotter\'s) at GET /v1/metrics (nydus-snapshotter\'s [metrics] address)')
    .option('--cri-keychain', 'also serve the CRI image service (point kubelet\'s --image-service-endpoint here), passing each call on to containerd\'s and keeping each PullImage\'s credentials for that image\'s layers (nydus-snapshotter\'s [remote.auth] enable_cri_keychain)')
    .option('--image-service-address <socket>', `containerd's CRI image service, for --cri-keychain (default ${DEFAULT_IMAGE_SERVICE_ADDRESS}; [remote.auth] image_service_address)`)
    .option('--no-fast-pull', 'leave plain OCI images to containerd\'s own pull (by default the layers containerd asks about, when their labels name the image as ctr-remote image rpull and CRI give them, are pulled here: all at once, each written as it streams, as an EROFS image the kernel mounts where it can)')
    .option('--no-gzip-index', 'pull plain gzip images even when they have a gzip index (by default such an image, indexed by `nydusify-ts index --push`, is found through its referrers and served lazily)')
    .option('--fast-pull-bandwidth <bytes>', 'download an image\'s layers at most this many bytes per second, together (e.g. 50M; default no limit)', parseSize)
    .option('--system-address <socket>', 'serve the system API (GET /api/v1/daemons, PUT /api/v1/prefetch, …) on this unix socket (nydus-snapshotter\'s [system] address)')
    .addOption(new Option('--fs-driver <driver>', 'fuse: a Nydus image\'s lower dir is the daemon\'s FUSE tree; block: the kernel\'s EROFS mounted on the daemon\'s flat image file').choices(['fuse', 'block']).default('fuse'));
  return addConfigOptions(cmd).action(runSnapshotter);
}
