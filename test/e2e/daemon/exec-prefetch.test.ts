// End to end, a program's start fetched ahead (needs root, /dev/fuse and the registry of the global
// setup): busybox converted with 64 KiB chunks (so its code spans many), mounted lazily with
// `nydusify-ts mount --trace` (no request amplification: each miss fetches its own chunk), and run
// in a chroot of the mount. Its reads by execve (FMODE_EXEC) make it a program being started: the
// chunks of its linking data, code and dynamic segment then come in as prefetch, every one of them
// and none outside them, while the run's own faults fetch the rest.
// With --exec-prefetch 0 nothing is prefetched.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../../src/daemon/api-client.js';
import { elfStartRanges } from '../../../src/daemon/exec-prefetch.js';
import type { AccessTrace } from '../../../src/trace/access-trace.js';
import { cliAsync } from '../../helpers/cli.js';
import { cleanUp, type Daemon, startDaemon, stopWithStats, waitMounted } from '../../helpers/daemon.js';
import { waitFor } from '../../helpers/wait-for.js';

const REGISTRY = '127.0.0.1:5000';
const TARGET = `${REGISTRY}/busybox:exec-prefetch-test`;
const CHUNK = 0x10000;

const work = mkdtempSync(join(tmpdir(), 'nydusify-exec-prefetch-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];

async function serve(name: string, extra: string[] = []): Promise<{ d: Daemon; api: DaemonClient }> {
  const d = startDaemon(['--target', TARGET, '--plain-http', '--amplify', '0', '--cache-dir', p(`${name}-cache`), '--trace', p(`${name}.json`), ...extra], p(name));
  daemons.push(d);
  await waitMounted(d);
  const sock = readdirSync(d.stateDir).find((f) => f.endsWith('.sock'));
  if (!sock) throw new Error(`no API socket in ${d.stateDir}`);
  return { d, api: new DaemonClient(join(d.stateDir, sock)) };
}

function head(file: string): Buffer {
  const b = Buffer.alloc(4096);
  const fd = openSync(file, 'r');
  try {
    return b.subarray(0, readSync(fd, b, 0, b.length, 0));
  } finally {
    closeSync(fd);
  }
}

/** File offsets of busybox's chunks fetched as `kind`. */
function fetched(trace: AccessTrace, kind: string): Set<number> {
  const bb = trace.files.findIndex((f) => f.path === '/bin/busybox');
  return new Set(trace.fetches.filter((f) => f.kind === kind && f.file === bb).map((f) => f.offset!));
}

beforeAll(async () => {
  await cliAsync(['convert', '--source', `${REGISTRY}/busybox:latest`, '--target', TARGET, '--plain-http', '--chunk-size', `0x${CHUNK.toString(16)}`]);
}, 60_000);

afterAll(async () => {
  await cleanUp(daemons, work);
});

describe('exec prefetch', () => {
  it('fetches the code and linking data of a program being started, and nothing else of it', async () => {
    // busybox is small: fetched ahead only with no minimum size
    const { d, api } = await serve('on', ['--exec-prefetch-min', '0']);
    execFileSync('chroot', [d.mnt, '/bin/busybox', 'true']);
    const busybox = join(d.mnt, 'bin', 'busybox');
    const ranges = elfStartRanges(head(busybox), statSync(busybox).size);
    expect(ranges, 'busybox is an ELF program').toBeDefined();
    const expected = new Set<number>();
    for (const [start, end] of ranges!) for (let c = Math.floor(start / CHUNK) * CHUNK; c < end; c += CHUNK) expected.add(c);
    expect(expected.size).toBeGreaterThan(4);
    let trace!: AccessTrace;
    // every chunk of those ranges in: by prefetch, or by the run's own faults first
    await waitFor(async () => {
      trace = await api.accessTrace('/');
      const had = new Set([...fetched(trace, 'prefetch'), ...fetched(trace, 'demand')]);
      return [...expected].every((c) => had.has(c));
    }, 'the program\'s start ranges fetched', 20_000, 100);
    const prefetched = fetched(trace, 'prefetch');
    expect(prefetched.size).toBeGreaterThan(0);
    for (const c of prefetched) expect(expected.has(c), `chunk at ${c} lies outside the start ranges`).toBe(true);
    expect((await stopWithStats(d)).code).toBe(0);
  }, 60_000);

  it('fetches nothing ahead with --exec-prefetch 0', async () => {
    const { d, api } = await serve('off', ['--exec-prefetch', '0']);
    execFileSync('chroot', [d.mnt, '/bin/busybox', 'true']);
    await waitFor(async () => (await api.backendStats()).inflightChunks === 0, 'fetches settled');
    const trace = await api.accessTrace('/');
    expect(fetched(trace, 'demand').size).toBeGreaterThan(0);
    expect(trace.fetches.filter((f) => f.kind === 'prefetch')).toEqual([]);
    expect((await stopWithStats(d)).code).toBe(0);
  }, 60_000);
});
