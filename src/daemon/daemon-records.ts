// The manager's durable state: one JSON record per daemon under the state directory (written
// atomically), beside the daemon's API socket, log, config and lock file. A manager that restarts
// finds its daemons again through these records; managers sharing a daemon serialise on its lock.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { acquireLock } from './lock-file.js';
import type { ProcessIdentity } from './process-identity.js';
import type { DaemonConfig, MountSpec } from './config.js';
import type { DaemonMode } from './router.js';

export const DEFAULT_STATE_DIR = '/var/lib/nydusify-ts/manager';

/**
 * pid, startTime, bootId: the daemon's process (see process-identity). A record read back after
 * the daemon died or the machine rebooted may hold a pid that names another process now: only a
 * process whose identity matches is the daemon, and only it is ever signalled.
 */
export interface DaemonRecord extends Partial<ProcessIdentity> {
  id: string;
  mode: DaemonMode;
  mountpoint: string;
  /** Block mode: the mount shows each image as its flat EROFS image file (flat-file-fs.ts). */
  block?: boolean;
  config: DaemonConfig;
  /** Images to (re)mount: "/" for a dedicated daemon, names under a shared one. */
  mounts: { name: string; spec: MountSpec }[];
  /**
   * Failover (dedicated daemons): the manager mounts the FUSE connection itself and keeps its
   * descriptor, so a daemon killed -9 leaves the mount alive (reads wait) and its successor takes
   * the same connection over. Held in this process only: after a manager restart, an adopted
   * daemon that dies is restarted on a fresh mount instead.
   */
  failover?: boolean;
}

export class DaemonRecords {
  readonly dir: string;

  constructor(stateDir = DEFAULT_STATE_DIR) {
    this.dir = resolve(stateDir);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  private path(id: string, ext: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id)) throw new Error(`daemon id ${JSON.stringify(id)}: expected 1-64 of [A-Za-z0-9._-]`);
    return join(this.dir, `${id}.${ext}`);
  }

  apisock(id: string): string {
    return this.path(id, 'sock');
  }

  logFile(id: string): string {
    return this.path(id, 'log');
  }

  /** The daemon's config as the daemon reads it (written from the record at each start). */
  configFile(id: string): string {
    return this.path(id, 'config.json');
  }

  record(id: string): DaemonRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.path(id, 'json'), 'utf8')) as DaemonRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`daemon record ${id} is unreadable: ${(err as Error).message}`);
    }
  }

  records(): DaemonRecord[] {
    return readdirSync(this.dir).filter((n) => n.endsWith('.json') && !n.endsWith('.config.json')).map((n) => this.record(n.slice(0, -5))).filter((r): r is DaemonRecord => r !== undefined);
  }

  /** Writes the record atomically (a crash leaves the old one or the new one). */
  save(record: DaemonRecord): void {
    const path = this.path(record.id, 'json');
    writeFileSync(`${path}.tmp`, JSON.stringify(record, null, 2), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  forget(id: string): void {
    for (const ext of ['json', 'config.json', 'sock']) rmSync(this.path(id, ext), { force: true });
  }

  /**
   * Runs `fn` holding the daemon's lock file, so that managers sharing a daemon (shared mode: one
   * `mount` per image) never start it twice or lose each other's record updates. A lock whose
   * holder is not running is taken over.
   */
  async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const lock = await acquireLock(this.path(id, 'lock'));
    try {
      return await fn();
    } finally {
      lock.release();
    }
  }
}
