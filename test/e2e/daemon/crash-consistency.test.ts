// End to end, crash consistency of the blob cache (needs root, /dev/fuse and the registry of the
// global setup): debian-ml is served lazily by `nydusify-ts mount --prefetch --prefetch-all` with a
// bandwidth limit, so the daemon is writing the cache all the time, while readers read random files
// through the mount. The daemon is killed -9 again and again at random moments; the manager
// restarts it. After every restart, every chunk the cache's chunk maps mark ready must verify
// against the bootstrap's digest (a crash may lose chunks, never leave a wrong one marked), and
// every read that succeeded must have given the right bytes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyCache } from '../../../src/blobcache/verify.js';
import { RafsImage } from '../../../src/rafs/reader.js';
import { cliAsync, runCliAsync } from '../../helpers/cli.js';
import { type Daemon, cleanUp, daemonPids, startDaemon, terminate, waitMounted } from '../../helpers/daemon.js';
import { waitFor } from '../../helpers/wait-for.js';
import { runAsync } from '../../helpers/run.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const TARGET = '127.0.0.1:5000/debian-ml:crash-test';
const KILLS = 12;

const work = mkdtempSync(join(tmpdir(), 'nydusify-crash-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];
/** 60 regular files of the unpacked image over 64 KiB: the readers' misses, while prefetch fetches the rest slowly. */
let files: string[];


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const count = (text: string, needle: string) => text.split(needle).length - 1;

beforeAll(async () => {
  await Promise.all([
    cliAsync(['convert', '--source', '127.0.0.1:5000/debian-ml:latest', '--target', TARGET, '--plain-http']),
    runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:debian-ml`, p('bundle')]),
  ]);
  const listing = execFileSync('find', [p('bundle', 'rootfs'), '-type', 'f', '-size', '+64k', '-printf', '%s %P\\n'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  files = listing.trim().split('\n').map((l) => l.split(' ').slice(1).join(' ')).sort(() => Math.random() - 0.5).slice(0, 60);
}, 120_000);

afterAll(() => cleanUp(daemons, work));

interface ReadTally {
  ok: number;
  failed: number;
  /**
   * Reads that met a dead daemon and ended early without an error, with a right prefix of the
   * file: the kernel returns the pages it has cached, then a short read (Node's readFile takes
   * that for the end of the file).
   */
  cut: number;
  wrong: string[];
}

/** Kills and restarts so far: while they differ the daemon is down. */
let kills = 0;
let restarts = 0;

/** Where `got` departs from `want`, for the failure message. */
function describeDifference(got: Buffer, want: Buffer): string {
  let at = 0;
  while (at < got.length && at < want.length && got[at] === want[at]) at++;
  let end = Math.min(got.length, want.length);
  while (end > at && got[end - 1] === want[end - 1]) end--;
  const zeros = got.subarray(at, end).every((b) => b === 0);
  return `${got.length} of ${want.length} bytes, differing in ${at}..${end}${zeros ? ' (zeros)' : ''}`;
}

/** Reads random files through the mount until stopped; failures while the daemon is down are expected, wrong bytes never. */
async function readLoop(mnt: string, tally: ReadTally, running: () => boolean): Promise<void> {
  while (running()) {
    const f = files[Math.floor(Math.random() * files.length)]!;
    let got: Buffer;
    const downBefore = kills !== restarts;
    const killsBefore = kills;
    try {
      got = await readFile(join(mnt, f));
    } catch {
      tally.failed++;
      await sleep(20);
      continue;
    }
    const want = await readFile(p('bundle', 'rootfs', f));
    if (got.equals(want)) tally.ok++;
    else if ((downBefore || kills !== killsBefore) && got.length < want.length && got.equals(want.subarray(0, got.length))) tally.cut++;
    else tally.wrong.push(`${f}: ${describeDifference(got, want)}`);
  }
}

describe('crash consistency of the blob cache', () => {
  it(`keeps every chunk marked ready verifiable across ${KILLS} kill -9s during prefetch and reads`, async () => {
    const cacheDir = p('cache');
    const d = startDaemon(['--target', TARGET, '--plain-http', '--cache-dir', cacheDir, '--prefetch', '--prefetch-all', '--prefetch-bandwidth', '512K'], p('mnt'));
    daemons.push(d);
    await waitMounted(d);
    const boot = readdirSync(cacheDir).find((n) => n.endsWith('.boot'))!;
    const rafs = RafsImage.open(readFileSync(join(cacheDir, boot)));
    const tally: ReadTally = { ok: 0, failed: 0, cut: 0, wrong: [] };
    let reading = true;
    const readers = Array.from({ length: 4 }, () => readLoop(d.mnt, tally, () => reading));
    let verified = 0;
    /** Ready chunks after each restart. */
    const ready: number[] = [];
    try {
      for (let kill = 1; kill <= KILLS; kill++) {
        await sleep(300 + Math.random() * 1500);
        const [pid] = daemonPids(d);
        kills++;
        process.kill(pid!, 'SIGKILL');
        await waitFor(() => count(d.stderr(), 'daemon restarted: mounted again') >= kill && daemonPids(d)[0] !== pid, `restart ${kill}`, 30_000, 25);
        restarts++;
        const check = await verifyCache(cacheDir, rafs);
        expect(check.corrupt, JSON.stringify(check.blobs.map((b) => ({ blobId: b.blobId, corrupt: b.corrupt })))).toBe(0);
        expect(check.verified).toBe(check.ready);
        verified += check.verified;
        ready.push(check.ready);
      }
    } finally {
      reading = false;
      await Promise.all(readers);
    }
    expect(tally.wrong).toEqual([]);
    expect(tally.ok).toBeGreaterThan(0);
    // the daemons did fill the cache between the crashes
    expect(ready[ready.length - 1]).toBeGreaterThan(0);
    // and the CLI says the same of the directory the last daemon left
    const cli = await runCliAsync(['cache', 'check', '--cache-dir', cacheDir, '--bootstrap', join(cacheDir, boot), '--json']);
    expect(cli.status, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ corrupt: 0 });
    expect(await terminate(d)).toEqual({ code: 0, signal: null });
    console.log(`crash consistency: ${KILLS} kill -9s survived; ${verified} ready chunks verified over the restarts (ready after each: ${ready.join(' ')} of ${[...rafs.chunkInfoTable()].length}); reads: ${tally.ok} right, ${tally.failed} failed while the daemon was down, ${tally.cut} cut short by a kill (a right prefix), ${tally.wrong.length} wrong`);
  }, 240_000);
});
