// End to end, the daemon and its API (needs root, /dev/fuse and the registry of the global setup):
// a shared daemon serves a registry image and a local image side by side under one FUSE mount,
// mounted and unmounted through the unix-socket API; bad requests get errors and change nothing;
// metrics are Prometheus text with real counts; a dedicated daemon with --prefetch has the files
// of the image's prefetch list in its cache before anyone reads them.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../helpers/wait-for.js';
import { DaemonClient } from '../../../src/daemon/api-client.js';
import { cliAsync, repoRoot } from '../../helpers/cli.js';
import { makeSampleLayer } from '../../helpers/sample-tree.js';
import { diffManifests, treeManifest, type Manifest } from '../../helpers/trees.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const REGISTRY = '127.0.0.1:5000';
const BUSYBOX = `${REGISTRY}/busybox:api-test`;
const PREFETCHED = `${REGISTRY}/busybox:prefetch-test`;

const work = mkdtempSync(join(tmpdir(), 'nydusify-api-'));
const p = (...parts: string[]) => join(work, ...parts);
const children: ChildProcess[] = [];
let reference: Manifest;

interface Running {
  child: ChildProcess;
  client: DaemonClient;
  stderr(): string;
}

/** `nydusify-ts daemon ARGS` in the foreground, once its API answers. */
async function startDaemon(name: string, args: string[]): Promise<Running> {
  const sock = p(`${name}.sock`);
  mkdirSync(p(name), { recursive: true });
  const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'daemon', '--apisock', sock, '--mountpoint', p(name), '--cache-dir', p(`${name}-cache`), '--plain-http', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NYDUSIFY_LOG_LEVEL: 'info' },
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const client = new DaemonClient(sock, 5000);
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`daemon exited ${child.exitCode}: ${stderr}`);
    const info = await client.info().catch(() => undefined);
    if (info?.state === 'RUNNING' && stderr.includes('"msg":"daemon ready"')) return { child, client, stderr: () => stderr };
    if (Date.now() > deadline) throw new Error(`daemon did not answer: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One raw request: status and body (for the malformed ones the client would not send). */
function raw(sock: string, method: string, path: string, body?: string | Buffer): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = request({ socketPath: sock, method, path }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => done({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', fail);
    req.end(body);
  });
}

/** The value of one sample in Prometheus text. */
function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no sample ${name} in:\n${text}`);
  return Number(line.slice(name.length + 1));
}

function runAsync(cmd: string, args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`${cmd} ${args.join(' ')}: ${stderr}`))));
  });
}

beforeAll(async () => {
  ({ reference } = makeSampleLayer(p('sample')));
  await Promise.all([
    cliAsync(['create', p('sample', 'layer.tar'), '--bootstrap', p('local.boot'), '--blob-dir', p('blobs')]),
    cliAsync(['convert', '--source', `${REGISTRY}/busybox:latest`, '--target', BUSYBOX, '--plain-http']),
    cliAsync(['convert', '--source', `${REGISTRY}/busybox:latest`, '--target', PREFETCHED, '--plain-http', '--prefetch-patterns'], { input: '/bin/busybox\n' }),
    runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:busybox`, p('bundle')]),
  ]);
}, 90_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)))));
  const { rmSync } = await import('node:fs');
  rmSync(work, { recursive: true, force: true });
});

describe('nydusify-ts daemon --mode shared, driven through its API', () => {
  let d: Running;

  /** GET path on the shared daemon's socket, as JSON. */
  const json = async (path: string): Promise<Record<string, unknown>> => {
    const r = await raw(p('shared.sock'), 'GET', path);
    expect(r.status, `${path}: ${r.body}`).toBe(200);
    return JSON.parse(r.body) as Record<string, unknown>;
  };
  const sum = (xs: unknown): number => (xs as unknown[]).flat().reduce<number>((s, x) => s + (x as number), 0);

  /** The metrics JSON in nydusd's shapes, with the field names nydus-snapshotter parses. */
  async function expectNydusdMetrics(readAtLeast: number): Promise<void> {
    const fs = await json('/api/v1/metrics?id=/bb');
    for (const k of ['files_account_enabled', 'access_pattern_enabled', 'measure_latency', 'id', 'data_read', 'block_count_read', 'fop_hits', 'fop_errors', 'fop_cumulative_latency_total', 'read_latency_dist', 'nr_opens']) expect(fs, k).toHaveProperty(k);
    expect(fs.id).toBe('/bb');
    expect(fs.data_read as number).toBeGreaterThanOrEqual(readAtLeast);
    expect((fs.fop_hits as number[]).length).toBe(15);
    // fop 4 is READ: every read is in one size class and one latency range
    const reads = (fs.fop_hits as number[])[4]!;
    expect(reads).toBeGreaterThan(0);
    expect(sum(fs.block_count_read)).toBe(reads);
    expect(sum(fs.read_latency_dist)).toBe(reads + (fs.fop_errors as number[])[4]!);
    expect((fs.fop_hits as number[])[9]!, 'LOOKUP').toBeGreaterThan(0);
    const backend = await json('/api/v1/metrics/backend');
    expect(backend.backend_type).toBe('registry');
    expect(backend.read_count as number).toBeGreaterThan(0);
    expect(backend.read_amount_total).toBe(backend.bytes);
    expect(sum(backend.read_latency_dist)).toBe(backend.read_count);
    const cache = await json('/api/v1/metrics/blobcache');
    for (const k of ['id', 'underlying_files', 'store_path', 'partial_hits', 'whole_hits', 'total', 'entries_count', 'prefetch_data_amount', 'prefetch_requests_count', 'prefetch_workers']) expect(cache, k).toHaveProperty(k);
    expect(cache.store_path).toBe(p('shared-cache'));
    expect(cache.entries_count as number).toBeGreaterThan(0);
    for (const f of cache.underlying_files as string[]) expect(existsSync(f), f).toBe(true);
    expect(await json('/api/v1/metrics/inflight')).toEqual({ values: [] });
    expect(await json('/api/v1/metrics/files')).toEqual({});
    const pattern = await json('/api/v1/metrics/pattern?id=/bb') as unknown as { file_path: string; nr_read: number; first_access_time: number }[];
    const bb = pattern.find((x) => x.file_path === '/bin/busybox');
    expect(bb?.nr_read).toBeGreaterThan(0);
    expect(Math.abs(bb!.first_access_time - Date.now() / 1000)).toBeLessThan(120);
    const info = await json('/api/v1/daemon');
    expect(info.version).toMatchObject({ package_ver: expect.any(String), git_commit: expect.any(String), build_time: expect.any(String), profile: expect.any(String), rustc: expect.any(String) });
  }

  it('serves a registry image and a local image side by side, and unmounts one live', async () => {
    d = await startDaemon('shared', ['--mode', 'shared']);
    expect(statSync(p('shared.sock')).mode & 0o777).toBe(0o600);
    expect(readdirSync(p('shared'))).toEqual([]);
    const bb = await d.client.mount('bb', { target: BUSYBOX });
    expect(bb).toMatchObject({ mountpoint: '/bb', target: BUSYBOX });
    await d.client.mount('local', { bootstrap: p('local.boot'), blobDir: p('blobs') });
    expect(readdirSync(p('shared')).sort()).toEqual(['bb', 'local']);
    expect(diffManifests(reference, treeManifest(p('shared', 'local')))).toEqual([]);
    const busybox = readFileSync(p('shared', 'bb', 'bin', 'busybox'));
    expect(busybox.equals(readFileSync(p('bundle', 'rootfs', 'bin', 'busybox')))).toBe(true);
    // the two images' inodes never share a number under one mount
    expect(statSync(p('shared', 'bb')).ino).not.toBe(statSync(p('shared', 'local')).ino);
    const info = await d.client.info();
    expect(info).toMatchObject({ mode: 'shared', state: 'RUNNING', pid: d.child.pid });
    expect(info.mounts.map((m) => m.mountpoint).sort()).toEqual(['/bb', '/local']);

    const metrics = await d.client.metrics();
    expect(sample(metrics, 'nydusify_fuse_requests_total{op="READ"}')).toBeGreaterThan(0);
    expect(sample(metrics, 'nydusify_fuse_read_bytes_total')).toBeGreaterThanOrEqual(busybox.length);
    expect(sample(metrics, 'nydusify_backend_requests_total')).toBeGreaterThan(0);
    expect(sample(metrics, 'nydusify_cache_chunk_misses_total')).toBeGreaterThan(0);
    expect(sample(metrics, 'nydusify_backend_corrupt_chunks_total')).toBe(0);
    expect(sample(metrics, 'nydusify_mounts')).toBe(2);
    expect(metrics).toMatch(/^nydusify_fuse_request_seconds_bucket\{op="LOOKUP",le="0.001"\} \d+$/m);
    expect((await d.client.backendStats()).chunks).toBeGreaterThan(0);
    await expectNydusdMetrics(busybox.length);

    await d.client.umount('local');
    expect(existsSync(p('shared', 'local'))).toBe(false);
    expect(readdirSync(p('shared'))).toEqual(['bb']);
    expect(readFileSync(p('shared', 'bb', 'bin', 'busybox')).equals(busybox)).toBe(true);
    // mounted again under the same name, it serves again
    await d.client.mount('local', { bootstrap: p('local.boot'), blobDir: p('blobs') });
    expect(readFileSync(p('shared', 'local', 'etc', 'os-release'), 'utf8')).toBe(readFileSync(p('sample', 'src', 'etc', 'os-release'), 'utf8'));
  }, 60_000);

  it('mounts a local image from nydus-snapshotter\'s request as it sends it (source, fs_type, config string, prefetch_files)', async () => {
    // the blobs' directory comes from the config's localfs backend, as upstream nydusd takes it
    const config = JSON.stringify({
      device: { backend: { type: 'localfs', config: { dir: p('blobs') } }, cache: { type: 'blobcache', config: { work_dir: p('upstream-cache') } } },
      mode: 'direct', digest_validate: false, iostats_files: false, enable_xattr: true, fs_prefetch: { enable: false, threads_count: 2 },
    });
    const r = await raw(p('shared.sock'), 'POST', '/api/v1/mount?mountpoint=/upstream', JSON.stringify({ source: p('local.boot'), fs_type: 'rafs', config, prefetch_files: [] }));
    expect(r.status, r.body).toBe(200);
    expect(diffManifests(reference, treeManifest(p('shared', 'upstream')))).toEqual([]);
    await d.client.umount('upstream');
  }, 30_000);

  it('answers bad requests with an error and keeps serving', async () => {
    const sock = p('shared.sock');
    const cases: [string, string, string | Buffer | undefined, number, RegExp][] = [
      ['POST', '/api/v1/mount', JSON.stringify({ target: BUSYBOX }), 400, /mountpoint/],
      ['POST', '/api/v1/mount?mountpoint=/x', 'not json', 400, /not JSON/],
      ['POST', '/api/v1/mount?mountpoint=/x', JSON.stringify({ bootstrap: p('local.boot'), bogus: 1 }), 400, /unknown key \\"bogus\\"/],
      ['POST', '/api/v1/mount?mountpoint=/x', JSON.stringify({ target: BUSYBOX, blobDir: '/tmp' }), 400, /blobDir goes with bootstrap/],
      ['POST', '/api/v1/mount?mountpoint=/x', JSON.stringify({}), 400, /either target/],
      ['POST', '/api/v1/mount?mountpoint=/x', JSON.stringify({ bootstrap: 5 }), 400, /non-empty string/],
      ['POST', '/api/v1/mount?mountpoint=/../etc', JSON.stringify({ bootstrap: p('local.boot') }), 400, /mount name/],
      ['POST', '/api/v1/mount?mountpoint=/bb', JSON.stringify({ target: BUSYBOX }), 409, /already mounted/],
      ['POST', '/api/v1/mount?mountpoint=/x', JSON.stringify({ bootstrap: p('missing.boot') }), 500, /missing\.boot/],
      ['POST', '/api/v1/mount?mountpoint=/x', Buffer.alloc(100 << 10, 0x20), 413, /body over/],
      ['DELETE', '/api/v1/mount?mountpoint=/nope', undefined, 404, /not mounted/],
      ['GET', '/api/v1/nope', undefined, 404, /no GET/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const r = await raw(sock, method, path, body);
      expect({ path, status: r.status }).toEqual({ path, status });
      expect(r.body).toMatch(message);
    }
    expect(readdirSync(p('shared')).sort()).toEqual(['bb', 'local']);
    expect((await d.client.info()).state).toBe('RUNNING');
    expect(statSync(p('shared', 'bb', 'bin', 'busybox')).size).toBeGreaterThan(0);
  }, 30_000);

  it('unmounts everything and exits on PUT /api/v1/daemon/exit', async () => {
    const exited = new Promise((r) => d.child.once('exit', r));
    await d.client.exit();
    expect(await exited).toBe(0);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(p('shared'));
    expect(existsSync(p('shared.sock'))).toBe(false);
  }, 20_000);
});

describe('nydusify-ts daemon with nydusd\'s flag names', () => {
  it('serves a local image from -M, --bootstrap, --localfs-dir and --thread-num as nydusd takes them', async () => {
    const d = await startDaemon('nydusd-flags', ['-M', p('nydusd-flags'), '--bootstrap', p('local.boot'), '--localfs-dir', p('blobs'), '--thread-num', '1']);
    expect(diffManifests(reference, treeManifest(p('nydusd-flags')))).toEqual([]);
    expect((await d.client.info()).mounts.map((m) => m.blobDir)).toEqual([p('blobs')]);
    await d.client.exit();
    // --log-file: the log goes there, not to stderr
    mkdirSync(p('nydusd-log'), { recursive: true });
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'daemon', '--apisock', p('nydusd-log.sock'), '-M', p('nydusd-log'), '--bootstrap', p('local.boot'), '--localfs-dir', p('blobs'), '--log-file', p('nydusd.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    await waitFor(async () => existsSync(p('nydusd.log')) && readFileSync(p('nydusd.log'), 'utf8').includes('"msg":"daemon ready"'), 'daemon ready in --log-file', 15_000, 50);
    expect(stderr).not.toContain('daemon ready');
    await new DaemonClient(p('nydusd-log.sock'), 5000).exit();
  }, 30_000);
});

describe('nydusify-ts daemon --prefetch', () => {
  it('has the files on the prefetch list in its cache before they are read', async () => {
    const d = await startDaemon('prefetch', ['--target', PREFETCHED, '--prefetch']);
    const deadline = Date.now() + 20_000;
    let metrics = await d.client.metrics();
    while (!/^nydusify_prefetch_done\{mountpoint="\/"\} 1$/m.test(metrics)) {
      if (Date.now() > deadline) throw new Error(`prefetch did not finish:\n${metrics}`);
      await new Promise((r) => setTimeout(r, 100));
      metrics = await d.client.metrics();
    }
    const requests = sample(metrics, 'nydusify_backend_requests_total');
    expect(requests).toBeGreaterThan(0);
    expect(sample(metrics, 'nydusify_prefetch_chunks_total{mountpoint="/"}')).toBeGreaterThan(0);
    const busybox = readFileSync(p('prefetch', 'bin', 'busybox'));
    expect(busybox.equals(readFileSync(p('bundle', 'rootfs', 'bin', 'busybox')))).toBe(true);
    const after = await d.client.metrics();
    expect(sample(after, 'nydusify_backend_requests_total')).toBe(requests);
    expect(sample(after, 'nydusify_cache_chunk_misses_total')).toBe(0);
    expect(sample(after, 'nydusify_cache_chunk_hits_total')).toBeGreaterThan(0);
    d.child.kill('SIGTERM');
    await new Promise((r) => d.child.once('exit', r));
  }, 40_000);

  it('--prefetch-files (nydusd\'s): fetches those files of an image with no prefetch list before they are read', async () => {
    const d = await startDaemon('prefetch-files', ['--target', BUSYBOX, '--prefetch-files', '/bin/busybox', '/no/such/file']);
    await waitFor(async () => /^nydusify_prefetch_done\{mountpoint="\/"\} 1$/m.test(await d.client.metrics()), 'prefetch done', 20_000, 100);
    const before = await d.client.metrics();
    expect(sample(before, 'nydusify_prefetch_chunks_total{mountpoint="/"}')).toBeGreaterThan(0);
    expect(readFileSync(p('prefetch-files', 'bin', 'busybox')).equals(readFileSync(p('bundle', 'rootfs', 'bin', 'busybox')))).toBe(true);
    const after = await d.client.metrics();
    expect(sample(after, 'nydusify_backend_requests_total')).toBe(sample(before, 'nydusify_backend_requests_total'));
    expect(sample(after, 'nydusify_cache_chunk_misses_total')).toBe(0);
    d.child.kill('SIGTERM');
    await new Promise((r) => d.child.once('exit', r));
  }, 40_000);
});

describe('nydusify-ts daemon API, reference parsing', () => {
  it('regression: an invalid target reference is a 400 with the parse error, not a 500', async () => {
    const d = await startDaemon('badref', ['--mode', 'shared']);
    const r = await raw(p('badref.sock'), 'POST', '/api/v1/mount?mountpoint=/x', JSON.stringify({ target: '::bad::' }));
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/mount\.target: invalid image reference "::bad::"/) });
    expect(readdirSync(p('badref'))).toEqual([]);
    expect((await d.client.info()).state).toBe('RUNNING');
    d.child.kill('SIGTERM');
    await new Promise((r) => d.child.once('exit', r));
  }, 30_000);

  it('hands its FUSE connection to a supervisor (nydusd\'s sendfd); a successor started with --upgrade takes it over (takeover) and reads go on', async () => {
    // the supervisor: Python's socket module keeps what one connection sends and gives it to the next (nydus-snapshotter's role)
    const supervisor = p('supervisor.sock');
    const py = spawn('python3', ['-c', [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(2)',
      "c, _ = s.accept(); data = b''; fds = []",
      'while True:',
      '    m, f, _, _ = socket.recv_fds(c, 65536, 4)',
      '    fds += f',
      '    if not m: break',
      '    data += m',
      'c.close()',
      'c, _ = s.accept(); socket.send_fds(c, [data], fds); c.close()',
    ].join('\n'), supervisor], { stdio: 'inherit' });
    children.push(py);
    await waitFor(() => existsSync(supervisor), 'the supervisor', 5_000, 20);
    const mnt = p('handover');
    const first = await startDaemon('handover', ['--target', BUSYBOX, '--supervisor', supervisor]);
    expect(readFileSync(join(mnt, 'etc', 'passwd')).length).toBeGreaterThan(0);
    expect((await raw(p('handover.sock'), 'PUT', '/api/v1/daemon/fuse/sendfd')).status).toBe(204);
    // the daemon dies hard: the supervisor holds the connection, so the mount stays and reads wait
    first.child.kill('SIGKILL');
    await new Promise((r) => (first.child.exitCode !== null || first.child.signalCode !== null ? r(null) : first.child.once('exit', r)));
    const sock = p('successor.sock');
    const successor = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'daemon', '--upgrade', '--supervisor', supervisor, '--apisock', sock, '--mountpoint', mnt,
      '--cache-dir', p('handover-cache'), '--plain-http', '--failover-policy', 'resend'], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(successor);
    let log = '';
    successor.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const client = new DaemonClient(sock, 5000);
    await waitFor(async () => (await client.info().catch(() => undefined))?.state === 'INIT', `the successor in INIT: ${log}`, 15_000, 50);
    // a read issued now waits for the successor
    const read = readFile(join(mnt, 'bin', 'busybox'));
    expect((await raw(sock, 'PUT', '/api/v1/daemon/fuse/takeover')).status).toBe(204);
    await waitFor(async () => (await client.info().catch(() => undefined))?.state === 'RUNNING', `the successor running: ${log}`, 15_000, 50);
    expect((await raw(sock, 'PUT', '/api/v1/daemon/start')).status).toBe(204);
    expect((await read).equals(readFileSync(p('bundle', 'rootfs', 'bin', 'busybox')))).toBe(true);
    expect((await client.info()).mounts.map((m) => m.target)).toEqual([BUSYBOX]);
    // a supervisor that is gone is an error answered, and a running daemon does not take over
    const gone = await raw(sock, 'PUT', '/api/v1/daemon/fuse/sendfd');
    expect(gone.status).toBe(500);
    expect(gone.body).toMatch(/connect .*supervisor\.sock/);
    expect((await raw(sock, 'PUT', '/api/v1/daemon/fuse/takeover')).status).toBe(409);
    expect((await client.info()).state).toBe('RUNNING');
    await client.exit();
  }, 60_000);
});

