// Soak (needs root, /dev/fuse and the registry of the global setup): one shared daemon serves
// several images built here from random files, through a proxy in front of the registry that is
// cut and restored every few seconds, while 64 readers read random ranges of random files; every
// few seconds one image is unmounted, its blob removed from the cache by another process and the
// image mounted again (so fetches go on all the time, and so does mount churn).
// Every read that succeeds must give the right bytes; every read that fails must be an EIO the
// daemon counted; the daemon's resident memory and open descriptors must stay flat.
// SOAK_SECONDS sets the length: 20 s in the normal run, 600 s for `npm run soak`.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { constants, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../../src/daemon/api-client.js';
import { writeOciLayout } from '../../helpers/oci-layout.js';
import { cliAsync, repoRoot } from '../../helpers/cli.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 20);
const READERS = 64;
const IMAGES = 4;
const FILES_PER_IMAGE = 24;
const REPO = 'soak';
const TAG = `run-${process.pid}`;
const work = mkdtempSync(join(tmpdir(), 'nydusify-soak-'));
const p = (...parts: string[]) => join(work, ...parts);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children: ChildProcess[] = [];
/** Each image's files (relative path → content). */
const images: Record<string, Buffer>[] = [];
const blobIds: string[] = [];

interface FlappingProxy {
  port: number;
  /** Drops every connection and refuses new ones until restored. */
  cut(): void;
  restore(): void;
  close(): void;
}

/** A TCP proxy in front of the registry that can go away and come back on the same port. */
async function flappingProxy(target = { host: '127.0.0.1', port: 5000 }): Promise<FlappingProxy> {
  const sockets = new Set<Socket>();
  let up = true;
  const server = createServer((client) => {
    if (!up) return void client.destroy();
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    cut: () => {
      up = false;
      for (const s of sockets) s.destroy();
    },
    restore: () => void (up = true),
    close: () => {
      up = false;
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

interface Sample {
  at: number;
  rss: number;
  fds: number;
}

function sampleProcess(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * 1024;
  return { at: Date.now(), rss, fds: readdirSync(`/proc/${pid}/fd`).length };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** The samples of quarter `q` (0-3) of the run. */
const quarter = (samples: Sample[], q: number): Sample[] => samples.slice(Math.floor((samples.length * q) / 4), Math.floor((samples.length * (q + 1)) / 4));

interface Tally {
  reads: number;
  bytes: number;
  wrong: string[];
  eio: number;
  /** Errors other than EIO (a daemon that died would give ENOTCONN). */
  other: string[];
  /** Reads that failed because their image was being unmounted and mounted again. */
  remounting: number;
}

/** Per image: remounts begun and ended (a read that sees them differ met a remount). */
const remountsBegun: number[] = Array.from({ length: IMAGES }, () => 0);
const remountsEnded: number[] = Array.from({ length: IMAGES }, () => 0);

/** Random ranges of random files under `mnt`, compared with the images' files, until `running()` is false. */
async function reader(mnt: string, tally: Tally, running: () => boolean): Promise<void> {
  while (running()) {
    const i = randomInt(IMAGES);
    const names = Object.keys(images[i]!);
    const name = names[randomInt(names.length)]!;
    const want = images[i]![name]!;
    const offset = randomInt(want.length);
    const length = Math.min(want.length - offset, 1 + randomInt(1 << 20));
    const buf = Buffer.alloc(length);
    const begun = remountsBegun[i];
    const stable = begun === remountsEnded[i];
    try {
      // O_DIRECT: every read goes to the daemon, not to the page cache
      const fh = await open(join(mnt, `img${i}`, name), constants.O_RDONLY | constants.O_DIRECT);
      try {
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        tally.reads++;
        if (done === length && buf.equals(want.subarray(offset, offset + length))) tally.bytes += length;
        else {
          const w = want.subarray(offset, offset + length);
          let at = 0;
          while (at < done && buf[at] === w[at]) at++;
          let end = done;
          while (end > at && buf[end - 1] === w[end - 1]) end--;
          const zero = buf.subarray(at, end).every((b) => b === 0);
          tally.wrong.push(`img${i}/${name} ${offset}+${length}: got ${done} bytes, differ in file range ${offset + at}..${offset + end}${zero ? ' (zeros)' : ''}`);
        }
      } finally {
        await fh.close();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (!stable || remountsBegun[i] !== begun) {
        tally.remounting++;
        await sleep(10);
      }
      else if (code === 'EIO') tally.eio++;
      else tally.other.push(`img${i}/${name}: ${String(err)}`);
    }
  }
}

const metric = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

let proxy: FlappingProxy;

beforeAll(async () => {
  proxy = await flappingProxy();
  for (let i = 0; i < IMAGES; i++) {
    const files: Record<string, Buffer> = {};
    for (let f = 0; f < FILES_PER_IMAGE; f++) files[`d${f % 4}/f${f}`] = randomBytes(64 << 10 | randomInt(1536 << 10));
    images.push(files);
    writeOciLayout(p(`oci${i}`), files);
  }
  await Promise.all(images.map((_, i) => cliAsync(['convert', '--source', `oci:${p(`oci${i}`)}:v1`, '--target', `127.0.0.1:5000/${REPO}-${i}:${TAG}`, '--plain-http'])));
}, 180_000);

afterAll(() => {
  proxy?.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(work)) execFileSync('umount', ['-i', '-l', mp]);
  }
  rmSync(work, { recursive: true, force: true });
});

describe('soak', () => {
  it(`${READERS} readers over ${IMAGES} images in a shared daemon for ${SECONDS} s with the registry flapping`, async () => {
    const mnt = p('mnt');
    const sock = p('api.sock');
    const cacheDir = p('cache');
    mkdirSync(mnt);
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'daemon', '--mode', 'shared', '--plain-http', '--apisock', sock, '--mountpoint', mnt, '--cache-dir', cacheDir, '--fetch-timeout', '3'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NYDUSIFY_LOG_LEVEL: 'warn' },
    });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    const client = new DaemonClient(sock, 10_000);
    for (let deadline = Date.now() + 15_000; !(await client.info().then(() => true, () => false)); await sleep(50)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`daemon did not start: ${stderr}`);
    }
    const spec = (i: number) => ({ target: `127.0.0.1:${proxy.port}/${REPO}-${i}:${TAG}` });
    for (let i = 0; i < IMAGES; i++) blobIds.push((await client.mount(`img${i}`, spec(i))).blobs[0]!);

    const tally: Tally = { reads: 0, bytes: 0, wrong: [], eio: 0, other: [], remounting: 0 };
    const samples: Sample[] = [sampleProcess(child.pid!)];
    const end = Date.now() + SECONDS * 1000;
    const running = () => Date.now() < end && child.exitCode === null;
    const sampleEvery = Math.max(1000, (SECONDS * 1000) / 120);
    let cuts = 0;
    let remounts = 0;
    let removals = 0;
    const background = [
      (async () => {
        while (running()) {
          await sleep(sampleEvery);
          if (child.exitCode === null) samples.push(sampleProcess(child.pid!));
        }
      })(),
      (async () => {
        while (running()) {
          await sleep(2000 + randomInt(3000));
          proxy.cut();
          cuts++;
          await sleep(500 + randomInt(2000));
          proxy.restore();
        }
      })(),
      (async () => {
        while (running()) {
          await sleep(3000 + randomInt(4000));
          const i = randomInt(IMAGES);
          remountsBegun[i]!++;
          await client.umount(`img${i}`);
          removals += await cliAsync(['cache', 'rm', blobIds[i]!, '--cache-dir', cacheDir]).then(() => 1, () => 0);
          // the registry may be cut right now: try again until the image is back
          while (!(await client.mount(`img${i}`, spec(i)).then(() => true, () => false))) await sleep(250);
          remountsEnded[i]!++;
          remounts++;
        }
      })(),
    ];
    await Promise.all([...Array.from({ length: READERS }, () => reader(mnt, tally, running)), ...background]);
    proxy.restore();

    expect(child.exitCode, stderr).toBe(null);
    const metrics = await client.metrics();
    const daemonReadErrors = metric(metrics, 'nydusify_fuse_read_errors_total');
    const backendErrors = metric(metrics, 'nydusify_backend_errors_total');
    const first = samples[0]!;
    const last = samples[samples.length - 1]!;
    const mid = quarter(samples, 1);
    const tail = quarter(samples, 3);
    const [rssMid, rssTail, fdsMid, fdsTail] = [median(mid.map((s) => s.rss)), median(tail.map((s) => s.rss)), median(mid.map((s) => s.fds)), median(tail.map((s) => s.fds))];
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    console.log(`soak ${SECONDS} s: ${tally.reads} reads, ${mib(tally.bytes)} MiB verified, ${tally.wrong.length} wrong, ${tally.eio} EIO (daemon counted ${daemonReadErrors} read errors, ${backendErrors} backend errors), ${tally.other.length} other errors, ${tally.remounting} failed by a remount; ${cuts} registry cuts, ${remounts} remounts, ${removals} cache removals; RSS ${mib(first.rss)} → ${mib(last.rss)} MiB (2nd-quarter median ${mib(rssMid)}, last-quarter ${mib(rssTail)}); fds ${first.fds} → ${last.fds} (medians ${fdsMid}, ${fdsTail}); ${samples.length} samples`);

    // why reads failed, as the daemon logged it
    const reasons = new Set(stderr.split('\n').filter((l) => l.includes('read failed')).map((l) => (JSON.parse(l) as { error?: string }).error?.replace(/[0-9a-f]{64}/g, 'BLOB').replace(/chunk \d+/g, 'chunk N')));
    if (reasons.size > 0) console.log(`soak: read failures: ${[...reasons].join('; ')}`);
    expect(tally.wrong).toEqual([]);
    expect(tally.other).toEqual([]);
    expect(tally.reads).toBeGreaterThan(READERS);
    // every failed read was answered EIO by the daemon and counted there (the kernel may retry a failed page once more)
    expect(daemonReadErrors).toBeGreaterThanOrEqual(tally.eio);
    expect(rssTail).toBeLessThanOrEqual(rssMid * 1.25 + (32 << 20));
    expect(fdsTail).toBeLessThanOrEqual(fdsMid + 8);

    await client.exit();
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
    expect(child.exitCode).toBe(0);
  }, (SECONDS + 120) * 1000);
});
