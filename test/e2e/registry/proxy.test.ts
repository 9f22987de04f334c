// End to end, a forward proxy between the daemon and the registry (needs root, /dev/fuse, the registry
// of the global setup and Debian's tinyproxy): busybox converted into the registry, mounted lazily
// with a nydusd config whose registry backend names the proxy. Every Range request shows up in the
// proxy's log and the origin serves the bytes, the file read is byte for byte umoci's; the
// environment's HTTP_PROXY routes the same way, except to a loopback registry (containerd's rule):
// the test reaches the registry at an address of its own on lo (forwarded to it) to see that; a
// proxy that is down is a failed mount without `fallback`, and with it the registry is asked directly.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync } from '../../helpers/cli.js';
import { cleanUp, type Daemon, startDaemon, stopWithStats, waitMounted } from '../../helpers/daemon.js';
import { runAsync } from '../../helpers/run.js';
import { freePort } from '../../helpers/free-port.js';
import { waitFor } from '../../helpers/wait-for.js';
import { manifestLayers, registryBlobBytes, registryLogOffset } from '../../snapshotter/env.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const REGISTRY = '127.0.0.1:5000';
const TARGET = `${REGISTRY}/busybox:proxy-test`;

const work = mkdtempSync(join(tmpdir(), 'nydusify-proxy-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];
let proxy: ChildProcess | undefined;
let port = 0;
/** The registry at a non-loopback address of the test's own, on lo, forwarded to 127.0.0.1:5000. */
const ALIAS = '10.231.7.1';
let forwarder: Server | undefined;


/** tinyproxy in the foreground on `port`, logging each request line to proxy.log. */
async function startProxy(): Promise<void> {
  writeFileSync(p('tinyproxy.conf'), [`Port ${port}`, 'Listen 127.0.0.1', 'Timeout 60', `LogFile "${p('proxy.log')}"`, 'LogLevel Info', 'MaxClients 64', 'Allow 127.0.0.1', ''].join('\n'));
  writeFileSync(p('proxy.log'), '');
  proxy = spawn('tinyproxy', ['-d', '-c', p('tinyproxy.conf')], { stdio: 'ignore' });
  await waitFor(async () => readFileSync(p('proxy.log'), 'utf8').includes('listening') || (await canConnect(port)), 'tinyproxy listening', 10_000, 50);
}

function canConnect(at: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect(at, '127.0.0.1');
    s.once('connect', () => (s.destroy(), done(true)));
    s.once('error', () => done(false));
  });
}

async function stopProxy(): Promise<void> {
  if (!proxy || proxy.exitCode !== null) return;
  const exited = new Promise((r) => proxy!.once('exit', r));
  proxy.kill('SIGTERM');
  await exited;
}

function config(name: string, proxyConfig: Record<string, unknown> | undefined): string {
  const file = p(`${name}.json`);
  writeFileSync(file, JSON.stringify({
    device: {
      backend: { type: 'registry', config: { scheme: 'http', timeout: 5, retry_limit: 0, ...(proxyConfig ? { proxy: proxyConfig } : {}) } },
      cache: { type: 'blobcache', config: { work_dir: p(`${name}-cache`) } },
    },
    mode: 'direct',
  }));
  return file;
}

/** Request lines the proxy logged for blobs of busybox at `host`. */
const proxiedBlobGets = (host = '127.0.0.1'): string[] => readFileSync(p('proxy.log'), 'utf8').split('\n').filter((l) => l.includes(`GET http://${host}:5000/v2/busybox/blobs/sha256:`));

beforeAll(async () => {
  port = await freePort();
  await Promise.all([
    cliAsync(['convert', '--source', `${REGISTRY}/busybox:latest`, '--target', TARGET, '--plain-http']),
    runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:busybox`, p('bundle')]),
  ]);
  await startProxy();
  execFileSync('ip', ['addr', 'replace', `${ALIAS}/32`, 'dev', 'lo']);
  forwarder = createServer((sock) => {
    const up = connect(5000, '127.0.0.1');
    sock.pipe(up).pipe(sock);
    const end = (): void => (sock.destroy(), void up.destroy());
    sock.on('error', end);
    up.on('error', end);
  });
  await new Promise<void>((done) => forwarder!.listen(5000, ALIAS, done));
}, 90_000);

afterAll(async () => {
  await stopProxy();
  await new Promise((done) => (forwarder ? forwarder.close(done) : done(undefined)));
  execFileSync('ip', ['addr', 'del', `${ALIAS}/32`, 'dev', 'lo'], { stdio: 'ignore' });
  await cleanUp(daemons, work);
});

describe('a forward proxy to the registry', () => {
  it('carries every Range request of a lazy mount (nydusd config proxy.url); the origin serves the bytes', async () => {
    const layers = (await manifestLayers(TARGET)).map((l) => l.digest);
    const logAt = registryLogOffset();
    const d = startDaemon(['--target', TARGET, '--config', config('via', { url: `127.0.0.1:${port}`, fallback: false, ping_url: `127.0.0.1:${port}/ping`, check_interval: 5 })], p('via'));
    daemons.push(d);
    await waitMounted(d);
    const busybox = readFileSync(join(d.mnt, 'bin', 'busybox'));
    expect(busybox.equals(readFileSync(p('bundle', 'rootfs', 'bin', 'busybox')))).toBe(true);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(stats.rangeRequests).toBeGreaterThan(0);
    // the blob requests: each data Range request plus the bootstrap layer's GET
    expect(proxiedBlobGets().length).toBeGreaterThanOrEqual(stats.rangeRequests);
    expect(registryBlobBytes(logAt, layers)).toBeGreaterThanOrEqual(stats.fetchedBytes);
    console.log(`proxy: ${proxiedBlobGets().length} blob GETs through tinyproxy for ${stats.rangeRequests} range requests; origin served ${registryBlobBytes(logAt, layers)} B of layers, the daemon fetched ${stats.fetchedBytes} B`);
  }, 60_000);

  it('follows HTTP_PROXY when no proxy is configured, but not to a loopback registry', async () => {
    const env = { HTTP_PROXY: `http://127.0.0.1:${port}` };
    const before = proxiedBlobGets(ALIAS).length;
    const d = startDaemon(['--target', `${ALIAS}:5000/busybox:proxy-test`, '--config', config('env', undefined)], p('env'), undefined, env);
    daemons.push(d);
    await waitMounted(d);
    // read asynchronously: the forwarder lives on this test's event loop
    expect((await readFile(join(d.mnt, 'bin', 'busybox'))).equals(readFileSync(p('bundle', 'rootfs', 'bin', 'busybox')))).toBe(true);
    expect((await stopWithStats(d)).code).toBe(0);
    expect(proxiedBlobGets(ALIAS).length).toBeGreaterThan(before);

    const direct = proxiedBlobGets().length;
    const l = startDaemon(['--target', TARGET, '--config', config('env-loopback', undefined)], p('env-loopback'), undefined, env);
    daemons.push(l);
    await waitMounted(l);
    readFileSync(join(l.mnt, 'bin', 'busybox'));
    expect((await stopWithStats(l)).code).toBe(0);
    expect(proxiedBlobGets().length).toBe(direct);
  }, 60_000);

  it('a proxy that is down: the mount fails without fallback, goes to the registry with it', async () => {
    await stopProxy();
    const strict = startDaemon(['--target', TARGET, '--config', config('strict', { url: `http://127.0.0.1:${port}`, fallback: false })], p('strict'));
    daemons.push(strict);
    const ended = await strict.exit;
    expect(ended.code).not.toBe(0);
    expect(strict.stderr()).toMatch(/ECONNREFUSED|connect/i);
    expect(existsSync(join(p('strict'), 'bin'))).toBe(false);

    const d = startDaemon(['--target', TARGET, '--config', config('fallback', { url: `http://127.0.0.1:${port}`, fallback: true, check_interval: 60 })], p('fallback'));
    daemons.push(d);
    await waitMounted(d);
    expect(readFileSync(join(d.mnt, 'bin', 'busybox')).equals(readFileSync(p('bundle', 'rootfs', 'bin', 'busybox')))).toBe(true);
    expect((await stopWithStats(d)).code).toBe(0);
  }, 60_000);
});
