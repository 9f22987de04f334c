// The manager's one supervise loop, with real processes standing in for daemons (`sleep`) and a
// small HTTP server on each record's API socket answering as the daemon would: every attached
// daemon is checked, and only one whose process died reaches the restart step (the hook).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../src/daemon/config.js';
import { DaemonManager, type DaemonRecord, type Supervision } from '../../src/daemon/manager.js';
import { identify } from '../../src/daemon/process-identity.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-supervise-'));
const children: ChildProcess[] = [];
const servers: Server[] = [];
const INTERVAL_MS = 20;

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const s of servers) s.close();
  rmSync(work, { recursive: true, force: true });
});

/** A live process playing a daemon: `sleep 100`. */
function sleeper(): ChildProcess {
  const child = spawn('sleep', ['100'], { stdio: 'ignore' });
  children.push(child);
  return child;
}

const exited = (child: ChildProcess): Promise<unknown> => new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function recordOf(id: string, child: ChildProcess | undefined): DaemonRecord {
  const identity = child ? identify(child.pid!)! : { pid: 999_999_999, startTime: 1, bootId: 'gone' };
  return { id, mode: 'dedicated', mountpoint: join(work, 'mnt', id), config: DEFAULT_CONFIG, mounts: [], ...identity };
}

/** Answers GET /api/v1/daemon on the daemon's API socket as a running daemon `id` does. */
async function answerAs(manager: DaemonManager, id: string): Promise<Server> {
  const server = createServer((_req, res) => res.end(JSON.stringify({ id, state: 'RUNNING', pid: manager.record(id)?.pid, mounts: [] })));
  servers.push(server);
  await new Promise<void>((r) => server.listen(manager.apisock(id), r));
  return server;
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: still waiting after ${ms} ms`);
    await sleep(10);
  }
}

/** A supervision whose restart step is only counted: the hook says no (the step would start a real daemon). */
function counting(requests: string[], id: string, more: Partial<Supervision> = {}): Supervision {
  return { intervalMs: INTERVAL_MS, serialize: () => (requests.push(id), Promise.reject(new Error('restart requested'))), ...more };
}

describe('daemon manager: one supervise loop', () => {
  it('checks every attached daemon; only the one whose process died reaches the restart hook, once', async () => {
    const manager = new DaemonManager(join(work, 'two'));
    const [a, b] = [sleeper(), sleeper()];
    manager.save(recordOf('a', a));
    manager.save(recordOf('b', b));
    await Promise.all([answerAs(manager, 'a'), answerAs(manager, 'b')]);
    const requests: string[] = [];
    const restarted: string[] = [];
    // the hook plays the restart (a new process in the record), then runs the step: it finds the daemon back
    const supervision = (id: string): Supervision => ({
      intervalMs: INTERVAL_MS,
      serialize: (step) => {
        requests.push(id);
        manager.save(recordOf(id, sleeper()));
        return step();
      },
      restarted: () => void restarted.push(id),
    });
    manager.attach('a', supervision('a'));
    manager.attach('b', supervision('b'));
    try {
      await sleep(10 * INTERVAL_MS);
      expect(requests).toEqual([]);
      a.kill('SIGKILL');
      await exited(a);
      await until('the restart request', () => restarted.length > 0);
      await sleep(10 * INTERVAL_MS);
      expect(requests).toEqual(['a']);
      expect(restarted).toEqual(['a']);
    } finally {
      await manager.detachAll();
    }
  });

  it('a daemon that exited by itself (no socket) ends supervision when there is an exited handler, else it is brought back', async () => {
    const manager = new DaemonManager(join(work, 'exited'));
    manager.save(recordOf('ends', undefined));
    manager.save(recordOf('back', undefined));
    const requests: string[] = [];
    let ended = 0;
    manager.attach('ends', counting(requests, 'ends', { exited: () => void ended++ }));
    manager.attach('back', counting(requests, 'back'));
    try {
      await until('the exited handler and the restart request', () => ended === 1 && requests.includes('back'));
      await sleep(10 * INTERVAL_MS);
      expect(ended).toBe(1);
      expect(requests).not.toContain('ends');
    } finally {
      await manager.detachAll();
    }
  });

  it('a restart by someone else (a new process in the record) calls restarted, without a restart of its own', async () => {
    const manager = new DaemonManager(join(work, 'other'));
    manager.save(recordOf('d', sleeper()));
    await answerAs(manager, 'd');
    const requests: string[] = [];
    let restarts = 0;
    manager.attach('d', counting(requests, 'd', { restarted: () => void restarts++ }));
    try {
      await sleep(5 * INTERVAL_MS);
      expect(restarts).toBe(0);
      manager.save(recordOf('d', sleeper()));
      await until('restarted', () => restarts > 0);
      await sleep(10 * INTERVAL_MS);
      expect(restarts).toBe(1);
      expect(requests).toEqual([]);
    } finally {
      await manager.detachAll();
    }
  });

  it('a detached daemon is checked no more', async () => {
    const manager = new DaemonManager(join(work, 'detached'));
    manager.save(recordOf('d', undefined));
    const requests: string[] = [];
    manager.attach('d', counting(requests, 'd'));
    await until('the restart request', () => requests.length > 0);
    await manager.detach('d');
    const seen = requests.length;
    await sleep(10 * INTERVAL_MS);
    expect(requests.length).toBe(seen);
  });
});
