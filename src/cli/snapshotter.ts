// `nydusify-ts snapshotter`: containerd's snapshots API on a unix socket (register it as a proxy
// plugin), serving ordinary layers like containerd's overlayfs snapshotter and Nydus images lazily
// through supervised daemons. Runs in the foreground until SIGINT/SIGTERM; the daemons outlive it,
// so running containers keep reading while it is restarted.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { DaemonMode } from '../daemon/router.js';
import { CacheGc } from '../blobcache/cache-gc.js';
import { type FsDriver, ImageMounts, type RecoverPolicy } from '../snapshotter/image-mounts.js';
import { claimSocketPath, serveSnapshotter } from '../snapshotter/service.js';
import { Snapshotter } from '../snapshotter/snapshotter.js';
import { log } from '../util/log.js';
import { addConfigOptions, type ConfigFlags, configFrom } from './daemon-options.js';

interface SnapshotterFlags extends ConfigFlags {
  address: string;
  root: string;
  daemonMode: DaemonMode;
  recoverPolicy: RecoverPolicy;
  fsDriver: FsDriver;
  spareDaemons: number;
}

async function runSnapshotter(flags: SnapshotterFlags): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the snapshotter mounts overlays and FUSE: it needs root');
  const root = resolve(flags.root);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const config = configFrom(flags);
  // the blob cache lives with the snapshotter's state unless the config or --cache-dir says otherwise
  if (flags.cacheDir === undefined && flags.config === undefined) config.cacheDir = join(root, 'cache');
  const images = new ImageMounts({ root, mode: flags.daemonMode, config, policy: flags.recoverPolicy, fsDriver: flags.fsDriver, spareDaemons: flags.spareDaemons });
  const sn = new Snapshotter(root, images, new CacheGc(config.cacheDir));
  // before recovering: a second snapshotter on a live socket must not adopt the first one's daemons
  await claimSocketPath(resolve(flags.address));
  await sn.recover();
  const server = await serveSnapshotter(sn, resolve(flags.address));
  log.info('snapshotter ready', { address: flags.address, root, daemonMode: flags.daemonMode, recoverPolicy: flags.recoverPolicy, fsDriver: flags.fsDriver, spareDaemons: flags.spareDaemons, cacheDir: config.cacheDir });
  void images.rehearse();
  const signal = await new Promise<NodeJS.Signals>((done) => {
    process.once('SIGINT', () => done('SIGINT'));
    process.once('SIGTERM', () => done('SIGTERM'));
  });
  log.info('snapshotter stopping (daemons keep serving)', { signal });
  await new Promise<void>((done) => server.tryShutdown(() => done()));
  await images.close();
}

function spareCount(value: string): number {
  if (!/^\d$/.test(value)) throw new InvalidArgumentError('expected 0 to 9.');
  return Number(value);
}

export function snapshotterCommand(): Command {
  const cmd = new Command('snapshotter')
    .description('containerd remote snapshotter (proxy plugin): overlayfs for OCI layers, lazily mounted Nydus images')
    .requiredOption('--address <socket>', 'unix socket to serve the snapshots API on')
    .requiredOption('--root <dir>', 'snapshots, metadata, daemon records and (by default) the blob cache')
    .addOption(new Option('--daemon-mode <mode>', 'dedicated: a daemon per image; shared: one daemon for all').choices(['dedicated', 'shared']).default('dedicated'))
    .addOption(new Option('--recover-policy <policy>', 'when a daemon dies: restart it and remount, or hand its FUSE connection to the new one (failover)').choices(['restart', 'failover']).default('restart'))
    .addOption(new Option('--spare-daemons <n>', 'dedicated daemons kept started ahead of need, so an image mounts without waiting for a process to start (restart policy; 0: none)').argParser(spareCount).default(1))
    .addOption(new Option('--fs-driver <driver>', 'fuse: a Nydus image\'s lower dir is the daemon\'s FUSE tree; block: the kernel\'s EROFS mounted on the daemon\'s flat image file').choices(['fuse', 'block']).default('fuse'));
  return addConfigOptions(cmd).action(runSnapshotter);
}
