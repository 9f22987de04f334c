// A daemon as a process of its own: spawned detached (it outlives the manager), known by its
// identity (pid, start time, boot id; see process-identity) so that only that process is ever
// signalled, and waited for until it answers on its API socket or until it is gone.
import { spawn, type StdioOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { log } from '../util/log.js';
import { identify, isRunning, type ProcessIdentity, signalIfRunning } from './process-identity.js';
import type { DaemonRecord } from './daemon-records.js';
import type { HandedFuse } from './fuse-handover.js';

/** This build's CLI entry point, run by node to start a daemon (or a `mount`). */
export const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const START_TIMEOUT_MS = 30_000;
/**
 * Node flags of a daemon process. A mount's startup fetch verifies, decodes, stores and pushes
 * megabytes of chunks in a burst on the main thread: with V8's default 1 MiB-ish young generation
 * that burst is scavenge after scavenge (a cold optimized start measured 0.15 s slower). A bigger
 * one costs up to a few tens of MB of RSS while a burst lasts.
 */
export const DAEMON_NODE_FLAGS = ['--max-semi-space-size=16'];

export interface DaemonLaunch {
  record: DaemonRecord;
  apisock: string;
  configFile: string;
  logFile: string;
  /** Failover: the FUSE connection the daemon serves (as its descriptor 3) instead of mounting one. */
  fuse?: HandedFuse;
}

export interface DaemonProcess {
  /** Empty when the child exited before its identity could be read: such a record names no process. */
  identity: Partial<ProcessIdentity>;
  /** The exit code once the child exits. */
  exited: Promise<number | null>;
}

/** Starts `nydusify-ts daemon` for the record, detached, its output appended to its log. */
export function spawnDaemon(launch: DaemonLaunch): DaemonProcess {
  const { record, fuse } = launch;
  const args = [...DAEMON_NODE_FLAGS, CLI, 'daemon', '--id', record.id, '--apisock', launch.apisock, '--mountpoint', record.mountpoint, '--mode', record.mode, '--config', launch.configFile];
  if (record.block) args.push('--block');
  if (fuse) args.push('--fuse-fd', '3', ...(fuse.takeover ? ['--takeover'] : []));
  const logFd = openSync(launch.logFile, 'a', 0o600);
  const stdio: StdioOptions = fuse ? ['ignore', logFd, logFd, fuse.fd] : ['ignore', logFd, logFd];
  const child = spawn(process.execPath, args, { detached: true, stdio, env: { ...process.env, NYDUSIFY_LOG_LEVEL: process.env.NYDUSIFY_LOG_LEVEL ?? 'info' } });
  closeSync(logFd);
  child.unref();
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { identity: identify(child.pid ?? 0) ?? { pid: child.pid, startTime: undefined, bootId: undefined }, exited };
}

/**
 * Waits until the started daemon answers (`answers`); fails if it exits first or takes too long. Asked
 * again after 2 ms, then ever less often (up to every 20 ms): an assigned spare answers within a few
 * milliseconds, and a container start waits for it (a new process takes a few hundred).
 */
export async function untilAnswering(daemon: DaemonProcess, answers: () => Promise<boolean>, launch: DaemonLaunch): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (let wait = 2; !(await answers()); wait = Math.min(20, wait * 2)) {
    const code = await Promise.race([daemon.exited, sleep(wait).then(() => undefined)]);
    if (code !== undefined) throw new Error(`daemon ${launch.record.id} exited (${code}) while starting; see ${launch.logFile}`);
    if (Date.now() > deadline) throw new Error(`daemon ${launch.record.id} did not answer within ${START_TIMEOUT_MS / 1000} s; see ${launch.logFile}`);
  }
}

/** Kills the recorded daemon if it still runs (it is hung: it does not answer) and waits until it is gone. */
export async function killHung(record: DaemonRecord): Promise<void> {
  if (!signalIfRunning(record, 'SIGKILL')) return;
  log.warn('daemon does not answer: killed it', { id: record.id, pid: record.pid });
  await untilGone(record, 5000);
}

/** Waits until the recorded process is gone; returns whether it went within `timeoutMs`. */
export async function untilGone(record: DaemonRecord, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isRunning(record)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
