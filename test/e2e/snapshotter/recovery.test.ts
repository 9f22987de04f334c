// An image daemon killed -9 while a container reads files it never read before (each read goes to
// the daemon), under both recover policies, with real containerd: with `restart` the daemon comes
// back on a fresh mount (new containers start; the running one lost its mount's connection), with
// `failover` the snapshotter kept the FUSE descriptor and the successor takes the connection over,
// so the running container's reads only stall and all succeed.
import { mkdtempSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync } from '../../helpers/cli.js';
import { containerdUp, ctr, ctrRemote, E2E_DIR, killLeftovers, recordedDaemons, REGISTRY, sleep, SNAPSHOTTER, startSnapshotter, type SnapshotterProcess } from '../../snapshotter/env.js';

const IMAGE = `${REGISTRY}/debian-ml:snap-recovery-nydus`;
// reads every file over 1 KiB under /usr once, counting failures, with progress lines
const reader = (pause = 0): string => `n=0; fails=0; for f in $(find /usr -type f -size +1k); do n=$((n+1)); cat "$f" > /dev/null 2>&1 || fails=$((fails+1)); [ $((n % 200)) = 0 ] && echo "read $n" && sleep ${pause}; done; echo "DONE $n fails=$fails"`;

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

/**
 * Starts the reader, kills the image daemon -9 once it is under way (after `meanwhile`), returns
 * the reader's output and the daemon pids.
 */
async function killDuringReads(pause = 0, meanwhile?: () => Promise<void>): Promise<{ output: string; before: number; after: number | undefined }> {
  let output = '';
  const reading = new Promise<void>((done) => {
    void ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, IMAGE, 'reader', 'sh', '-c', reader(pause)], 180_000).then((r) => {
      output = r.stdout + r.stderr;
      done();
    });
  });
  // the daemon exists once the container's snapshot is prepared
  let before: number | undefined;
  for (let i = 0; i < 200 && before === undefined; i++) {
    await sleep(50);
    before = recordedDaemons(root)[0]?.pid;
  }
  expect(before).toBeDefined();
  await sleep(1500);
  await meanwhile?.();
  process.kill(before!, 'SIGKILL');
  await reading;
  // with restart the reader may finish (failing fast) before the supervisor has acted
  let after = recordedDaemons(root)[0]?.pid;
  for (let i = 0; i < 100 && (after === undefined || after === before); i++) {
    await sleep(200);
    after = recordedDaemons(root)[0]?.pid;
  }
  return { output, before: before!, after };
}

beforeAll(async () => {
  await cliAsync(['convert', '--source', `${REGISTRY}/debian-ml:latest`, '--target', IMAGE, '--plain-http']);
  await containerdUp();
}, 300_000);

afterAll(stop, 120_000);

describe.each(['restart', 'failover'] as const)('recover policy %s', (policy) => {
  beforeAll(async () => {
    root = mkdtempSync(`${E2E_DIR}-${policy}-`);
    sn = await startSnapshotter(root, ['--recover-policy', policy]);
    await cleanImage();
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, IMAGE]);
    expect(pull.code, pull.stderr).toBe(0);
    // keeps the image in use: a reader that fails fast (restart policy) must not take the daemon
    // with it when its container goes
    const holder = await ctr(['run', '-d', '--snapshotter', SNAPSHOTTER, IMAGE, 'holder', 'sleep', '600']);
    expect(holder.code, holder.stderr).toBe(0);
  }, 120_000);
  afterAll(stop, 120_000);

  it('brings a daemon killed -9 during a running container\'s reads back; new containers start', async () => {
    const { output, before, after } = await killDuringReads();
    console.log(`${policy}: ${output.trim().split('\n').at(-1)}`);
    expect(output).toMatch(/^read 200$/m);
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
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
      sn = await startSnapshotter(root, ['--recover-policy', policy]);
      expect(sn.log()).toContain('holding the adopted daemon');
    };
    // pauses keep the reader going while the snapshotter restarts (the blob cache is warm now)
    const { output, before, after } = await killDuringReads(0.3, restart);
    console.log(`${policy} after a snapshotter restart: ${output.trim().split('\n').at(-1)}`);
    expect(after).not.toBe(before);
    expect(output).toMatch(/DONE \d+ fails=0/);
  });
});
