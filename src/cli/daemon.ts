// `nydusify-ts daemon`: the FUSE daemon in the foreground (the manager starts it as its own process;
// it can also be run by hand). Dedicated: one image at the mountpoint's root, given by flags or
// mounted through the API at "/". Shared: images mounted and unmounted through the API under the
// mountpoint. It stops when its mount goes away, on SIGINT/SIGTERM, or on PUT /api/v1/daemon/exit.
// Block mode: with --block the FUSE mount shows each image as its flat EROFS image file; with --nbd
// (with or without a FUSE mount) the same flat images are NBD exports.
import { randomBytes } from 'node:crypto';
import { openSync, rmSync, writeSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { serveApi } from '../daemon/api.js';
import { serveNbd } from '../block/daemon-exports.js';
import type { NbdServer } from '../block/nbd/server.js';
import { parseNbdAddress } from '../block/nbd/address.js';
import { Daemon } from '../daemon/daemon.js';
import { waitForAssignment } from '../daemon/spare.js';
import { type TakenOver, waitForTakeover } from '../daemon/upgrade.js';
import type { DaemonMode } from '../daemon/router.js';
import { log, setLogOutput } from '../util/log.js';
import { addConfigOptions, addImageOptions, checkMountPath, type ConfigFlags, configFrom, type ImageFlags, parseThreads, specFrom } from './daemon-options.js';

interface DaemonFlags extends ConfigFlags, ImageFlags {
  mountpoint?: string;
  block?: boolean;
  nbd?: string[];
  apisock?: string;
  mode: DaemonMode;
  id?: string;
  fuseFd?: number;
  takeover?: boolean;
  spare?: boolean;
  managerPid?: number;
  supervisor?: string;
  upgrade?: boolean;
  failoverPolicy?: string;
}


/** A spare (`--spare`): the flags it is assigned, over the ones it was started with. */
async function assigned(flags: DaemonFlags): Promise<DaemonFlags> {
  if (!flags.spare && flags.managerPid !== undefined) throw new Error('--manager-pid goes with --spare');
  if (!flags.spare) return flags;
  if (flags.apisock === undefined) throw new Error('a spare daemon waits on --apisock for its assignment');
  if (specFrom(flags) || flags.id !== undefined || flags.mountpoint !== undefined || flags.fuseFd !== undefined || flags.nbd) {
    throw new Error('a spare daemon is told what to serve when it is assigned: give it only --apisock (and config flags)');
  }
  const a = await waitForAssignment(flags.apisock, flags.managerPid ?? process.ppid);
  return { ...flags, id: a.id, apisock: a.apisock, mountpoint: a.mountpoint, mode: a.mode, config: a.config, block: a.block };
}

/**
 * nydusd's --upgrade (a successor): waits on --apisock in state INIT until told to take over, then
 * serves the connection and the images its predecessor handed the --supervisor.
 */
async function upgraded(flags: DaemonFlags): Promise<{ flags: DaemonFlags; mounts: TakenOver['state']['mounts'] }> {
  if (flags.failoverPolicy !== undefined && flags.failoverPolicy !== 'resend') {
    throw new Error(`--failover-policy ${flags.failoverPolicy}: only resend is done here (what the predecessor left unanswered is sent again)`);
  }
  if (!flags.upgrade) return { flags, mounts: [] };
  if (flags.supervisor === undefined || flags.apisock === undefined || flags.mountpoint === undefined) throw new Error('--upgrade takes over through --supervisor, waiting on --apisock, at --mountpoint');
  if (specFrom(flags) || flags.fuseFd !== undefined || flags.spare) throw new Error('--upgrade serves what it takes over: give no image, --fuse-fd or --spare');
  const { fd, state } = await waitForTakeover(flags.apisock, flags.supervisor, flags.id ?? 'upgrade');
  return { flags: { ...flags, mode: state.mode, fuseFd: fd, takeover: true }, mounts: state.mounts };
}

async function runDaemon(given: DaemonFlags): Promise<void> {
  const { flags, mounts: takenOver } = await upgraded(await assigned(given));
  const spec = specFrom(flags);
  if (flags.mode === 'shared' && spec) throw new Error('a shared daemon mounts images through its API (--apisock), not from flags');
  if (flags.apisock === undefined && !spec) throw new Error('nothing to serve: give an image (--target or --bootstrap) or --apisock to mount through the API');
  if (flags.mountpoint === undefined && !flags.nbd) throw new Error('nowhere to serve: give --mountpoint (FUSE), --nbd ADDRESS, or both');
  if (flags.mountpoint !== undefined) checkMountPath(flags.mountpoint);
  // addresses checked before anything is mounted
  for (const a of flags.nbd ?? []) parseNbdAddress(a);
  const daemon = new Daemon({ id: flags.id ?? randomBytes(6).toString('hex'), mode: flags.mode, mountpoint: flags.mountpoint, block: flags.block, config: configFrom(flags), fuseFd: flags.fuseFd, takeover: flags.takeover });
  await daemon.start();
  const api = flags.apisock === undefined ? undefined : await serveApi(daemon, flags.apisock, () => void daemon.stop(), { supervisor: flags.supervisor });
  let nbd: NbdServer | undefined;
  try {
    if (spec) await daemon.mount('/', spec);
    for (const m of takenOver) await daemon.mount(m.name, m.spec);
    if (flags.nbd) nbd = await serveNbd(daemon, flags.nbd);
    log.info('daemon ready', { id: daemon.opts.id, pid: process.pid, mode: flags.mode, mountpoint: flags.mountpoint, apisock: flags.apisock, nbd: flags.nbd });
  } catch (err) {
    await daemon.stop();
    throw err;
  } finally {
    // a failed start must not leave the socket answering
    if (daemon.state !== 'RUNNING') api?.close();
  }
  await daemon.done;
  await nbd?.close();
  if (api) {
    api.close();
    rmSync(flags.apisock!, { force: true });
  }
  // stopped: nothing is served any more, so idle keep-alive connections (the registry's, the API
  // client's) must not keep the process, which its manager waits to see gone, for seconds
  setTimeout(() => process.exit(process.exitCode ?? 0), EXIT_GRACE_MS).unref();
}

/** How long a stopped daemon's process lingers at most before it exits. */
const EXIT_GRACE_MS = 100;

export function daemonCommand(): Command {
  const cmd = new Command('daemon')
    .description('serve Nydus images over FUSE (nydusd): in the foreground, with an HTTP API on a unix socket')
    .option('-M, --mountpoint <dir>', 'the FUSE mount')
    .option('--nbd <address>', 'serve each image\'s flat EROFS image over NBD at unix:PATH or tcp:HOST:PORT (export "" is a dedicated daemon\'s image, else the mount name); repeatable', (v: string, prev: string[] = []) => [...prev, v])
    .option('--block', 'block mode: show each image as one file, its flat EROFS image, for `mount -t erofs` (the kernel then serves metadata from its cache)')
    .option('--apisock <path>', 'serve the HTTP API on this unix socket (mode 0600)')
    .addOption(new Option('--mode <mode>', 'dedicated: one image at the mountpoint; shared: images under it, as mountpoint/NAME').choices(['dedicated', 'shared']).default('dedicated'))
    .option('--id <id>', 'daemon id (reported by the API)')
    // failover (the manager passes these): serve a FUSE connection someone else mounted and keeps
    .option('--fuse-fd <n>', 'serve this inherited /dev/fuse descriptor, already mounted at --mountpoint', (v) => {
      if (!/^\d{1,4}$/.test(v) || Number(v) < 3) throw new InvalidArgumentError('expected an inherited descriptor number (3 or more).');
      return Number(v);
    })
    .option('--takeover', 'the --fuse-fd connection was served by a daemon that died: resend what it left unanswered')
    // nydusd's live upgrade and failover through a supervisor (nydus-snapshotter's): upgrade.ts
    .option('--supervisor <socket>', 'where PUT /api/v1/daemon/fuse/sendfd hands the FUSE connection and mounts (and --upgrade takes them from)')
    .option('--upgrade', 'start without mounting: wait in state INIT for PUT /api/v1/daemon/fuse/takeover, then serve what --supervisor hands over')
    .option('--failover-policy <policy>', 'nydusd\'s: resend (what the predecessor left unanswered is sent again; the only one here)')
    // the manager's spares: started ahead of need, told their id, mountpoint, mode and config later
    .option('--spare', 'wait on --apisock, modules loaded, to be assigned what to serve (PUT /api/v1/spare/assign)')
    .option('--manager-pid <pid>', 'with --spare: exit once no longer this process\'s child (default: the parent at start)', (v) => {
      if (!/^\d{1,10}$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('expected a process id.');
      return Number(v);
    });
  // nydusd's names for flags we have, so its command lines run as they are
  cmd.option('--localfs-dir <dir>', 'nydusd\'s name for --blob-dir')
    .option('--thread-num <n>', 'nydusd\'s name for --threads', parseThreads)
    .option('--log-file <file>', 'write the log (JSON lines) to this file instead of stderr, appending')
    .option('--prefetch-files <paths...>', 'fetch these files (absolute paths; a directory: everything under it) in the background, instead of the image\'s prefetch list')
    .option('--fuse-threads <n>', 'nydusd\'s name for --threads', parseThreads);
  return addImageOptions(addConfigOptions(cmd)).action((flags: DaemonFlags & NydusdFlags) => runDaemon(fromNydusdNames(flags)));
}

/** nydusd's flag names, as the same flags under ours. */
interface NydusdFlags {
  logFile?: string;
  localfsDir?: string;
  threadNum?: number;
  fuseThreads?: number;
}

function fromNydusdNames({ logFile, localfsDir, threadNum, fuseThreads, ...flags }: DaemonFlags & NydusdFlags): DaemonFlags {
  if (logFile !== undefined) {
    const fd = openSync(logFile, 'a', 0o600);
    setLogOutput({ write: (line: string) => writeSync(fd, line) });
  }
  if (localfsDir !== undefined && flags.blobDir !== undefined && localfsDir !== flags.blobDir) throw new Error('--localfs-dir and --blob-dir name different directories');
  const threads = flags.threads ?? threadNum ?? fuseThreads;
  return { ...flags, ...(localfsDir === undefined ? {} : { blobDir: localfsDir }), ...(threads === undefined ? {} : { threads }) };
}
