// A lock file between processes (the managers of one daemon): it exists while held and names its
// holder's process identity (pid, start time, boot id). A lock whose holder is not running — it
// died, or the machine rebooted, whatever process its pid names now — is taken over at once.
// Created with link(2) from a complete temporary file, so a lock file is never seen half written.
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { log } from '../util/log.js';
import { identify, isRunning, type ProcessIdentity } from './process-identity.js';

const POLL_MS = 20;
let unique = 0;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const code = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;

/** Waits until this process holds the lock at `path`; `release` gives it up. */
export async function acquireLock(path: string): Promise<{ release(): void }> {
  const tmp = `${path}.${process.pid}.${unique++}.tmp`;
  writeFileSync(tmp, JSON.stringify(identify(process.pid)), { mode: 0o600 });
  try {
    for (;;) {
      try {
        linkSync(tmp, path);
        return { release: () => rmSync(path, { force: true }) };
      } catch (err) {
        if (code(err) !== 'EEXIST') throw err;
      }
      if (!removeIfStale(path)) await sleep(POLL_MS);
    }
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Whether the lock file at `path` names a running process (false when it is gone or unreadable). */
function holderRunning(path: string): boolean {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (code(err) === 'ENOENT') return false;
    throw err;
  }
  let holder: unknown;
  try {
    holder = JSON.parse(text);
  } catch {
    return false;
  }
  // an older lock file holds a bare pid: without its start time nothing says it is still that process
  return typeof holder === 'object' && holder !== null && isRunning(holder as Partial<ProcessIdentity>);
}

/** Removes the lock at `path` if its holder is not running; returns whether to try again at once. */
function removeIfStale(path: string): boolean {
  if (holderRunning(path)) return false;
  // another waiter may replace the stale lock by its own between our look and our removal: move
  // whatever is there aside, then look at what was moved
  const aside = `${path}.${process.pid}.${unique++}.stale`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if (code(err) === 'ENOENT') return true;
    throw err;
  }
  if (!holderRunning(aside)) {
    rmSync(aside, { force: true });
    log.warn('lock taken over: its holder is not running', { lock: path });
    return true;
  }
  try {
    linkSync(aside, path);
  } catch (err) {
    if (code(err) !== 'EEXIST') throw err;
    log.error('a live lock was moved aside and another process took the lock meanwhile', { lock: path });
  } finally {
    rmSync(aside, { force: true });
  }
  return false;
}
