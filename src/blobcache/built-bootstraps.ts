// Bootstraps the daemon builds rather than pulls (an eStargz image's TOCs, each turned into a layer
// model and merged), kept in the cache directory under a key that names everything they were built
// from: a mount that finds one skips reading every TOC and merging, and the snapshotter builds them
// while containerd is still pulling. A file is written whole (temp + rename) or not at all; the
// cache directory is ours, but a file that does not open as RAFS is simply built again.
//
// Whoever builds one holds flock(2) on built-KEY.lock meanwhile, so a daemon started while the
// snapshotter is still building waits for that bootstrap instead of building its own. The lock file
// goes once the bootstrap is kept: a builder that raced past it only builds the same bytes twice.
import { closeSync, constants, openSync, rmSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { flockTryExclusive } from '../native/index.js';
import { writeAtomically } from '../util/files.js';

/** File names of built bootstraps (cache GC removes them with their images' blobs). */
export const BUILT_BOOTSTRAP = /^built-[0-9a-f]{64}\.boot$/;

/**
 * A mount waiting for the snapshotter's build is on a container start's path: it tries the lock this
 * often (a flock(2) call each: cheap even through a minute's wait).
 */
const LOCK_POLL_MS = 2;
/** How long a builder waits for another's lock before building anyway (that one may hang on a registry). */
const DEFAULT_LOCK_WAIT_MS = 60_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A build lock held; `release` gives it up (and removes the lock file when the bootstrap was kept). */
export interface BuildLock {
  release(kept: boolean): void;
}

export class BuiltBootstraps {
  constructor(readonly dir: string, private readonly lockWaitMs = DEFAULT_LOCK_WAIT_MS) {}

  private path(key: string, suffix = '.boot'): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`built bootstrap key ${JSON.stringify(key)} is not 64 lowercase hex`);
    return join(this.dir, `built-${key}${suffix}`);
  }

  /** The bootstrap built under `key`, if one was kept. */
  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async put(key: string, bootstrap: Buffer): Promise<void> {
    return writeAtomically(this.path(key), bootstrap);
  }

  /** Takes the build lock of `key`, waiting while another process holds it (at most the lock wait; then undefined). */
  async lock(key: string): Promise<BuildLock | undefined> {
    const path = this.path(key, '.lock');
    await mkdir(this.dir, { recursive: true });
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
    const until = Date.now() + this.lockWaitMs;
    try {
      while (!flockTryExclusive(fd)) {
        if (Date.now() >= until) {
          closeSync(fd);
          return undefined;
        }
        await sleep(LOCK_POLL_MS);
      }
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    let held = true;
    return {
      release: (kept) => {
        if (!held) return;
        held = false;
        if (kept) rmSync(path, { force: true });
        closeSync(fd);
      },
    };
  }

  /**
   * The bootstrap kept under `key` if `usable` takes it, else one `build` makes (and kept): built
   * under the key's lock, so a build another process has under way is waited for, not repeated.
   */
  async getOrBuild<T>(key: string, usable: (kept: Buffer) => T | undefined, build: () => Promise<Buffer>): Promise<{ bootstrap: Buffer; opened?: T }> {
    const early = await this.usableKept(key, usable);
    if (early) return early;
    const lock = await this.lock(key);
    let kept = false;
    try {
      const late = await this.usableKept(key, usable);
      if (late) return late;
      const bootstrap = await build();
      kept = await this.put(key, bootstrap).then(() => true, () => false); // not kept: built again next time
      return { bootstrap };
    } finally {
      lock?.release(kept);
    }
  }

  private async usableKept<T>(key: string, usable: (kept: Buffer) => T | undefined): Promise<{ bootstrap: Buffer; opened: T } | undefined> {
    const bootstrap = await this.get(key);
    const opened = bootstrap && usable(bootstrap);
    return bootstrap && opened !== undefined ? { bootstrap, opened } : undefined;
  }
}
