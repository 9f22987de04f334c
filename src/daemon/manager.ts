// The daemon manager: starts dedicated or shared daemons as their own processes (so they outlive
// the manager), records each one durably under the state directory, and after its own restart
// finds them again: a daemon that still answers on its API socket is adopted as it is; a dead one
// (or one that no longer answers) is started again and its images are mounted again. While it runs,
// one supervise loop watches every attached daemon and does the same whenever one dies (kill -9,
// crash). The parts: daemon-records (durable records, locks), daemon-process (spawn, kill, wait),
// fuse-handover (failover descriptors).
import { existsSync, writeFileSync } from 'node:fs';
import { log } from '../util/log.js';
import { DaemonClient } from './api-client.js';
import { type DaemonLaunch, type DaemonProcess, killHung, spawnDaemon, untilAnswering, untilGone } from './daemon-process.js';
import { DaemonRecords, type DaemonRecord } from './daemon-records.js';
import { FuseHandover } from './fuse-handover.js';
import { identify, isRunning, signalIfRunning } from './process-identity.js';
import { SpareDaemons } from './spare-daemons.js';

export { DEFAULT_STATE_DIR, type DaemonRecord } from './daemon-records.js';
export { followFile } from './follow-file.js';

const PROBE_TIMEOUT_MS = 3000;
const SUPERVISE_INTERVAL_MS = 500;
const MAX_BACKOFF_MS = 30_000;

/** How an attached daemon is supervised. */
export interface Supervision {
  /** Time between checks (500 ms). */
  intervalMs?: number;
  /**
   * Runs the restart (or failover) step of a daemon found dead. By default the step holds the
   * daemon's lock file (managers sharing a daemon restart it once); the snapshotter passes its
   * queue instead, so a restart never races its own acquire or release of that daemon.
   */
  serialize?: <T>(step: () => Promise<T>) => Promise<T>;
  /** Called after every restart, whoever did it (another manager of a shared daemon, say): bind mounts can be made again. */
  restarted?(): Promise<void> | void;
  /**
   * A daemon that exited by itself (unmounted, or told to) removed its API socket: with this
   * handler, that ends supervision and the handler is called; without it, such a daemon is
   * brought back like one that died.
   */
  exited?(): void;
}

interface Watch extends Supervision {
  /** Which daemon process was last seen serving (a restart, by whoever, changes it). */
  seen: string;
  failures: number;
  nextAt: number;
  /** The check under way, if any. */
  running?: Promise<void>;
}

export class DaemonManager extends DaemonRecords {
  private readonly handover = new FuseHandover();
  private readonly watches = new Map<string, Watch>();
  private loop: Promise<void> | undefined;
  private wake: () => void = () => undefined;
  private spares: SpareDaemons | undefined;

  /** Keeps `count` spare daemons started ahead of need (see spare-daemons.ts); 0: none. */
  keepSpares(count: number): void {
    this.spares?.close();
    this.spares = count > 0 ? new SpareDaemons(this.dir, count) : undefined;
  }

  /** Stops the spares (they serve nothing). */
  closeSpares(): void {
    this.spares?.close();
    this.spares = undefined;
  }

  client(id: string): DaemonClient {
    return new DaemonClient(this.apisock(id));
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
      await this.adopt(record);
      return false;
    }
    // not answering: if the recorded daemon still runs, it is hung and has to go
    await killHung(record);
    await this.start(record);
    return true;
  }

  private async adopt(record: DaemonRecord): Promise<void> {
    const info = await this.client(record.id).info();
    // the process that answers is the daemon (a record from before identities held a bare pid)
    if (record.pid !== info.pid || !isRunning(record)) this.save(Object.assign(record, identify(info.pid)));
    const mounted = new Set(info.mounts.map((m) => m.mountpoint));
    for (const m of record.mounts) if (!mounted.has(m.name === '/' ? '/' : `/${m.name}`)) await this.client(record.id).mount(m.name, m.spec);
    if (FuseHandover.wanted(record) && !this.handover.holds(record.id)) this.handover.copyFrom(record);
  }

  private async start(record: DaemonRecord): Promise<void> {
    const launch: DaemonLaunch = { record, apisock: this.apisock(record.id), configFile: this.configFile(record.id), logFile: this.logFile(record.id) };
    writeFileSync(launch.configFile, JSON.stringify(record.config, null, 2), { mode: 0o600 });
    launch.fuse = await this.handover.forStart(record);
    // a spare cannot take a handed-over connection: that is a descriptor given at spawn
    const daemon = (launch.fuse ? undefined : await this.fromSpare(launch)) ?? spawnDaemon(launch);
    Object.assign(record, daemon.identity);
    this.save(record);
    log.info('daemon started', { id: record.id, pid: record.pid, mode: record.mode, mountpoint: record.mountpoint, log: launch.logFile });
    await untilAnswering(daemon, () => this.answers(record), launch);
    for (const m of record.mounts) await this.client(record.id).mount(m.name, m.spec);
  }

  /** A spare made the daemon of `launch`, if one is up and takes it. */
  private async fromSpare(launch: DaemonLaunch): Promise<DaemonProcess | undefined> {
    const spare = await this.spares?.take();
    if (!spare) return undefined;
    try {
      return await this.spares!.assign(spare, launch);
    } catch (err) {
      log.warn('a spare daemon could not be assigned: starting one', { id: launch.record.id, error: err });
      return undefined;
    }
  }

  /** Stops the daemon (it unmounts everything) and forgets it. */
  async destroy(id: string): Promise<void> {
    const record = this.record(id);
    this.handover.release(id);
    if (!record) return;
    if (await this.answers(record)) {
      await this.client(record.id).exit().catch(() => undefined);
      await untilGone(record, 10_000);
    }
    signalIfRunning(record, 'SIGKILL');
    this.forget(record.id);
  }

  /** Supervises the daemon (see Supervision) until detached; attaching an attached daemon does nothing. */
  attach(id: string, supervision: Supervision = {}): void {
    if (this.watches.has(id)) return;
    this.watches.set(id, { ...supervision, seen: processKey(this.record(id)), failures: 0, nextAt: Date.now() + (supervision.intervalMs ?? SUPERVISE_INTERVAL_MS) });
    this.wake();
    this.loop ??= this.superviseLoop();
  }

  /**
   * Stops supervising the daemon; resolves when no check of it runs any more. Not to be awaited
   * inside the `serialize` hook (the check may be waiting for it): a check that finds its daemon
   * detached does nothing.
   */
  detach(id: string): Promise<void> {
    const watch = this.watches.get(id);
    this.watches.delete(id);
    this.wake();
    return watch?.running ?? Promise.resolve();
  }

  /** Stops supervising every daemon; they keep serving. */
  async detachAll(): Promise<void> {
    await Promise.all([...this.watches.keys()].map((id) => this.detach(id)));
    await this.loop;
  }

  /** `attach` with the handlers of `mount`; returns a function that stops supervising. */
  supervise(id: string, on: { restarted(): Promise<void> | void; exited(): void }, intervalMs = SUPERVISE_INTERVAL_MS): () => Promise<void> {
    this.attach(id, { ...on, intervalMs });
    return () => this.detach(id);
  }

  /** One loop for every attached daemon: each is checked when due, checks of different daemons run side by side. */
  private async superviseLoop(): Promise<void> {
    while (this.watches.size > 0) {
      const now = Date.now();
      for (const [id, watch] of this.watches) {
        if (watch.running || watch.nextAt > now) continue;
        watch.running = this.check(id, watch).finally(() => {
          watch.running = undefined;
          this.wake();
        });
      }
      const idle = [...this.watches.values()].filter((w) => !w.running);
      const next = Math.min(...idle.map((w) => w.nextAt));
      await new Promise<void>((woken) => {
        const timer = Number.isFinite(next) ? setTimeout(woken, Math.max(0, next - Date.now())) : undefined;
        this.wake = () => {
          clearTimeout(timer);
          woken();
        };
      });
    }
    this.wake = () => undefined;
    this.loop = undefined;
  }

  /** Checks one daemon; brings it back if it died, ends supervision if it exited by itself. */
  private async check(id: string, watch: Watch): Promise<void> {
    const attached = (): boolean => this.watches.get(id) === watch;
    const interval = watch.intervalMs ?? SUPERVISE_INTERVAL_MS;
    try {
      const record = this.record(id);
      if (!record) {
        if (attached()) this.watches.delete(id);
        return;
      }
      const healthy = isRunning(record) && (await this.answers(record));
      if (!attached() || (healthy && processKey(record) === watch.seen)) return;
      if (!healthy && watch.exited && !isRunning(record) && !existsSync(this.apisock(id))) {
        log.info('daemon exited', { id, pid: record.pid });
        this.watches.delete(id);
        this.handover.release(id);
        watch.exited();
        return;
      }
      if (!healthy) {
        log.warn('daemon gone: restarting it', { id, pid: record.pid, failover: FuseHandover.wanted(record) });
        const serialize = watch.serialize ?? ((step) => this.locked(id, step));
        await serialize(async () => {
          const fresh = this.record(id);
          if (attached() && fresh && !(isRunning(fresh) && (await this.answers(fresh)))) await this.ensure(fresh);
        });
        if (!attached()) return;
      }
      watch.seen = processKey(this.record(id));
      watch.failures = 0;
      await watch.restarted?.();
    } catch (err) {
      watch.failures++;
      log.error('restarting the daemon failed', { id, error: err, failures: watch.failures });
    } finally {
      watch.nextAt = Date.now() + (watch.failures === 0 ? interval : Math.min(MAX_BACKOFF_MS, interval * 2 ** watch.failures));
    }
  }
}

/** Which daemon process a record names (a restart, by whoever, changes it). */
const processKey = (r: DaemonRecord | undefined): string => `${r?.pid}@${r?.startTime}`;
