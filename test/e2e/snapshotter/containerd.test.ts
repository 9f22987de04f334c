// End to end with real containerd + runc + the loopback registry: containerd's proxy plugin points
// at `nydusify-ts snapshotter`. Plain OCI images are pulled and unpacked through it like overlayfs;
// Nydus images pulled with `ctr-remote image rpull` are never downloaded: their layers commit
// remotely and containers read through a daemon, lazily (counted at the registry). Then recovery:
// the snapshotter killed -9 and restarted under running containers, and an image daemon killed -9
// (restart policy: it comes back and new containers start). A Nydus image's first container start
// leaves its access trace under the snapshotter's root, which later starts do not replace. An image's
// daemon is a spare the snapshotter started ahead of need; a spare never outlives its snapshotter.
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AccessTrace, parseAccessTrace } from '../../../src/trace/access-trace.js';
import { cliAsync } from '../../helpers/cli.js';
import { waitFor } from '../../helpers/wait-for.js';
import {
  containerdUp, ctr, ctrRemote, E2E_DIR, SOCKET, killLeftovers, manifestLayers, mustCtr, recordedDaemons, REGISTRY, registryBlobBytes,
  recordedSpares, registryLogOffset, sleep, SNAPSHOTTER, startSnapshotter, type SnapshotterProcess,
} from '../../snapshotter/env.js';
import { isRunning } from '../../../src/daemon/process-identity.js';
import { SPARE_NICENESS } from '../../../src/daemon/spare-assignment.js';

const DEBIAN = `${REGISTRY}/debian-ml:snap-e2e-nydus`;
/** DEBIAN optimized for `node -e 1` (optimize --run: traced under our daemon, no container). */
const DEBIAN_OPT = `${REGISTRY}/debian-ml:snap-e2e-nydus-opt`;
const BUSYBOX = `${REGISTRY}/busybox:snap-e2e-nydus`;
const PLAIN = `${REGISTRY}/busybox:latest`;
const root = mkdtempSync(`${E2E_DIR}-root-`);
let sn: SnapshotterProcess;

/** The distinct niceness values of a process's threads (field 19 of /proc/PID/task/TID/stat). */
const threadNiceness = (pid: number): number[] => [...new Set(readdirSync(`/proc/${pid}/task`).map((tid) => {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}))];

/** Whether a spare daemon has said it is ready (its log, until it is assigned). */
const spareReady = (): boolean => {
  const dir = join(root, 'daemons', 'spares');
  return existsSync(dir) && readdirSync(dir).some((n) => n.endsWith('.log') && readFileSync(join(dir, n), 'utf8').includes('"spare daemon ready"'));
};
/** The pids of the image daemons the snapshotter started. */
const daemonStarts = (): number[] => sn.log().split('\n').filter((l) => l.includes('"msg":"daemon started"')).map((l) => (JSON.parse(l) as { pid: number }).pid);

const runIn = (image: string, id: string, args: string[]) => ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, image, id, ...args], 180_000);

/** Waits until the registry's log has not grown for a second (at most 30 s). */
async function untilRegistryQuiet(): Promise<void> {
  let size = registryLogOffset();
  for (let quiet = 0, waited = 0; quiet < 1000 && waited < 30_000; waited += 100) {
    await sleep(100);
    const now = registryLogOffset();
    quiet = now === size ? quiet + 100 : 0;
    size = now;
  }
}

async function stopSnapshotter(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (sn.child.exitCode !== null) return;
  sn.child.kill(signal);
  await sn.exit;
}

beforeAll(async () => {
  // images converted for this file only (other tests may re-push shared tags meanwhile)
  await cliAsync(['convert', '--source', `${REGISTRY}/debian-ml:latest`, '--target', DEBIAN, '--plain-http']);
  await cliAsync(['convert', '--source', `${REGISTRY}/busybox:latest`, '--target', BUSYBOX, '--plain-http']);
  await cliAsync(['optimize', '--source', DEBIAN, '--target', DEBIAN_OPT, '--plain-http', '--run', '/usr/local/bin/node', '-e', '1']);
  await containerdUp();
  sn = await startSnapshotter(root);
  // a previous run's leftovers in our namespace
  for (const id of ['plain', 'lazy', 'opt', 'bb', 'bb2', 'hold', 'after', 'reader', 'fresh', 'toml']) {
    await ctr(['task', 'kill', '-s', 'KILL', id]);
    await ctr(['task', 'rm', '-f', id]);
    await ctr(['container', 'rm', id]);
  }
  for (const ref of [DEBIAN, DEBIAN_OPT, BUSYBOX, PLAIN]) await ctr(['images', 'rm', '--sync', ref]);
}, 300_000);

afterAll(async () => {
  for (const id of ['hold', 'reader']) {
    await ctr(['task', 'kill', '-s', 'KILL', id]);
    await sleep(300);
    await ctr(['task', 'rm', '-f', id]);
    await ctr(['container', 'rm', id]);
  }
  for (const ref of [DEBIAN, DEBIAN_OPT, BUSYBOX, PLAIN]) await ctr(['images', 'rm', '--sync', ref]);
  await stopSnapshotter();
  await killLeftovers(root);
}, 120_000);

/** The access trace the snapshotter keeps of `image`, if any. */
function traceOf(image: string): { file: string; trace: AccessTrace } | undefined {
  const dir = join(root, 'traces');
  if (!existsSync(dir)) return undefined;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    const trace = parseAccessTrace(readFileSync(join(dir, name)));
    if (trace.image === image) return { file: join(dir, name), trace };
  }
  return undefined;
}

describe('snapshotter with containerd', () => {
  it('runs a plain OCI image (pulled and unpacked through it, overlayfs layers)', async () => {
    await mustCtr(['images', 'pull', '--plain-http', '--snapshotter', SNAPSHOTTER, PLAIN]);
    const r = await runIn(PLAIN, 'plain', ['echo', 'hello']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('hello');
    const snaps = await mustCtr(['snapshots', '--snapshotter', SNAPSHOTTER, 'ls']);
    expect(snaps).toMatch(/Committed/);
  });

  it('runs converted debian-ml lazily: starts before most blob bytes are fetched, expect.sh ALL OK', async () => {
    const layers = await manifestLayers(DEBIAN);
    const blobs = layers.filter((l) => l.mediaType.includes('nydus.blob'));
    const blobBytes = blobs.reduce((s, l) => s + l.size, 0);
    const all = layers.map((l) => l.digest);
    // the image's daemon will be the spare started ahead of need
    await waitFor(() => recordedSpares(root).length === 1 && spareReady(), 'a spare daemon', 20_000, 100);
    const spare = recordedSpares(root)[0]!.pid!;
    // a spare waits at a low priority (every thread of it), and serves at the snapshotter's once assigned
    expect(threadNiceness(spare)).toEqual([SPARE_NICENESS]);
    const from = registryLogOffset();
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, DEBIAN]);
    expect(pull.code, pull.stderr).toBe(0);
    // rpull downloaded none of the layers: every one committed remotely (the image's daemon, mounted
    // from the first layer's commit on, may be reading its bootstrap meanwhile)
    expect(registryBlobBytes(from, all, /^containerd\//)).toBe(0);
    const started = await runIn(DEBIAN, 'lazy', ['/bin/sh', '-c', 'echo started']);
    expect(started.stdout.trim()).toBe('started');
    expect(daemonStarts()).toContain(spare);
    expect(threadNiceness(spare)).toEqual([0]);
    // and another spare stands by
    await waitFor(() => recordedSpares(root).some((x) => x.pid !== spare) && spareReady(), 'the next spare daemon', 20_000, 100);
    const atStart = registryBlobBytes(from, all);
    expect(atStart).toBeLessThan(blobBytes * 0.1);
    const r = await runIn(DEBIAN, 'lazy', ['/etc/e2e/expect.sh']);
    expect(r.stdout).toContain('ALL OK');
    expect(r.stdout).not.toMatch(/^FAIL/m);
    const afterAll = registryBlobBytes(from, all);
    console.log(`debian-ml: blobs ${blobBytes} B; fetched ${atStart} B when the container started, ${afterAll} B after expect.sh`);
    expect(afterAll).toBeLessThan(blobBytes * 0.75);
  });

  it('runs debian-ml optimized for node -e 1: its start fetches the hot pack and little else; a container reading otherwise runs expect.sh ALL OK', async () => {
    const layers = await manifestLayers(DEBIAN_OPT);
    const hot = layers.find((l) => l.annotations?.['org.nydusify-ts.hot-region'] !== undefined)!;
    const pack = layers.find((l) => l.annotations?.['org.nydusify-ts.hot-pack'] !== undefined)!;
    // the hot region comes as the pack: the same chunks in fewer bytes
    const hotBytes = pack.size;
    expect(hotBytes).toBeLessThan(Number(hot.annotations!['org.nydusify-ts.hot-region']));
    const blobs = layers.filter((l) => l.mediaType.includes('nydus.blob'));
    // the source's blobs are this image's cold blobs: what the last test's daemon still fetches in the
    // background (a program's start fetched ahead) must not count here
    await untilRegistryQuiet();
    const from = registryLogOffset();
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, DEBIAN_OPT]);
    expect(pull.code, pull.stderr).toBe(0);
    // the traced command: the hot region, and what the container touched that the chroot did not (a few chunks)
    const r = await runIn(DEBIAN_OPT, 'opt', ['node', '-e', '1']);
    expect(r.code, r.stderr).toBe(0);
    const atStart = registryBlobBytes(from, blobs.map((l) => l.digest));
    expect(atStart).toBeGreaterThanOrEqual(hotBytes);
    expect(atStart).toBeLessThan(hotBytes + 4 * 2 ** 20);
    // access the trace never saw: slower, never wrong
    const answer = await runIn(DEBIAN_OPT, 'opt', ['node', '-e', 'console.log(6 * 7)']);
    expect(answer.stdout.trim()).toBe('42');
    const other = await runIn(DEBIAN_OPT, 'opt', ['/etc/e2e/expect.sh']);
    expect(other.stdout).toContain('ALL OK');
    expect(other.stdout).not.toMatch(/^FAIL/m);
    console.log(`debian-ml optimized: hot pack ${hotBytes} B; fetched ${atStart} B by node's start, ${registryBlobBytes(from, blobs.map((l) => l.digest))} B after expect.sh`);
    // its blobs are the source's too: gone with it, so the cache test below sees the source's alone
    await mustCtr(['images', 'rm', '--sync', DEBIAN_OPT]);
  });

  it('runs converted busybox: echo hello; keeps the trace of its first start, not of the next', async () => {
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, BUSYBOX]);
    expect(pull.code, pull.stderr).toBe(0);
    const r = await runIn(BUSYBOX, 'bb', ['echo', 'hello']);
    expect(r.stdout.trim()).toBe('hello');
    // written when the image is unmounted (its last container gone); the image mounted at pull may
    // have been unmounted before the container ran (a Cleanup meanwhile): its trace, without reads,
    // is replaced by the container's
    let file: string | undefined;
    await waitFor(() => (file = traceOf(BUSYBOX)?.file) !== undefined && traceOf(BUSYBOX)!.trace.reads.length > 0, 'the trace of busybox\'s first start', 20_000, 200);
    const first = traceOf(BUSYBOX)!;
    const busybox = first.trace.files.findIndex((f) => f.path === '/bin/busybox');
    expect(busybox, JSON.stringify(first.trace.files)).toBeGreaterThanOrEqual(0);
    expect(first.trace.reads.some((x) => x.file === busybox)).toBe(true);
    // what containerd reads to make the container (user and group lookups) is fetched as the image is mounted: those reads hit
    const runtimeFiles = ['/etc/passwd', '/etc/group'].map((path) => first.trace.files.findIndex((f) => f.path === path));
    expect(first.trace.reads.some((x) => runtimeFiles.includes(x.file))).toBe(true);
    expect(first.trace.reads.filter((x) => runtimeFiles.includes(x.file) && x.miss)).toEqual([]);
    const bytes = readFileSync(file!);
    const mtime = statSync(file!).mtimeMs;
    const again = await runIn(BUSYBOX, 'bb2', ['echo', 'again']);
    expect(again.stdout.trim()).toBe('again');
    expect(readFileSync(file!).equals(bytes)).toBe(true);
    expect(statSync(file!).mtimeMs).toBe(mtime);
  });

  it('keeps running containers working across a snapshotter kill -9 and restart; new ones start; no spare daemon outlives its snapshotter', async () => {
    await mustCtr(['run', '-d', '--snapshotter', SNAPSHOTTER, DEBIAN, 'hold', 'sleep', '600']);
    const daemonsBefore = recordedDaemons(root).map((d) => d.pid);
    // a spare taken is replaced a few seconds later (spare-daemons.ts)
    await waitFor(() => recordedSpares(root).length === 1, 'a spare daemon', 20_000, 100);
    const spares = recordedSpares(root);
    await stopSnapshotter('SIGKILL');
    // an orphaned spare exits by itself (nobody would ever assign it)
    await waitFor(() => !isRunning(spares[0]), 'the orphaned spare to exit', 5_000, 100);
    sn = await startSnapshotter(root);
    expect(sn.log()).toContain('image daemon adopted');
    // the daemon was adopted, not restarted
    expect(recordedDaemons(root).map((d) => d.pid)).toEqual(daemonsBefore);
    // the running container reads files it never read before (lazily, through the same daemon)
    const exec = await mustCtr(['task', 'exec', '--exec-id', 'e1', 'hold', 'sha256sum', '/usr/local/bin/node']);
    expect(exec).toMatch(/^[0-9a-f]{64} /);
    const fresh = await runIn(DEBIAN, 'fresh', ['/etc/e2e/expect.sh']);
    expect(fresh.stdout).toContain('ALL OK');
  });

  it('restart policy: an image daemon killed -9 is restarted and remounted; new containers start', async () => {
    const before = recordedDaemons(root);
    expect(before.length).toBe(1);
    process.kill(before[0]!.pid!, 'SIGKILL');
    // brought back by the supervisor, or by a Cleanup containerd's GC happened to call meanwhile
    await waitFor(() => {
      const pid = recordedDaemons(root)[0]?.pid;
      return pid !== undefined && pid !== before[0]!.pid;
    }, 'a successor daemon', 20_000, 200);
    const r = await runIn(DEBIAN, 'after', ['/etc/e2e/expect.sh']);
    expect(r.stdout).toContain('ALL OK');
    await ctr(['task', 'kill', '-s', 'KILL', 'hold']);
  });

  it('reports cached bytes as the usage of remote layers; removing the image removes its blobs from the cache', async () => {
    const blobIds = (await manifestLayers(DEBIAN)).filter((l) => l.mediaType.includes('nydus.blob')).map((l) => l.digest.slice(7));
    const cached = () => blobIds.filter((id) => existsSync(join(root, 'cache', `${id}.blob.data`)));
    expect(cached().length).toBeGreaterThan(0);
    let reported = 0;
    for (const line of (await mustCtr(['snapshots', '--snapshotter', SNAPSHOTTER, 'ls'])).split('\n').slice(1)) {
      const key = line.split(/\s+/)[0];
      if (!key) continue;
      const info = JSON.parse(await mustCtr(['snapshots', '--snapshotter', SNAPSHOTTER, 'info', key])) as { Labels?: Record<string, string> };
      if (info.Labels?.['containerd.io/snapshot/nydus-blob'] !== 'true') continue;
      const usage = (await mustCtr(['snapshots', '--snapshotter', SNAPSHOTTER, 'usage', key])).split('\n')[1]!;
      reported += Number(/\s(\d+(?:\.\d+)?)\s*(\w*B)\s/.exec(usage)?.[1] ?? 0);
    }
    expect(reported).toBeGreaterThan(0);
    // the image's last user goes, then the image (containerd's GC removes the snapshots and calls Cleanup)
    for (const id of ['hold']) {
      await sleep(300);
      await ctr(['task', 'rm', '-f', id]);
      await mustCtr(['container', 'rm', id]);
    }
    await mustCtr(['images', 'rm', '--sync', DEBIAN]);
    expect(cached()).toEqual([]);
    expect(recordedDaemons(root)).toEqual([]);
  });

  it('starts from nydus-snapshotter\'s config.toml (root, address, daemon mode, the daemons\' nydusd config, log level) and serves an image lazily', async () => {
    await stopSnapshotter();
    // plain HTTP comes from the nydusd config's scheme: no --plain-http anywhere
    writeFileSync(join(root, 'nydusd.json'), JSON.stringify({
      device: { backend: { type: 'registry', config: { scheme: 'http', timeout: 5, retry_limit: 2 } }, cache: { type: 'blobcache', config: { work_dir: join(root, 'cache') } } },
      mode: 'direct', digest_validate: false, fs_prefetch: { enable: false },
    }));
    writeFileSync(join(root, 'config.toml'), [
      'version = 1', `root = "${root}"`, `address = "${SOCKET}"`, 'daemon_mode = "dedicated"',
      '[daemon]', `nydusd_config = "${join(root, 'nydusd.json')}"`, 'fs_driver = "fusedev"', 'recover_policy = "restart"', 'threads_number = 2',
      '[log]', 'level = "debug"', '[cache_manager]', 'gc_period = "24h"', '',
    ].join('\n'));
    sn = await startSnapshotter(root, ['--config', join(root, 'config.toml')], []);
    expect(sn.log()).toMatch(/snapshotter config keys that change nothing here, ignored.*cache_manager\.gc_period/);
    await ctr(['images', 'rm', '--sync', BUSYBOX]);
    const pull = await ctrRemote(['image', 'rpull', '--snapshotter', SNAPSHOTTER, BUSYBOX]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(sn.log()).toMatch(/"level":"debug"/);
    expect(sn.log()).toMatch(/remote layer committed/);
    const r = await runIn(BUSYBOX, 'toml', ['echo', 'hello']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('hello');
  });
});
