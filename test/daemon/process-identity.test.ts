// Process identity with real processes: a recorded pid is the recorded process only while its
// start time and the boot id match, and only then is it signalled.
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { identify, isRunning, signalIfRunning } from '../../src/daemon/process-identity.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-identity-'));
const children: ChildProcess[] = [];

function sleeper(command = 'sleep'): ChildProcess {
  const child = spawn(command, ['100'], { stdio: 'ignore' });
  children.push(child);
  return child;
}

const exited = (child: ChildProcess): Promise<unknown> => new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

describe('process identity', () => {
  it('identifies a running process by pid, start time and boot id', async () => {
    const child = sleeper();
    const id = identify(child.pid!)!;
    expect(id.bootId).toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    expect(isRunning(id)).toBe(true);
    child.kill('SIGKILL');
    await exited(child);
    expect(identify(child.pid!)).toBeUndefined();
    expect(isRunning(id)).toBe(false);
  });

  it('reads the start time after a command name holding spaces and parentheses', () => {
    const odd = join(work, 's) 1 2 (');
    copyFileSync('/bin/sleep', odd);
    const started = identify(process.pid)!.startTime;
    const child = sleeper(odd);
    const id = identify(child.pid!)!;
    // started after this test process, and not later than now (uptime in clock ticks, at most 1000 a second)
    const uptimeSeconds = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    expect(id.startTime).toBeGreaterThanOrEqual(started);
    expect(id.startTime).toBeLessThanOrEqual(Math.ceil(uptimeSeconds * 1000));
    expect(isRunning(id)).toBe(true);
  });

  it('regression: a record whose pid now names another process is never signalled', async () => {
    const child = sleeper();
    const live = identify(child.pid!)!;
    // an earlier process with the same pid (other start time), a previous boot, an older record with a bare pid
    for (const stale of [{ ...live, startTime: live.startTime - 1 }, { ...live, bootId: '00000000-0000-0000-0000-000000000000' }, { pid: live.pid }]) {
      expect(isRunning(stale)).toBe(false);
      expect(signalIfRunning(stale, 'SIGKILL')).toBe(false);
    }
    // the process itself is signalled; it dies of this SIGTERM only if no stale record sent it a
    // SIGKILL before (a process a SIGKILL reached exits with that, whatever comes after)
    expect(signalIfRunning(live, 'SIGTERM')).toBe(true);
    await exited(child);
    expect(child.signalCode).toBe('SIGTERM');
  });
});
