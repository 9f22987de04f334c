// The daemon manager against pids that name other processes now (the daemon or the lock holder
// died, or the machine rebooted, and the pid was handed out again): such a process is never
// signalled, a record naming it counts as a dead daemon, and a lock naming it is taken over.
// A live unrelated process is played by `sleep`; the last test runs the real `mount`.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../../src/daemon/config.js';
import { DaemonManager, type DaemonRecord } from '../../../src/daemon/manager.js';
import { identify } from '../../../src/daemon/process-identity.js';
import { cli } from '../../helpers/cli.js';
import { type Daemon, cleanUp, startDaemon, terminate, waitMounted } from '../../helpers/daemon.js';
import { makeSampleLayer } from '../../helpers/sample-tree.js';
import { waitFor } from '../../helpers/wait-for.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-manager-'));
const p = (...parts: string[]) => join(work, ...parts);
const children: ChildProcess[] = [];
const daemons: Daemon[] = [];

/** A live process that is not a daemon: `sleep 100`. */
function unrelated(): ChildProcess {
  const child = spawn('sleep', ['100'], { stdio: 'ignore' });
  children.push(child);
  return child;
}

const stillRuns = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

/** A record naming `child`'s pid as its daemon, with the start time of an earlier process of that pid. */
function recordNaming(child: ChildProcess, id: string, mountpoint = p('mnt', id)): DaemonRecord {
  const live = identify(child.pid!)!;
  return { id, mode: 'dedicated', mountpoint, config: { ...DEFAULT_CONFIG, cacheDir: p('cache') }, mounts: [], ...live, startTime: live.startTime - 1 };
}

/**
 * How many of this process's descriptors are open on `path`. A manager opens a lock file, then tries
 * the lock in the same turn and holds it or waits: once its descriptor is seen, it has tried.
 */
function openedHere(path: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // closed meanwhile
    }
  }).length;
}

function withTimeout<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, fail) => setTimeout(() => fail(new Error(`${what}: still waiting after ${ms} ms`)), ms).unref())]);
}

beforeAll(() => {
  makeSampleLayer(work);
  cli(['create', p('layer.tar'), '--bootstrap', p('layer.boot'), '--blob-dir', p('blobs')]);
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await cleanUp(daemons, work);
});

describe('daemon manager: recorded pids that name other processes now', () => {
  it('regression: destroying a record that names a live unrelated process leaves that process alone', async () => {
    const manager = new DaemonManager(p('state-destroy'));
    const sleeper = unrelated();
    manager.save(recordNaming(sleeper, 'gone'));
    await manager.destroy('gone');
    expect(stillRuns(sleeper)).toBe(true);
    expect(manager.record('gone')).toBeUndefined();
    // it dies of this SIGTERM only if destroy sent it no SIGKILL (a process a SIGKILL reached exits with that)
    const exit = new Promise((r) => sleeper.once('exit', (_, signal) => r(signal)));
    sleeper.kill('SIGTERM');
    expect(await exit).toBe('SIGTERM');
  });

  it('regression: the supervisor counts a record naming a live unrelated process as an exited daemon', async () => {
    const manager = new DaemonManager(p('state-supervise'));
    const sleeper = unrelated();
    manager.save(recordNaming(sleeper, 'gone'));
    let exited!: () => void;
    const exit = new Promise<void>((r) => (exited = r));
    const stop = manager.supervise('gone', { restarted: () => undefined, exited }, 20);
    try {
      await withTimeout('the supervisor to see the daemon gone', exit, 5000);
    } finally {
      await stop();
    }
    expect(stillRuns(sleeper)).toBe(true);
  });

  it('regression: a lock file naming a live unrelated process is taken over', async () => {
    const manager = new DaemonManager(p('state-lock'));
    const sleeper = unrelated();
    const live = identify(sleeper.pid!)!;
    // as written before identities (a bare pid), and with the start time of an earlier process of that pid
    for (const stale of [String(live.pid), JSON.stringify({ ...live, startTime: live.startTime - 1 })]) {
      writeFileSync(join(manager.dir, 'd.lock'), stale);
      expect(await withTimeout('the stale lock', manager.locked('d', async () => 'held'), 5000)).toBe('held');
      expect(JSON.parse(readFileSync(join(manager.dir, 'd.lock'), 'utf8')).pid).toBe(process.pid);
    }
    expect(stillRuns(sleeper)).toBe(true);
  });

  it('regression: a lock whose holder is killed is free at once (the kernel drops its flock)', async () => {
    const manager = new DaemonManager(p('state-killed'));
    const lock = join(manager.dir, 'd.lock');
    mkdirSync(manager.dir, { recursive: true });
    // another process holds the lock (util-linux flock(1) takes the same flock(2) lock)
    // (--close: the lock stays with flock(1) itself, not with the command it runs)
    const holder = spawn('flock', ['--exclusive', '--close', lock, 'sleep', '100'], { stdio: 'ignore', detached: true });
    // its process group, flock(1) and sleep(1); not with kill(1): procps kill reads `-KILL -<pgid>` as kill(-1), every process
    const killAll = (): void => {
      try {
        process.kill(-holder.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    };
    try {
      await withTimeout('flock(1) to hold the lock', (async () => {
        while (spawnSync('flock', ['--nonblock', lock, 'true']).status === 0) await new Promise((r) => setTimeout(r, 20));
      })(), 5000);
      let held = false;
      const waiting = manager.locked('d', async () => void (held = true));
      await waitFor(() => openedHere(lock) === 1, 'the manager to try the lock');
      expect(held).toBe(false);
      holder.kill('SIGKILL');
      await withTimeout('the lock after its holder died', waiting, 5000);
      expect(held).toBe(true);
    } finally {
      killAll();
    }
  });

  it('waits for a lock whose holder runs', async () => {
    const manager = new DaemonManager(p('state-wait'));
    const order: string[] = [];
    let release!: () => void;
    const first = manager.locked('d', () => new Promise<void>((r) => (release = r)).then(() => void order.push('first')));
    await waitFor(() => release !== undefined, 'the first to hold the lock');
    const second = manager.locked('d', async () => void order.push('second'));
    await waitFor(() => openedHere(join(manager.dir, 'd.lock')) === 2, 'the second to try the lock');
    expect(order).toEqual([]);
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['first', 'second']);
  });

  it('regression: `mount` starts a daemon over a record naming a live unrelated process, and never kills it', async () => {
    const mnt = p('mnt-reused');
    const stateDir = `${mnt}.state`;
    mkdirSync(stateDir, { recursive: true });
    const sleeper = unrelated();
    // the names `mount` gives a dedicated daemon of this mount path
    const id = `m-${createHash('sha256').update(mnt).digest('hex').slice(0, 16)}`;
    const manager = new DaemonManager(stateDir);
    manager.save(recordNaming(sleeper, id, mnt));
    const d = startDaemon(['--bootstrap', p('layer.boot'), '--blob-dir', p('blobs')], mnt, stateDir);
    daemons.push(d);
    await waitMounted(d);
    expect(stillRuns(sleeper)).toBe(true);
    const record = manager.record(id)!;
    expect(record.pid).not.toBe(sleeper.pid);
    expect(identify(record.pid!)?.startTime).toBe(record.startTime);
    expect(await terminate(d)).toEqual({ code: 0, signal: null });
    expect(stillRuns(sleeper)).toBe(true);
  });
});
