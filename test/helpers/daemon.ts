// `nydusify-ts mount` as a child process, for the FUSE tests: start it, wait until its mount
// answers, stop it with SIGTERM. Its manager state (daemon records, sockets, logs) goes to
// MNT.state, so each test's daemons are its own and can be found and killed afterwards.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { FS_TYPE, parseMountInfo } from '../../src/daemon/fuse/session.js';
import { signalIfRunning, type ProcessIdentity } from '../../src/daemon/process-identity.js';
import { cli, repoRoot } from './cli.js';
import { erofsImageManifest, treeManifest, type Manifest } from './trees.js';

export interface Daemon {
  child: ChildProcess;
  mnt: string;
  stateDir: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/** Runs `nydusify-ts mount ARGS --mount-path MNT` (info logs on stderr, kept for the checks). */
export function startDaemon(args: string[], mnt: string, stateDir = `${mnt}.state`, env: Record<string, string> = {}): Daemon {
  mkdirSync(mnt, { recursive: true });
  const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'mount', ...args, '--mount-path', mnt, '--state-dir', stateDir], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NYDUSIFY_LOG_LEVEL: 'info', ...env },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on('exit', (code, signal) => done({ code, signal })));
  return { child, mnt, stateDir, exit, stderr: () => stderr };
}

/** Mounts at `mnt` of our FUSE filesystem (or, for `mount --block`, of the kernel's erofs). */
export const ourMounts = (mnt: string, fsType = FS_TYPE) =>
  parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint === mnt && m.fsType === fsType);

/**
 * Waits until the daemon says it mounted, `mnt` is our (only) mount and it answers. The log line
 * matters: a stale mount at the same path would pass the other two checks from the kernel's cache.
 */
export async function waitMounted(d: Daemon, timeoutMs = 15_000, fsType = FS_TYPE, probe = 'etc'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (d.child.exitCode !== null) throw new Error(`daemon exited ${d.child.exitCode}: ${d.stderr()}`);
    if (d.stderr().includes('"msg":"mounted"') && ourMounts(d.mnt, fsType).length === 1) {
      try {
        statSync(join(d.mnt, probe));
        return;
      } catch {
        // not answering yet
      }
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for the mount at ${d.mnt}: ${d.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGTERM, then the exit (or an error after 10 s). */
export function terminate(d: Daemon): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  d.child.kill('SIGTERM');
  const timeout = new Promise<never>((_, fail) => setTimeout(() => fail(new Error(`daemon at ${d.mnt} did not exit within 10 s: ${d.stderr()}`)), 10_000).unref());
  return Promise.race([d.exit, timeout]);
}

/** The fetch counters `mount` logs when it stops ("lazy loading done"). */
export interface LazyStats {
  rangeRequests: number;
  fetchedBytes: number;
  chunks: number;
  corruptChunks: number;
  blobBytes: number;
}

/** SIGTERM, then the exit and the daemon's fetch counters. */
export async function stopWithStats(d: Daemon): Promise<{ code: number | null; stats: LazyStats }> {
  const { code } = await terminate(d);
  const line = d.stderr().split('\n').find((l) => l.includes('"msg":"lazy loading done"'));
  if (!line) throw new Error(`no "lazy loading done" line: ${d.stderr()}`);
  return { code, stats: JSON.parse(line) as LazyStats };
}

/** After a test file: kills what is still running, lazily unmounts anything under `work`, removes it. */
export async function cleanUp(daemons: Daemon[], work: string): Promise<void> {
  for (const d of daemons) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
  await Promise.all(daemons.map((d) => Promise.race([d.exit, new Promise((r) => setTimeout(r, 5000))])));
  for (const d of daemons) for (const id of daemonIdentities(d)) signalIfRunning(id, 'SIGKILL');
  for (const m of parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'))) {
    if (m.mountPoint.startsWith(work)) spawnSync('umount', ['-i', '-l', m.mountPoint]);
  }
  rmSync(work, { recursive: true, force: true });
}

/** The process identities of the daemons the manager of `d` recorded (they run detached from it). */
function daemonIdentities(d: Daemon): Partial<ProcessIdentity>[] {
  if (!existsSync(d.stateDir)) return [];
  return readdirSync(d.stateDir)
    .filter((n) => n.endsWith('.json') && !n.endsWith('.config.json'))
    .map((n) => JSON.parse(readFileSync(join(d.stateDir, n), 'utf8')) as Partial<ProcessIdentity>);
}

/** The pids of the daemons the manager of `d` recorded. */
export function daemonPids(d: Daemon): number[] {
  return daemonIdentities(d).map((id) => id.pid).filter((pid): pid is number => typeof pid === 'number');
}

/** All of a file read as cat(1) reads it: until a read returns nothing; a failed read (EIO, say) rejects. */
export async function readToEnd(path: string): Promise<Buffer> {
  const fd = await open(path);
  try {
    const parts: Buffer[] = [];
    for (;;) {
      const { bytesRead, buffer } = await fd.read(Buffer.alloc(1 << 16), 0, 1 << 16, null);
      if (bytesRead === 0) return Buffer.concat(parts);
      parts.push(buffer.subarray(0, bytesRead));
    }
  } finally {
    await fd.close();
  }
}

/**
 * The tree of a local image (bootstrap + blob directory) as a FUSE mount serves it (the daemon then
 * stopped cleanly) and as its `export --block` image holds it (kernel erofs), under `dir`.
 */
export async function localImageTrees(bootstrap: string, blobDir: string, dir: string, daemons: Daemon[]): Promise<{ fuse: Manifest; block: Manifest; exit: Awaited<ReturnType<typeof terminate>> }> {
  const d = startDaemon(['--bootstrap', bootstrap, '--blob-dir', blobDir], join(dir, 'mnt'));
  daemons.push(d);
  await waitMounted(d);
  const fuse = treeManifest(d.mnt);
  const exit = await terminate(d);
  cli(['export', '--block', '--bootstrap', bootstrap, '--blob-dir', blobDir, '--output', join(dir, 'image.img')]);
  return { fuse, block: erofsImageManifest(join(dir, 'image.img')), exit };
}
