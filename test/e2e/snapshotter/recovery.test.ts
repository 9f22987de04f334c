// An image daemon killed -9 while a container reads files it never read before (each read goes to
// the daemon), under both recover policies, with real containerd: with `restart` the daemon comes
// back on a fresh mount (new containers start; the running one lost its mount's connection), with
// `failover` the snapshotter kept the FUSE descriptor and the successor takes the connection over,
// so the running container's reads only stall and all succeed. The block fs driver with failover too:
// there the container's lower dir is the kernel's EROFS on the daemon's flat image file, and that
// EROFS mount keeps reading through the connection the successor took over.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync } from '../../helpers/cli.js';
import { waitFor } from '../../helpers/wait-for.js';
import { containerdUp, ctr, ctrRemote, E2E_DIR, killLeftovers, recordedDaemons, REGISTRY, SNAPSHOTTER, startSnapshotter, type SnapshotterProcess } from '../../snapshotter/env.js';

const IMAGE = `${REGISTRY}/debian-ml:snap-recovery-nydus`;
/** Files the reader reads before it waits for the kill. */
const BEFORE_KILL = 200;
// reads every file over 1 KiB under /usr once, counting failures; after BEFORE_KILL files it says so
// in /gate and waits there until the test, having killed the daemon, lets it go on: every file after
// that is read from the successor (or the dead daemon's mount)
const reader = `n=0; fails=0; for f in $(find /usr -type f -size +1k); do n=$((n+1)); cat "$f" > /dev/null 2>&1 || fails=$((fails+1)); if [ $n = ${BEFORE_KILL} ]; then echo "read $n fails=$fails"; touch /gate/paused; while [ ! -e /gate/go ]; do sleep 0.05; done; echo "resumed"; fi; done; echo "DONE $n fails=$fails"`;

let sn: SnapshotterProcess | undefined;
let root = '';

async function cleanImage(): Promise<void> {
  for (const id of ['holder', 'reader', 'next']) {
    await ctr(['task', 'kill', '-s', 'KILL', id]);
    await ctr(['task', 'rm', '-f', id]);
    await ctr(['container', 'rm', id]);
  }
  await ctr(['images', 'rm', '--sync', IMAGE]);
}

async function stop(): Promise<void> {
  if (!sn) return;
  await cleanImage();
  if (sn.child.exitCode === null) {
    sn.child.kill('SIGTERM');
    await sn.exit;
  }
  await killLeftovers(root);
  sn = undefined;
}

/** Whether `pid` still runs (a zombie has died: it only waits to be reaped). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Starts the reader; once it has read BEFORE_KILL files (and waits), runs `meanwhile`, kills the
 * image daemon -9, and lets the reader go on only when the daemon is dead. Returns the reader's
 * output, the killed daemon's pid and its successor's.
 */
async function killDuringReads(meanwhile?: () => Promise<void>): Promise<{ output: string; before: number; after: number; files: number; fails: number }> {
  const gate = mkdtempSync(join(tmpdir(), 'recovery-gate-'));
  try {
    let output: string | undefined;
    const reading = ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, '--mount', `type=bind,src=${gate},dst=/gate,options=rbind:rw`, IMAGE, 'reader', 'sh', '-c', reader], 180_000).then((r) => {
      output = r.stdout + r.stderr;
    });
    await waitFor(() => existsSync(join(gate, 'paused')) || output !== undefined, `the reader to read ${BEFORE_KILL} files`, 120_000, 50);
    expect(output, 'the reader ended before the kill').toBeUndefined();
    const before = recordedDaemons(root)[0]?.pid;
    expect(before).toBeDefined();
    await meanwhile?.();
    process.kill(before!, 'SIGKILL');
    await waitFor(() => !running(before!), 'the killed daemon to die', 10_000);
    writeFileSync(join(gate, 'go'), '');
    await reading;
    // with restart the reader may finish (failing fast) before the supervisor has acted
    const successor = (): number | undefined => {
      const pid = recordedDaemons(root)[0]?.pid;
      return pid === before ? undefined : pid;
    };
    await waitFor(() => successor() !== undefined, 'a successor daemon', 20_000, 100);
    const [, files = '0', fails = '0'] = /^DONE (\d+) fails=(\d+)$/m.exec(output!) ?? [];
    return { output: output!, before: before!, after: successor()!, files: Number(files), fails: Number(fails) };
  } finally {
    rmSync(gate, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  await cliAsync(['convert', '--source', `${REGISTRY}/debian-ml:latest`, '--target', IMAGE, '--plain-http']);
  await containerdUp();
}, 300_000);

afterAll(stop, 120_000);

const erofsMountsUnder = (dir: string): string[] =>
  readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')).filter((f) => f[4]?.startsWith(`${dir}/`) && f[f.indexOf('-') + 1] === 'erofs').map((f) => f[4]!);

describe.each([['restart', 'fuse'], ['failover', 'fuse'], ['failover', 'block']] as const)('recover policy %s, fs driver %s', (policy, driver) => {
  const flags = ['--recover-policy', policy, '--fs-driver', driver];
  beforeAll(async () => {
    root = mkdtempSync(`${E2E_DIR}-${policy}-${driver}-`);
    sn = await startSnapshotter(root, flags);
    await cleanImage();
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, IMAGE]);
    expect(pull.code, pull.stderr).toBe(0);
    // keeps the image in use: a reader that fails fast (restart policy) must not take the daemon
    // with it when its container goes
    const holder = await ctr(['run', '-d', '--snapshotter', SNAPSHOTTER, IMAGE, 'holder', 'sleep', '600']);
    expect(holder.code, holder.stderr).toBe(0);
    // the block driver's lower dir is a kernel EROFS mount (file-backed: its source is the daemon's file)
    expect(erofsMountsUnder(root).length).toBe(driver === 'block' ? 1 : 0);
  }, 120_000);
  afterAll(stop, 120_000);

  it('brings a daemon killed -9 during a running container\'s reads back; new containers start', async () => {
    const { output, before, after, files, fails } = await killDuringReads();
    console.log(`${policy} ${driver}: ${output.trim().split('\n').at(-1)}`);
    // it read files before the kill, all well, and (many) more after it, the daemon dead by then
    expect(output).toMatch(new RegExp(`^read ${BEFORE_KILL} fails=0\nresumed$`, 'm'));
    expect(files).toBeGreaterThan(2 * BEFORE_KILL);
    expect(after).not.toBe(before);
    // with restart the reads after the kill went to the dead daemon's connection and failed
    if (policy === 'restart') expect(fails).toBeGreaterThan(0);
    if (policy === 'failover') {
      // the running container never saw an error: its reads waited for the successor
      expect(output).toMatch(/DONE \d+ fails=0/);
      expect(sn!.log()).toContain('image daemon restarted after it died');
    }
    const next = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, IMAGE, 'next', '/etc/e2e/expect.sh'], 180_000);
    expect(next.stdout).toContain('ALL OK');
  });

  it.runIf(policy === 'failover')('also fails over a daemon the snapshotter adopted after its own kill -9 and restart', async () => {
    const restart = async (): Promise<void> => {
      sn!.child.kill('SIGKILL');
      await sn!.exit;
      sn = await startSnapshotter(root, flags);
      expect(sn.log()).toContain('holding the adopted daemon');
    };
    // the reader waits at its gate while the snapshotter restarts
    const { output, before, after, files } = await killDuringReads(restart);
    console.log(`${policy} ${driver} after a snapshotter restart: ${output.trim().split('\n').at(-1)}`);
    expect(output).toMatch(new RegExp(`^read ${BEFORE_KILL} fails=0\nresumed$`, 'm'));
    expect(files).toBeGreaterThan(2 * BEFORE_KILL);
    expect(after).not.toBe(before);
    expect(output).toMatch(/DONE \d+ fails=0/);
  });
});
