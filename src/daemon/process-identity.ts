// Which process a recorded pid means. A pid read back from disk may since name another process:
// the recorded one died and the number was reused, or the machine rebooted. A process is therefore
// recorded as its pid, its start time (field 22 of /proc/PID/stat, in clock ticks since boot) and
// the boot id; it is the same process only while all three match, and only then is it signalled.
import { closeSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { pidfdOpen, pidfdSendSignal } from '../native/index.js';

export interface ProcessIdentity {
  pid: number;
  /** Clock ticks after boot at which the process started (fixed for its lifetime, exec included). */
  startTime: number;
  /** /proc/sys/kernel/random/boot_id: a new one each boot, so a reboot invalidates every record. */
  bootId: string;
}

let bootIdCache: string | undefined;

function bootId(): string {
  bootIdCache ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return bootIdCache;
}

/** The start time in /proc/PID/stat; undefined when there is no such process. */
function readStartTime(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
    throw err;
  }
  // field 2, the command name in parentheses, may hold spaces and parentheses: fields 3 on follow the last ')'
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const startTime = Number(fields[22 - 3]);
  if (!Number.isSafeInteger(startTime)) throw new Error(`/proc/${pid}/stat: no start time`);
  return startTime;
}

/**
 * The identity of process `pid`; undefined when it does not exist. A zombie still exists (as for
 * kill(pid, 0)): a daemon counts as gone once it is reaped, when it has let go of everything.
 */
export function identify(pid: number): ProcessIdentity | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const startTime = readStartTime(pid);
  return startTime === undefined ? undefined : { pid, startTime, bootId: bootId() };
}

/** Whether `id` (as recorded, possibly partly: old records hold a pid only) is a process that still exists. */
export function isRunning(id: Partial<ProcessIdentity> | undefined): boolean {
  if (id?.pid === undefined || id.startTime === undefined || id.bootId === undefined) return false;
  const now = identify(id.pid);
  return now !== undefined && now.startTime === id.startTime && now.bootId === id.bootId;
}

/**
 * Sends `signal` to the recorded process if it is still that process; returns whether it was sent.
 * The process is pinned by a pidfd before its identity is checked, so the signal can only reach
 * the process that was checked: if it exits meanwhile, the signal goes nowhere.
 */
export function signalIfRunning(id: Partial<ProcessIdentity> | undefined, signal: NodeJS.Signals): boolean {
  if (id?.pid === undefined) return false;
  const pidfd = pidfdOpen(id.pid);
  if (pidfd === undefined) return false;
  try {
    return isRunning(id) && pidfdSendSignal(pidfd, constants.signals[signal]);
  } finally {
    closeSync(pidfd);
  }
}
