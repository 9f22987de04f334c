// The manager's pool of spare daemons (spare.ts): processes started ahead of need, so that a new
// image's daemon is one that has already paid for node's start and our module graph. A spare is
// taken only once it answers; another is started in its place once the start it was taken for is
// under way, at a low priority. Spares live in DIR/spares,
// each with its socket, its log (which becomes the assigned daemon's log) and its identity, so a
// pool started after a crash kills the spares an earlier one left behind (a spare also exits by
// itself when its manager is gone).
import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { log } from '../util/log.js';
import { DaemonClient } from './api-client.js';
import { CLI, DAEMON_NODE_FLAGS, type DaemonLaunch, type DaemonProcess } from './daemon-process.js';
import { identify, type ProcessIdentity, signalIfRunning } from './process-identity.js';
import { ASSIGN_PATH, canRestorePriority, SPARE_NICENESS, type SpareAssignment } from './spare-assignment.js';

interface Spare {
  name: string;
  socket: string;
  logFile: string;
  process: DaemonProcess;
  /** Resolves true once the spare answers, false if it exited or never did. */
  answering: Promise<boolean>;
}

/** How long a spare has to come up before it is given up on. */
const SPARE_START_MS = 30_000;
const PROBE_EVERY_MS = 20;
/**
 * How long after a spare is taken another starts in its place. A spare is taken as an image is
 * pulled, and its container starts next: a spare loading then (half a second of CPU, niced or not,
 * on a node of few cores) measured 0.15 s slower pulls.
 */
const REFILL_AFTER_TAKE_MS = 3000;
/** The longest wait before another spare is started after spares failed to come up. */
const MAX_REFILL_MS = 60_000;

export class SpareDaemons {
  private readonly dir: string;
  private spares: Spare[] = [];
  private started = 0;
  private closed = false;
  /** Spares in a row that did not come up: the next is started after a longer wait (a broken install must not spin). */
  private failures = 0;

  /** Keeps `count` spares for daemons whose state lives in `stateDir`. */
  constructor(stateDir: string, private readonly count: number) {
    this.dir = join(stateDir, 'spares');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.killStale();
    this.fill();
  }

  /** A spare that answers now, out of the pool (another starts in its place); none when none is up yet. */
  async take(): Promise<Spare | undefined> {
    for (const [i, spare] of this.spares.entries()) {
      const up = await Promise.race([spare.answering, Promise.resolve(undefined)]);
      if (up !== true) continue;
      this.spares.splice(i, 1);
      setTimeout(() => this.fill(), REFILL_AFTER_TAKE_MS).unref();
      return spare;
    }
    return undefined;
  }

  /**
   * Makes `spare` the daemon of `launch`: its log becomes the daemon's (a previous daemon's log of
   * that id is kept as LOG.1), then it is told its flags. Fails if the spare does not take them.
   */
  async assign(spare: Spare, launch: DaemonLaunch): Promise<DaemonProcess> {
    const { record } = launch;
    const assignment: SpareAssignment = { id: record.id, apisock: launch.apisock, mountpoint: record.mountpoint, mode: record.mode, config: launch.configFile, block: record.block ?? false };
    try {
      await spareClient(spare.socket).call('PUT', ASSIGN_PATH, assignment);
    } catch (err) {
      this.kill(spare);
      throw err;
    }
    try {
      if (existsSync(launch.logFile)) renameSync(launch.logFile, `${launch.logFile}.1`);
      renameSync(spare.logFile, launch.logFile);
    } catch (err) {
      // the daemon serves all the same; its log is where the spare's was
      log.warn('cannot move a spare daemon\'s log to its daemon\'s', { from: spare.logFile, to: launch.logFile, error: err });
    }
    rmSync(identityFile(spare.logFile), { force: true });
    return spare.process;
  }

  /** Stops every spare (they serve nothing). */
  close(): void {
    this.closed = true;
    for (const spare of this.spares) this.kill(spare);
    this.spares = [];
  }

  private fill(): void {
    while (!this.closed && this.spares.length < this.count) this.spares.push(this.startSpare());
  }

  private startSpare(): Spare {
    const name = `${process.pid}-${this.started++}`;
    const socket = join(this.dir, `${name}.sock`);
    const logFile = join(this.dir, `${name}.log`);
    const logFd = openSync(logFile, 'a', 0o600);
    const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, CLI, 'daemon', '--spare', '--apisock', socket, '--manager-pid', String(process.pid)], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: { ...process.env, NYDUSIFY_LOG_LEVEL: process.env.NYDUSIFY_LOG_LEVEL ?? 'info' },
    });
    closeSync(logFd);
    child.unref();
    // loading and waiting at the lowest priority: the spare restores its own once assigned
    if (canRestorePriority() && child.pid !== undefined) {
      try {
        setPriority(child.pid, SPARE_NICENESS);
      } catch {
        // gone already: its exit replaces it
      }
    }
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const identity: Partial<ProcessIdentity> = identify(child.pid ?? 0) ?? { pid: child.pid };
    writeFileSync(identityFile(logFile), JSON.stringify(identity), { mode: 0o600 });
    const spare: Spare = { name, socket, logFile, process: { identity, exited }, answering: Promise.resolve(false) };
    spare.answering = untilUp(socket, exited);
    void spare.answering.then((up) => {
      if (up) this.failures = 0;
      if (up || this.closed) return;
      this.failures++;
      log.warn('a spare daemon did not come up (its log is kept)', { log: logFile, failures: this.failures });
      // dead already, or hung: gone either way (its exit replaces it)
      signalIfRunning(identity, 'SIGKILL');
    });
    void exited.then(() => {
      // a spare that dies in the pool is replaced (an assigned one has left the pool)
      const i = this.spares.indexOf(spare);
      if (i < 0) return;
      this.spares.splice(i, 1);
      for (const f of [socket, identityFile(logFile)]) rmSync(f, { force: true });
      if (!this.closed) setTimeout(() => this.fill(), Math.min(MAX_REFILL_MS, 1000 * 2 ** this.failures)).unref();
    });
    return spare;
  }

  private kill(spare: Spare): void {
    signalIfRunning(spare.process.identity, 'SIGKILL');
    for (const f of [spare.socket, identityFile(spare.logFile), spare.logFile]) rmSync(f, { force: true });
  }

  /** Spares of an earlier pool (a manager that crashed) are killed and their files removed. */
  private killStale(): void {
    for (const n of readdirSync(this.dir)) {
      if (!n.endsWith('.identity')) continue;
      try {
        signalIfRunning(JSON.parse(readFileSync(join(this.dir, n), 'utf8')) as Partial<ProcessIdentity>, 'SIGKILL');
      } catch {
        // unreadable: nothing to kill
      }
    }
    for (const n of readdirSync(this.dir)) rmSync(join(this.dir, n), { force: true });
  }
}

const identityFile = (logFile: string): string => logFile.replace(/\.log$/, '.identity');

/** A spare answers at once or not at all. */
const spareClient = (socket: string): DaemonClient => new DaemonClient(socket, 3000);

/** Resolves true once GET /api/v1/daemon answers on `socket`; false if the process exits or the time runs out. */
async function untilUp(socket: string, exited: Promise<number | null>): Promise<boolean> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + SPARE_START_MS;
  while (!gone && Date.now() < deadline) {
    if (existsSync(socket) && (await spareClient(socket).call('GET', '/api/v1/daemon').then(() => true, () => false))) return true;
    await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
  }
  return false;
}
