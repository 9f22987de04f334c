// The daemon manager: starts dedicated or shared daemons as their own processes (so they outlive
// the manager), records each one durably under the state directory, and after its own restart
// finds them again: a daemon that still answers on its API socket is adopted as it is; a dead one
// (or one that no longer answers) is started again and its images are mounted again. While it runs,
// `supervise` does the same whenever a daemon dies (kill -9, crash).
import { spawn, type StdioOptions } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pidfdGetfd } from '../native/index.js';
import { log } from '../util/log.js';
import { DaemonClient } from './api-client.js';
import { mountFuseDevice, mountsAt } from './fuse/session.js';
import { acquireLock } from './lock-file.js';
import { identify, isRunning, type ProcessIdentity, signalIfRunning } from './process-identity.js';
import type { DaemonConfig, MountSpec } from './config.js';
import type { DaemonMode } from './router.js';

export const DEFAULT_STATE_DIR = '/var/lib/nydusify-ts/manager';
const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const START_TIMEOUT_MS = 30_000;
const PROBE_TIMEOUT_MS = 3000;

/**
 * pid, startTime, bootId: the daemon's process (see process-identity). A record read back after
 * the daemon died or the machine rebooted may hold a pid that names another process now: only a
 * process whose identity matches is the daemon, and only it is ever signalled.
 */
export interface DaemonRecord extends Partial<ProcessIdentity> {
  id: string;
  mode: DaemonMode;
  mountpoint: string;
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

export class DaemonManager {
  readonly dir: string;
  /** Failover: the /dev/fuse descriptors this manager mounted and keeps, by daemon id. */
  private readonly fuseFds = new Map<string, number>();

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

  client(id: string): DaemonClient {
    return new DaemonClient(this.apisock(id));
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

  /** Whether the daemon answers as itself on its socket. */
  async answers(record: DaemonRecord): Promise<boolean> {
    try {
      const info = await this.client(record.id).info(PROBE_TIMEOUT_MS);
      return info.id === record.id && info.state === 'RUNNING';
    } catch {
      return false;
    }
  }

  /**
   * Makes the recorded daemon serve its recorded images: adopted if it answers, else (re)started
   * and its images mounted again. Returns whether it was started.
   */
  async ensure(record: DaemonRecord): Promise<boolean> {
    if (await this.answers(record)) {
      const info = await this.client(record.id).info();
      // the process that answers is the daemon (a record from before identities held a bare pid)
      if (record.pid !== info.pid || !isRunning(record)) this.save(Object.assign(record, identify(info.pid)));
      const mounted = new Set(info.mounts.map((m) => m.mountpoint));
      for (const m of record.mounts) if (!mounted.has(m.name === '/' ? '/' : `/${m.name}`)) await this.client(record.id).mount(m.name, m.spec);
      if (record.failover && record.mode === 'dedicated' && !this.fuseFds.has(record.id)) this.copyFuseFd(record);
      return false;
    }
    // not answering: if the recorded daemon still runs, it is hung and has to go
    if (signalIfRunning(record, 'SIGKILL')) {
      log.warn('daemon does not answer: killed it', { id: record.id, pid: record.pid });
      await waitFor(() => !isRunning(record), 5000);
    }
    await this.start(record);
    return true;
  }

  private async start(record: DaemonRecord): Promise<void> {
    const configPath = this.path(record.id, 'config.json');
    writeFileSync(configPath, JSON.stringify(record.config, null, 2), { mode: 0o600 });
    const args = [CLI, 'daemon', '--id', record.id, '--apisock', this.apisock(record.id), '--mountpoint', record.mountpoint, '--mode', record.mode, '--config', configPath];
    const fuse = await this.failoverFd(record);
    if (fuse) args.push('--fuse-fd', '3', ...(fuse.takeover ? ['--takeover'] : []));
    const logFd = openSync(this.logFile(record.id), 'a', 0o600);
    const stdio: StdioOptions = fuse ? ['ignore', logFd, logFd, fuse.fd] : ['ignore', logFd, logFd];
    const child = spawn(process.execPath, args, { detached: true, stdio, env: { ...process.env, NYDUSIFY_LOG_LEVEL: process.env.NYDUSIFY_LOG_LEVEL ?? 'info' } });
    closeSync(logFd);
    child.unref();
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    // a child that already exited has no identity: its record names no process, and it is seen below
    Object.assign(record, identify(child.pid ?? 0) ?? { pid: child.pid, startTime: undefined, bootId: undefined });
    this.save(record);
    log.info('daemon started', { id: record.id, pid: child.pid, mode: record.mode, mountpoint: record.mountpoint, log: this.logFile(record.id) });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await this.answers(record))) {
      const code = await Promise.race([exited, sleep(20).then(() => undefined)]);
      if (code !== undefined) throw new Error(`daemon ${record.id} exited (${code}) while starting; see ${this.logFile(record.id)}`);
      if (Date.now() > deadline) throw new Error(`daemon ${record.id} did not answer within ${START_TIMEOUT_MS / 1000} s; see ${this.logFile(record.id)}`);
    }
    for (const m of record.mounts) await this.client(record.id).mount(m.name, m.spec);
  }

  /** Failover: the connection to hand over (kept from a daemon that died) or a new one. */
  private async failoverFd(record: DaemonRecord): Promise<{ fd: number; takeover: boolean } | undefined> {
    if (!record.failover || record.mode !== 'dedicated') return undefined;
    const held = this.fuseFds.get(record.id);
    if (held !== undefined && mountsAt(record.mountpoint).length > 0) return { fd: held, takeover: true };
    this.releaseFd(record.id);
    const fd = await mountFuseDevice(record.mountpoint);
    this.fuseFds.set(record.id, fd);
    return { fd, takeover: false };
  }

  /**
   * Failover for a daemon this manager adopted (it mounted the connection before a restart of the
   * manager, or opened it itself): a copy of its /dev/fuse descriptor, taken with pidfd_getfd.
   */
  private copyFuseFd(record: DaemonRecord): void {
    const pid = record.pid!;
    try {
      if (!isRunning(record)) throw new Error('the recorded pid is not the daemon that answered');
      const fd = readdirSync(`/proc/${pid}/fd`).find((n) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${n}`) === '/dev/fuse';
        } catch {
          return false;
        }
      });
      if (fd === undefined) throw new Error('it holds no /dev/fuse descriptor');
      this.fuseFds.set(record.id, pidfdGetfd(pid, Number(fd)));
      log.info('holding the adopted daemon\'s FUSE connection (failover possible)', { id: record.id, pid });
    } catch (err) {
      log.warn('cannot hold the adopted daemon\'s FUSE connection: if it dies it is restarted, not failed over', { id: record.id, pid, error: err });
    }
  }

  private releaseFd(id: string): void {
    const fd = this.fuseFds.get(id);
    this.fuseFds.delete(id);
    if (fd !== undefined) closeSync(fd);
  }

  /** Stops the daemon (it unmounts everything) and forgets it. */
  async destroy(id: string): Promise<void> {
    const record = this.record(id);
    this.releaseFd(id);
    if (!record) return;
    if (await this.answers(record)) {
      await this.client(record.id).exit().catch(() => undefined);
      await waitFor(() => !isRunning(record), 10_000);
    }
    signalIfRunning(record, 'SIGKILL');
    this.forget(record.id);
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

  /**
   * Checks the daemon every `intervalMs` and brings it back when it died; `restarted` is called
   * after every restart, whoever did it (another manager of a shared daemon, say), so bind mounts
   * can be made again. A daemon that exited by itself (unmounted, or told to) removed its API
   * socket: that is `exited`, and watching ends. Returns a function that stops watching.
   */
  supervise(id: string, on: { restarted(): Promise<void> | void; exited(): void }, intervalMs = 500): () => Promise<void> {
    let stopped = false;
    let seen = processKey(this.record(id));
    const loop = (async () => {
      let failures = 0;
      while (!stopped) {
        await sleep(intervalMs);
        const record = this.record(id);
        if (stopped || !record) break;
        const healthy = isRunning(record) && (await this.answers(record));
        if (healthy && processKey(record) === seen) continue;
        if (stopped) break;
        if (!healthy && !isRunning(record) && !existsSync(this.apisock(id))) {
          log.info('daemon exited', { id, pid: record.pid });
          this.releaseFd(id);
          on.exited();
          break;
        }
        try {
          if (!healthy) {
            log.warn('daemon gone: restarting it', { id, pid: record.pid });
            await this.locked(id, async () => {
              const fresh = this.record(id);
              if (fresh && !(isRunning(fresh) && (await this.answers(fresh)))) await this.ensure(fresh);
            });
          }
          seen = processKey(this.record(id));
          failures = 0;
          await on.restarted();
        } catch (err) {
          failures++;
          log.error('restarting the daemon failed', { id, error: err, failures });
          await sleep(Math.min(30_000, 500 * 2 ** failures));
        }
      }
    })();
    return async () => {
      stopped = true;
      await loop;
    };
  }
}

/** Which daemon process a record names (a restart, by whoever, changes it). */
const processKey = (r: DaemonRecord | undefined): string => `${r?.pid}@${r?.startTime}`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Bytes appended to `path` from `offset` on, copied to `out` until stopped (a `mount` shows its daemon's log). */
export function followFile(path: string, out: NodeJS.WritableStream, offset = 0): () => void {
  let at = offset;
  let busy = false;
  const copy = (): void => {
    if (busy) return;
    busy = true;
    try {
      const size = statSync(path, { throwIfNoEntry: false })?.size ?? 0;
      if (size < at) at = 0;
      if (size > at) {
        const fd = openSync(path, 'r');
        try {
          const buf = Buffer.alloc(size - at);
          const n = readSyncAll(fd, buf, at);
          out.write(buf.subarray(0, n));
          at += n;
        } finally {
          closeSync(fd);
        }
      }
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(copy, 100);
  return () => {
    clearInterval(timer);
    copy();
  };
}

function readSyncAll(fd: number, buf: Buffer, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
