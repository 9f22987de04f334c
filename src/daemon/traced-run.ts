// A command run over a mounted image to record what it reads (`optimize --run`), without a
// container runtime: `nydusify-ts mount --trace` serves the image in a child process (with a blob
// cache of its own, so the trace's fetches are what a cold start fetches); the command runs chrooted
// in an overlay whose upper layer is a tmpfs (its writes go nowhere) with /proc and /dev bound
// read-only; then everything is unmounted and the mount stopped, which writes the trace.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTraceFile } from '../image/trace-file.js';
import type { AccessTrace } from '../trace/access-trace.js';
import { mustRunCommand } from '../util/command.js';
import { log } from '../util/log.js';
import { CLI } from './daemon-process.js';
import { mountsAt, parseMountInfo } from './fuse/session.js';

export interface TracedRunOptions {
  /** The image: a registry reference. */
  target: string;
  /** More `mount` flags (--plain-http, --insecure). */
  mountArgs?: string[];
  /** The command and its arguments, run as root inside the image. */
  command: string[];
  /** Where the trace is kept (default: nowhere, once read). */
  traceFile?: string;
  /** Where the scratch directory goes (mount points, the daemon's state and cache); default the temp dir. */
  workDir?: string;
}

const MOUNT_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export class TracedRunError extends Error {}

/** Runs the command over the mounted image; resolves with the trace of what it read. A command that fails is an error. */
export async function runTraced(opts: TracedRunOptions): Promise<AccessTrace> {
  const scratch = await mkdtemp(join(opts.workDir ?? tmpdir(), 'nydusify-traced-run-'));
  const dir = (name: string): string => {
    const path = join(scratch, name);
    mkdirSync(path, { recursive: true });
    return path;
  };
  const traceFile = opts.traceFile ?? join(scratch, 'trace.json');
  try {
    const status = await runOverMount(opts, traceFile, dir);
    if (status !== 0) throw new TracedRunError(`${opts.command.join(' ')} exited ${status ?? 'on a signal'} in the image: no trace is used`);
    return await readTraceFile(traceFile).catch((err: Error) => {
      throw new TracedRunError(`the mount left no trace at ${traceFile}: ${err.message}`);
    });
  } finally {
    await removeUnlessMounted(scratch);
  }
}

/** Mounts the image, runs the command, unmounts everything: the command's exit status. */
async function runOverMount(opts: TracedRunOptions, traceFile: string, dir: (name: string) => string): Promise<number | null> {
  const [image, rw, root] = [dir('image'), dir('rw'), dir('root')];
  const mount = startMount(opts, traceFile, image, dir('state'), dir('cache'));
  const mounted: string[] = [];
  try {
    await mount.ready;
    return await runInImage(opts.command, image, rw, root, mounted);
  } finally {
    for (const path of mounted.reverse()) {
      await mustRunCommand('umount', [path])
        .catch(() => mustRunCommand('umount', ['-l', path]))
        .catch((err: unknown) => log.warn('could not unmount', { path, error: err }));
    }
    await mount.stop();
  }
}

/** Removes `dir` unless something is still mounted below it (a recursive remove would reach into it). */
async function removeUnlessMounted(dir: string): Promise<void> {
  const left = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint.startsWith(`${dir}/`));
  if (left.length > 0) {
    log.warn('left in place: still mounted below it', { dir, mounts: left.map((m) => m.mountPoint) });
    return;
  }
  await rm(dir, { recursive: true, force: true });
}

/** The overlay, its /proc and /dev, the command; what it mounted is pushed on `mounted` (to undo in reverse). */
async function runInImage(command: string[], image: string, rw: string, root: string, mounted: string[]): Promise<number | null> {
  await mustRunCommand('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', rw]);
  mounted.push(rw);
  mkdirSync(join(rw, 'upper'));
  mkdirSync(join(rw, 'work'));
  await mustRunCommand('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${image},upperdir=${join(rw, 'upper')},workdir=${join(rw, 'work')}`, root]);
  mounted.push(root);
  for (const system of ['/proc', '/dev']) {
    const at = join(root, system);
    mkdirSync(at, { recursive: true });
    await mustRunCommand('mount', ['--bind', system, at]);
    mounted.push(at);
    await mustRunCommand('mount', ['-o', 'remount,bind,ro', at]);
  }
  log.info('running in the image', { command: command.join(' ') });
  return exitOf(spawn('chroot', [root, ...command], { stdio: 'inherit', env: { PATH, HOME: '/root', TERM: process.env.TERM ?? 'dumb' } }));
}

interface MountChild {
  /** Resolves once the image answers at its mount path; rejects if the mount exits first or takes too long. */
  ready: Promise<void>;
  /** SIGTERM, then its exit (the trace is written by then). */
  stop(): Promise<void>;
}

function startMount(opts: TracedRunOptions, traceFile: string, mountPath: string, stateDir: string, cacheDir: string): MountChild {
  // no kernel readahead: the trace then holds the pages the command touched, not the windows around them
  const args = ['mount', '--target', opts.target, '--mount-path', mountPath, '--trace', traceFile, '--state-dir', stateDir, '--cache-dir', cacheDir, '--kernel-readahead', '0', ...(opts.mountArgs ?? [])];
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-16_384)));
  const exited = exitOf(child);
  const ready = (async () => {
    const deadline = Date.now() + MOUNT_TIMEOUT_MS;
    while (!answers(mountPath)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new TracedRunError(`nydusify-ts mount exited before the image was mounted: ${stderr.trim()}`);
      if (Date.now() > deadline) throw new TracedRunError(`the image was not mounted within ${MOUNT_TIMEOUT_MS / 1000} s: ${stderr.trim()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timeout = new Promise<never>((_, fail) => setTimeout(() => fail(new TracedRunError(`nydusify-ts mount did not stop within ${STOP_TIMEOUT_MS / 1000} s`)), STOP_TIMEOUT_MS).unref());
    const code = await Promise.race([exited, timeout]);
    if (code !== 0) log.warn('nydusify-ts mount exited with an error', { code, stderr: stderr.trim() });
  };
  return { ready, stop };
}

/** Our FUSE mount is at `path` and its root answers. */
function answers(path: string): boolean {
  if (mountsAt(path).length === 0) return false;
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('exit', (code) => done(code));
  });
}
