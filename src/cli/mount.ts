// `nydusify-ts mount`: mount one image at --mount-path and keep it mounted until SIGINT/SIGTERM, as a
// manager: the daemon serving it runs as its own process (recorded under --state-dir), is restarted
// and remounted if it dies, and outlives this command's own crash: running `mount` again with the
// same arguments adopts the live daemon. Dedicated (default): a daemon of its own. Shared: the image
// goes under the one shared daemon's mount, bound onto --mount-path. Block mode (--block): the daemon
// serves the image as its flat EROFS image file and the kernel's own EROFS is mounted on that file
// at --mount-path (a dedicated daemon keeps its FUSE connection across a restart: failover).
import { createHash } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import type { MountSpec } from '../daemon/config.js';
import { ErofsMount } from '../daemon/erofs-mount.js';
import { lazyUnmount, mountsAt } from '../daemon/fuse/session.js';
import { DaemonManager, DEFAULT_STATE_DIR, type DaemonRecord, followFile } from '../daemon/manager.js';
import type { DaemonMode } from '../daemon/router.js';
import { mustRunCommand } from '../util/command.js';
import { log } from '../util/log.js';
import { addConfigOptions, addImageOptions, checkMountPath, type ConfigFlags, configFrom, type ImageFlags, specFrom } from './daemon-options.js';

interface MountFlags extends ConfigFlags, ImageFlags {
  mountPath: string;
  block?: boolean;
  daemonMode: DaemonMode;
  stateDir: string;
}

/** The shared daemon's id: one serving trees, one serving block images. */
const sharedId = (flags: MountFlags): string => (flags.block ? 'shared-block' : 'shared');

/** The record this mount lives in, with the image added (a shared daemon's record holds others too). */
function recordFor(manager: DaemonManager, flags: MountFlags, spec: MountSpec, name: string): DaemonRecord {
  const config = configFrom(flags);
  let record: DaemonRecord;
  const block = flags.block ? { block: true } : {};
  if (flags.daemonMode === 'dedicated') {
    // block mode: the daemon's FUSE mount is ours, the mount path gets the kernel's EROFS on its image
    // file; failover keeps that FUSE connection (so the EROFS mount) alive when the daemon dies
    const mountpoint = flags.block ? join(manager.dir, `${name}.fuse`) : resolve(flags.mountPath);
    if (flags.block) mkdirSync(mountpoint, { recursive: true });
    record = manager.record(name) ?? { id: name, mode: 'dedicated', mountpoint, ...block, ...(flags.block ? { failover: true } : {}), config, mounts: [] };
  } else {
    const id = sharedId(flags);
    const mountpoint = join(manager.dir, `${id}-mnt`);
    mkdirSync(mountpoint, { recursive: true });
    record = manager.record(id) ?? { id, mode: 'shared', mountpoint, ...block, config, mounts: [] };
  }
  // a dedicated daemon's one image is at its root
  const key = record.mode === 'dedicated' ? '/' : name;
  const mine = record.mounts.find((m) => m.name === key);
  if (mine && JSON.stringify(mine.spec) !== JSON.stringify(spec)) {
    throw new Error(`${flags.mountPath} is already managed with another image (record ${join(manager.dir, `${record.id}.json`)}); unmount it first`);
  }
  if (!mine) record.mounts.push({ name: key, spec });
  return record;
}

async function mount(flags: MountFlags): Promise<void> {
  const spec = specFrom(flags);
  if (!spec) throw new Error('give the image to mount: --target REF, or --bootstrap FILE [--blob-dir DIR]');
  const mountPath = resolve(flags.mountPath);
  checkMountPath(mountPath);
  const manager = new DaemonManager(flags.stateDir);
  // one name per mount path: a restarted `mount` finds its daemon again
  const name = `m-${createHash('sha256').update(mountPath).digest('hex').slice(0, 16)}`;
  const record = await manager.locked(flags.daemonMode === 'shared' ? sharedId(flags) : name, async () => {
    const r = recordFor(manager, flags, spec, name);
    manager.save(r);
    return r;
  });
  const logFile = manager.logFile(record.id);
  const stopFollowing = followFile(logFile, process.stderr, statSync(logFile, { throwIfNoEntry: false })?.size ?? 0);
  const imageDir = record.mode === 'shared' ? join(record.mountpoint, name) : record.mountpoint;
  const erofs = record.block ? new ErofsMount(imageDir, record.mountpoint, mountPath) : undefined;
  const bind = async (): Promise<void> => {
    if (erofs) {
      await erofs.refresh();
      return;
    }
    if (record.mode !== 'shared') return;
    if (mountsAt(mountPath).length > 0) await lazyUnmount(mountPath);
    await mustRunCommand('mount', ['--bind', imageDir, mountPath]);
  };
  try {
    let started: boolean;
    try {
      started = await manager.locked(record.id, () => manager.ensure(record));
      await bind();
    } catch (err) {
      // nothing half-mounted stays behind, and no record to adopt later
      await erofs?.unmount().catch(() => undefined);
      await unmountImage(manager, record, name, mountPath).catch(() => undefined);
      throw err;
    }
    log.info('mounted', { mountPath, daemon: record.id, adopted: !started, target: spec.target, bootstrap: spec.bootstrap });
    let ended!: (why: string) => void;
    const end = new Promise<string>((done) => (ended = done));
    const stopSupervising = manager.supervise(record.id, {
      restarted: async () => {
        await bind();
        log.info('daemon restarted: mounted again', { mountPath, daemon: record.id });
      },
      exited: () => ended('the daemon exited (unmounted)'),
    });
    process.once('SIGINT', () => ended('SIGINT'));
    process.once('SIGTERM', () => ended('SIGTERM'));
    const why = await end;
    log.info('unmounting', { why, mountPath });
    await stopSupervising();
    await report(manager, record, name);
    await erofs?.unmount();
    await unmountImage(manager, record, name, mountPath);
  } finally {
    stopFollowing();
  }
}

/** The daemon's fetch counters for the log (best effort: the daemon may be gone). */
async function report(manager: DaemonManager, record: DaemonRecord, name: string): Promise<void> {
  try {
    const client = manager.client(record.id);
    const [stats, info] = await Promise.all([client.backendStats(), client.info()]);
    const image = info.mounts.find((m) => m.mountpoint === (record.mode === 'shared' ? `/${name}` : '/'));
    log.info('lazy loading done', { rangeRequests: stats.requests, fetchedBytes: stats.bytes, chunks: stats.chunks, amplifiedChunks: stats.amplifiedChunks, corruptChunks: stats.corruptChunks, backendErrors: stats.errors, blobBytes: image?.blobBytes ?? 0 });
  } catch (err) {
    log.warn('no statistics from the daemon', { error: err });
  }
}

async function unmountImage(manager: DaemonManager, record: DaemonRecord, name: string, mountPath: string): Promise<void> {
  if (record.mode === 'dedicated') return manager.locked(record.id, () => manager.destroy(record.id));
  await lazyUnmount(mountPath).catch(() => undefined);
  await manager.locked(record.id, async () => {
    await manager.client(record.id).umount(name).catch((err: unknown) => log.warn('unmounting from the shared daemon failed', { error: err }));
    const latest = manager.record(record.id) ?? record;
    latest.mounts = latest.mounts.filter((m) => m.name !== name);
    manager.save(latest);
    if (latest.mounts.length === 0) await manager.destroy(latest.id);
  });
}

export function mountCommand(): Command {
  const cmd = new Command('mount')
    .alias('view')
    .description('mount a Nydus image over FUSE and keep it mounted (in the foreground, until signalled); its daemon is supervised and restarted if it dies')
    .requiredOption('--mount-path <dir>', 'directory to mount on')
    .addOption(new Option('--daemon-mode <mode>', 'dedicated: a daemon for this image; shared: the image under the one shared daemon').choices(['dedicated', 'shared']).default('dedicated'))
    .option('--state-dir <dir>', 'where the manager records its daemons (sockets, logs)', DEFAULT_STATE_DIR)
    .option('--block', 'block mode: the daemon serves the image as its flat EROFS image file, and the kernel\'s EROFS is mounted on it at --mount-path');
  return addConfigOptions(addImageOptions(cmd)).action(mount);
}
