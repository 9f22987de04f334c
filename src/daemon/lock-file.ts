// A lock between processes (the managers of one daemon): flock(2) on a lock file that is never
// removed. The kernel lets go of the lock when its holder's descriptor closes, which it does when
// the holder dies: a dead holder never blocks anyone, whatever process its pid names later, and two
// waiters can never both take it. The file names the holder's identity, for people reading it.
import { closeSync, constants, ftruncateSync, openSync, writeSync } from 'node:fs';
import { flockTryExclusive } from '../native/index.js';
import { identify } from './process-identity.js';

const POLL_MS = 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until this process holds the lock at `path`; `release` gives it up. */
export async function acquireLock(path: string): Promise<{ release(): void }> {
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  try {
    while (!flockTryExclusive(fd)) await sleep(POLL_MS);
    ftruncateSync(fd, 0);
    writeSync(fd, JSON.stringify(identify(process.pid)), 0);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let held = true;
  return {
    release: () => {
      if (!held) return;
      held = false;
      closeSync(fd);
    },
  };
}
