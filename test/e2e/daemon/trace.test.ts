// End to end, the access trace (needs root, /dev/fuse and the registry of the global setup):
// busybox converted into the registry and mounted lazily with `nydusify-ts mount --trace`. Reads of
// known files at known offsets (O_DIRECT, so the kernel asks for exactly those bytes) show up in
// GET /api/v1/metrics/pattern with their paths and offsets, the first as a miss with the demand
// fetch it waited for, the same read again as a hit; on unmount the trace file is written, parses,
// and its fetches add up to exactly the bytes the daemon fetched from the registry. With --prefetch
// the prefetch list's chunks are recorded as prefetch. A shared daemon writes an image's trace when
// that image alone is unmounted through the API (its workers still serving others).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonApiError, DaemonClient } from '../../../src/daemon/api-client.js';
import { type AccessTrace, parseAccessTrace } from '../../../src/trace/access-trace.js';
import { killApiDaemons, startApiDaemon, stopApiDaemon } from '../../helpers/api-daemon.js';
import { cliAsync } from '../../helpers/cli.js';
import { cleanUp, type Daemon, startDaemon, stopWithStats, waitMounted } from '../../helpers/daemon.js';
import { waitFor } from '../../helpers/wait-for.js';

const REGISTRY = '127.0.0.1:5000';
const TARGET = `${REGISTRY}/busybox:trace-test`;
const PREFETCHED = `${REGISTRY}/busybox:trace-prefetch-test`;

const work = mkdtempSync(join(tmpdir(), 'nydusify-trace-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];

async function serve(name: string, target: string, extra: string[] = []): Promise<{ d: Daemon; api: DaemonClient }> {
  const d = startDaemon(['--target', target, '--plain-http', '--cache-dir', p(`${name}-cache`), '--trace', p(`${name}.json`), ...extra], p(name));
  daemons.push(d);
  await waitMounted(d);
  const sock = readdirSync(d.stateDir).find((f) => f.endsWith('.sock'));
  if (!sock) throw new Error(`no API socket in ${d.stateDir}`);
  return { d, api: new DaemonClient(join(d.stateDir, sock)) };
}

/** `dd iflag=direct`: the kernel asks the daemon for exactly these bytes. */
function readDirect(file: string, blockSize: number, skip: number): void {
  execFileSync('dd', [`if=${file}`, 'of=/dev/null', 'iflag=direct', `bs=${blockSize}`, `skip=${skip}`, 'count=1'], { stdio: 'ignore' });
}

const fileIndex = (trace: AccessTrace, path: string): number => trace.files.findIndex((f) => f.path === path);

beforeAll(async () => {
  await Promise.all([
    cliAsync(['convert', '--source', `${REGISTRY}/busybox:latest`, '--target', TARGET, '--plain-http']),
    cliAsync(['convert', '--source', `${REGISTRY}/busybox:latest`, '--target', PREFETCHED, '--plain-http', '--prefetch-patterns'], { input: '/bin/busybox\n' }),
  ]);
}, 60_000);

afterAll(async () => {
  killApiDaemons();
  await cleanUp(daemons, work);
});

describe('nydusify-ts mount --trace', () => {
  it('records reads (paths, offsets, misses) and fetches; writes the trace on unmount, fetches summing to the bytes fetched', async () => {
    const { d, api } = await serve('mnt', TARGET);
    const busybox = join(d.mnt, 'bin', 'busybox');
    readDirect(busybox, 4096, 100);
    // the miss got its bytes as soon as they were verified; once stored, any worker finds them
    await waitFor(async () => (await api.backendStats()).inflightChunks === 0, 'the fetched chunks stored');
    readDirect(busybox, 4096, 100);
    const passwd = readFileSync(join(d.mnt, 'etc', 'passwd'));

    const trace = await api.accessTrace('/');
    const bb = fileIndex(trace, '/bin/busybox');
    expect(bb, JSON.stringify(trace.files)).toBeGreaterThanOrEqual(0);
    expect(trace.files[bb]!.size).toBe(statSync(busybox).size);
    const bbReads = trace.reads.filter((r) => r.file === bb);
    expect(bbReads.map((r) => [r.offset, r.length, r.miss])).toEqual([[409600, 4096, true], [409600, 4096, false]]);
    const pw = fileIndex(trace, '/etc/passwd');
    expect(trace.reads.filter((r) => r.file === pw).map((r) => [r.offset, r.length])).toEqual([[0, passwd.length]]);
    // the demand fetch the miss waited for: busybox's chunk holding offset 409600, where it starts in the file
    const chunkSize = trace.blobs[0]!.chunkSize;
    const demand = trace.fetches.filter((f) => f.kind === 'demand');
    expect(demand.map((f) => [f.file, f.offset])).toContainEqual([bb, Math.floor(409600 / chunkSize) * chunkSize]);
    for (const f of trace.fetches) {
      expect(f.bytes).toBeGreaterThan(0);
      expect(f.t).toBeLessThanOrEqual(trace.duration);
    }
    expect(bbReads[0]!.t).toBeLessThanOrEqual(bbReads[1]!.t);
    expect(trace.truncated).toBe(false);

    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    const saved = parseAccessTrace(readFileSync(p('mnt.json')));
    expect(saved.image).toBe(TARGET);
    expect(saved.reads.length).toBeGreaterThanOrEqual(trace.reads.length);
    expect(saved.reads.slice(0, trace.reads.length)).toEqual(trace.reads);
    expect(saved.fetches.reduce((s, f) => s + f.bytes, 0)).toBe(stats.fetchedBytes);
    expect(saved.fetches.length).toBe(stats.chunks);
    console.log(`trace: ${saved.reads.length} reads, ${saved.fetches.length} fetches (${saved.fetches.filter((f) => f.kind === 'demand').length} demand) = ${stats.fetchedBytes} B, the daemon's count`);
  }, 60_000);

  it('records the prefetch list\'s chunks as prefetch; answers 404 for a mount it does not have', async () => {
    const { d, api } = await serve('pre', PREFETCHED, ['--prefetch']);
    let trace!: AccessTrace;
    await waitFor(async () => (trace = await api.accessTrace('/')).fetches.some((f) => f.kind === 'prefetch'), 'prefetched chunks in the trace', 10_000, 100);
    const prefetched = trace.fetches.filter((f) => f.kind === 'prefetch');
    expect(prefetched.length).toBeGreaterThan(0);
    // placed in the file that holds them
    expect(new Set(prefetched.map((f) => trace.files[f.file!]?.path))).toEqual(new Set(['/bin/busybox']));
    await expect(api.accessTrace('nope')).rejects.toMatchObject({ status: 404 } satisfies Partial<DaemonApiError>);
    const { code } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(parseAccessTrace(readFileSync(p('pre.json'))).fetches.length).toBeGreaterThanOrEqual(prefetched.length);
  }, 60_000);

  it('a shared daemon writes an image\'s trace when that image is unmounted through the API', async () => {
    const d = await startApiDaemon(work, 'shared', null);
    await d.client.mount('bb', { target: TARGET, plainHttp: true, trace: p('shared-bb.json') });
    await d.client.mount('other', { target: TARGET, plainHttp: true });
    const passwd = readFileSync(join(d.mnt, 'bb', 'etc', 'passwd'));
    readFileSync(join(d.mnt, 'other', 'etc', 'group'));
    await d.client.umount('bb');
    const trace = parseAccessTrace(readFileSync(p('shared-bb.json')));
    // the worker that served the read still waits on /dev/fuse: its reads were taken from its ring
    // and only that image's: /etc/group was read through the other one
    expect(trace.reads.map((r) => [trace.files[r.file]!.path, r.offset, r.length])).toEqual([['/etc/passwd', 0, passwd.length]]);
    expect(await stopApiDaemon(d)).toBe(0);
  }, 60_000);
});
