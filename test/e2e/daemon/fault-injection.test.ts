// End to end, a registry that misbehaves under a lazily served image (needs root, /dev/fuse and the
// registry of the global setup). An image of this run's own files is converted into the registry;
// daemons serve it through a fault-injecting proxy (test/helpers/fault-proxy.ts) with real kernel
// FUSE mounts, and every file read is compared with the file it was built from:
// - faults sprinkled over a third of the range requests: reads retry (within the bounds of the
//   retry policy, counted by the daemon's metrics) and never return wrong bytes;
// - prefetch of the whole blob through flipped, cut-short and broken answers: the cache keeps only
//   verified chunks (every file then reads right, partly from the cache);
// - each fault made lasting (5xx, reset mid-body, cut-short body, flipped bytes, a delay past the
//   fetch timeout, slow-loris): the read fails with EIO within twice the fetch timeout (the kernel
//   asks once more for a page whose readahead failed), the daemon's counter for that fault moves,
//   and the same file reads right once the registry behaves again (no stalled request is left
//   for it to wait on).
// It ends with one summary line: faults injected by kind, retries, EIO reads, bytes verified.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../../src/daemon/api-client.js';
import { cliAsync } from '../../helpers/cli.js';
import { cleanUp, type Daemon, startDaemon, terminate, waitMounted } from '../../helpers/daemon.js';
import { type Fault, type FaultKind, type FaultProxy, faultProxy, isBlobRange } from '../../helpers/fault-proxy.js';
import { seededRandom } from '../../helpers/seeded-random.js';
import { waitFor } from '../../helpers/wait-for.js';

const REGISTRY = '127.0.0.1:5000';
const REPO = 'fault-injection';
const TAG = `run-${process.pid}`;
/** Seconds a read may wait for the registry (the daemon's --fetch-timeout). */
const FETCH_TIMEOUT = 3;
/** Tries per range request (the daemon's default: 3 retries). */
const ATTEMPTS = 4;
const work = mkdtempSync(join(tmpdir(), 'nydusify-fault-injection-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];
const proxies: FaultProxy[] = [];
const tally = { bytesVerified: 0, filesVerified: 0, wrong: 0, retries: 0, sprinkledReads: 0, sprinkledEio: 0, staysBad: 0, slowestEioMs: 0 };

/** path → content: files of 128 B to 4 MiB, half random (incompressible), half text-like. */
const FILES = new Map<string, Buffer>();

function makeTree(root: string): void {
  const random = seededRandom(7);
  const words = ['registry', 'chunk', 'blob', 'range', 'fault', 'retry', 'verify', 'nydus', '\n'];
  for (let i = 0; i < 96; i++) {
    const size = Math.floor(2 ** (7 + 15 * random()));
    let data: Buffer;
    if (i % 2 === 0) data = randomBytes(size);
    else {
      const text: string[] = [];
      for (let n = 0; n < size; n += 8) text.push(words[Math.floor(random() * words.length)]!);
      data = Buffer.from(text.join(' ')).subarray(0, size);
    }
    const path = `d${i % 6}/f${i}`;
    mkdirSync(join(root, `d${i % 6}`), { recursive: true });
    writeFileSync(join(root, path), data);
    FILES.set(path, data);
  }
  // what waitMounted looks for
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc', 'os-release'), 'ID=fault-injection\n');
}

beforeAll(async () => {
  makeTree(p('tree'));
  const oci = p('oci');
  execFileSync('umoci', ['init', '--layout', oci]);
  execFileSync('umoci', ['new', '--image', `${oci}:v1`]);
  // (umoci insert leaves its tar unterminated: GNU tar makes the layer)
  execFileSync('tar', ['--numeric-owner', '-C', p('tree'), '-cf', p('layer.tar'), '.']);
  execFileSync('umoci', ['raw', 'add-layer', '--image', `${oci}:v1`, p('layer.tar')]);
  await cliAsync(['convert', '--source', `oci:${oci}:v1`, '--target', `${REGISTRY}/${REPO}:${TAG}`, '--plain-http']);
}, 60_000);

afterAll(async () => {
  await Promise.all(proxies.map((x) => x.close()));
  await cleanUp(daemons, work);
  const injected: Record<string, number> = {};
  for (const x of proxies) for (const [k, n] of Object.entries(x.injected)) injected[k] = (injected[k] ?? 0) + n;
  const total = Object.values(injected).reduce((a, b) => a + b, 0);
  const kinds = Object.entries(injected).map(([k, n]) => `${k} ${n}`).join(', ');
  console.log(
    `fault injection: ${total} faults injected (${kinds}); ${tally.retries} retries and refetches; ` +
      `${tally.sprinkledEio} of ${tally.sprinkledReads} reads failed under sprinkled faults; ` +
      `${tally.staysBad} lasting faults each gave EIO within ${(tally.slowestEioMs / 1000).toFixed(1)} s (fetch timeout ${FETCH_TIMEOUT} s), then right bytes; ` +
      `${tally.bytesVerified} bytes verified in ${tally.filesVerified} file reads, ${tally.wrong} wrong`,
  );
});

async function newProxy(seed: number): Promise<FaultProxy> {
  const proxy = await faultProxy(seed);
  proxies.push(proxy);
  return proxy;
}

/** A daemon serving the image through `proxy`, and a client for its API. */
async function serve(name: string, proxy: FaultProxy, extra: string[] = []): Promise<{ d: Daemon; api: DaemonClient }> {
  const d = startDaemon(['--target', `127.0.0.1:${proxy.port}/${REPO}:${TAG}`, '--plain-http', '--cache-dir', p(`${name}-cache`), '--fetch-timeout', String(FETCH_TIMEOUT), ...extra], p(name));
  daemons.push(d);
  await waitMounted(d);
  const sock = readdirSync(d.stateDir).find((f) => f.endsWith('.sock'));
  if (!sock) throw new Error(`no API socket in ${d.stateDir}`);
  return { d, api: new DaemonClient(join(d.stateDir, sock)) };
}

/** Counters `nydusify_NAME_total` from the daemon's Prometheus text. */
async function metrics(api: DaemonClient, names: string[]): Promise<number[]> {
  const text = await api.metrics();
  return names.map((name) => {
    const m = new RegExp(`^nydusify_${name}_total (\\S+)$`, 'm').exec(text);
    if (!m) throw new Error(`no nydusify_${name}_total in the metrics`);
    return Number(m[1]);
  });
}

/**
 * Reads `paths` under `mnt` (async: the proxy lives in this process), a few at a time. Every read
 * gives the file's exact bytes or fails with EIO; returns the paths that failed.
 */
async function readAll(mnt: string, paths: string[], parallel = 6): Promise<string[]> {
  const failed: string[] = [];
  const queue = [...paths];
  const reader = async (): Promise<void> => {
    for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
      try {
        const got = await readFile(join(mnt, path));
        if (!got.equals(FILES.get(path)!)) tally.wrong++;
        expect(got.equals(FILES.get(path)!), `${path}: wrong bytes`).toBe(true);
        tally.bytesVerified += got.length;
        tally.filesVerified++;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EIO') throw err;
        failed.push(path);
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, reader));
  return failed;
}

const only = (fault: Fault, probability = 1) => ({ ...fault, match: isBlobRange, probability });

describe('a lazily served image through a registry that misbehaves', () => {
  it('reads right bytes, retrying within bounds, while a third of the range requests fail', async () => {
    const proxy = await newProxy(11);
    // one request per miss: many requests, so many faults
    const { d, api } = await serve('sprinkled', proxy, ['--amplify', '0', '--readahead', '0']);
    proxy.setRules([
      only({ kind: 'delay', ms: 300 }, 0.1),
      only({ kind: 'status', status: 503 }, 0.1),
      only({ kind: 'reset', fraction: 0.5 }, 0.1),
      only({ kind: 'truncate', fraction: 0.5 }, 0.1),
      only({ kind: 'flip', bytes: 4 }, 0.1),
    ]);
    const paths = [...FILES.keys()];
    const failed = await readAll(d.mnt, paths);
    tally.sprinkledReads += paths.length;
    tally.sprinkledEio += failed.length;
    // range requests tried again (5xx, resets, cut-short bodies), chunks fetched again (flipped bytes)
    const [requests, retries, refetches, corrupt] = await metrics(api, ['backend_requests', 'registry_retries', 'backend_refetched_chunks', 'backend_corrupt_chunks']);
    expect(retries).toBeGreaterThan(0);
    expect(retries).toBeLessThanOrEqual(requests! * (ATTEMPTS - 1));
    expect(refetches).toBeGreaterThan(0);
    expect(refetches).toBeLessThanOrEqual(corrupt!);
    expect(failed.length, `failed: ${failed.join(' ')}`).toBeLessThanOrEqual(paths.length / 10);
    proxy.setRules([]);
    expect(await readAll(d.mnt, failed)).toEqual([]);
    tally.retries += retries! + refetches!;
    expect((await terminate(d)).code).toBe(0);
  }, 60_000);

  it('keeps only verified chunks when prefetch runs through flipped, cut-short and broken answers', async () => {
    const proxy = await newProxy(13);
    // the faults are there from the start: the whole blob is prefetched through them
    proxy.setRules([only({ kind: 'flip', bytes: 4 }, 0.3), only({ kind: 'truncate', fraction: 0.3 }, 0.1), only({ kind: 'reset', fraction: 0.7 }, 0.1)]);
    const { d, api } = await serve('prefetched', proxy, ['--prefetch', '--prefetch-all']);
    await waitFor(async () => {
      const state = (await api.info()).mounts[0]?.prefetch?.state ?? '';
      expect(state).not.toBe('failed');
      return state === 'done';
    }, 'prefetch through the faults to finish', 45_000, 100);
    const [corrupt] = await metrics(api, ['backend_corrupt_chunks']);
    expect(corrupt).toBeGreaterThan(0);
    proxy.setRules([]);
    // what prefetch kept is read from the cache, what it could not keep is fetched now: all of it right
    expect(await readAll(d.mnt, [...FILES.keys()])).toEqual([]);
    const [retries, refetches, hits] = await metrics(api, ['registry_retries', 'backend_refetched_chunks', 'cache_chunk_hits']);
    expect(hits).toBeGreaterThan(0);
    tally.retries += retries! + refetches!;
    expect((await terminate(d)).code).toBe(0);
  }, 60_000);

  describe('a lasting fault: EIO in bounded time, right bytes once it stops', () => {
    let proxy: FaultProxy;
    let d: Daemon;
    let api: DaemonClient;
    let unread: string[];
    /** Each fault, and the counter that must show the daemon dealt with it. */
    const cases: [FaultKind, Fault, string][] = [
      ['status', { kind: 'status', status: 503 }, 'registry_retries'],
      ['reset', { kind: 'reset', fraction: 0.5 }, 'registry_retries'],
      ['truncate', { kind: 'truncate', fraction: 0.5 }, 'registry_retries'],
      ['flip', { kind: 'flip', bytes: 1 }, 'backend_refetched_chunks'],
      ['delay', { kind: 'delay', ms: (FETCH_TIMEOUT + 2) * 1000 }, 'backend_timeouts'],
      ['slowloris', { kind: 'slowloris', bytes: 64, intervalMs: 20 }, 'backend_timeouts'],
    ];

    beforeAll(async () => {
      unread = [...FILES.keys()].filter((_, i) => i % 2 === 0);
      proxy = await newProxy(12);
      // nothing fetched but what is read: each case's file is still missing when its turn comes
      ({ d, api } = await serve('stays-bad', proxy, ['--amplify', '0', '--readahead', '0']));
    });

    afterAll(async () => {
      const [retries, refetches] = await metrics(api, ['registry_retries', 'backend_refetched_chunks']);
      tally.retries += retries! + refetches!;
      expect((await terminate(d)).code).toBe(0);
    });

    it.each(cases)('%s', async (_, fault, counter) => {
      const path = unread.pop()!;
      const [requestsBefore, retriesBefore, countedBefore] = await metrics(api, ['backend_requests', 'registry_retries', counter]);
      proxy.setRules([only(fault)]);
      const started = performance.now();
      await expect(readFile(join(d.mnt, path))).rejects.toMatchObject({ code: 'EIO' });
      const elapsed = performance.now() - started;
      // the kernel reads a page that failed in readahead once more, synchronously: two waits at most
      expect(elapsed).toBeLessThan(2 * FETCH_TIMEOUT * 1000 + 1500);
      tally.slowestEioMs = Math.max(tally.slowestEioMs, elapsed);
      const [requests, retries, counted] = await metrics(api, ['backend_requests', 'registry_retries', counter]);
      expect(counted).toBeGreaterThan(countedBefore!);
      expect(retries! - retriesBefore!).toBeLessThanOrEqual((requests! - requestsBefore!) * (ATTEMPTS - 1));
      proxy.setRules([]);
      expect(await readAll(d.mnt, [path])).toEqual([]);
      tally.staysBad++;
    }, 30_000);
  });
});
