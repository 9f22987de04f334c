// The real parts for the snapshotter's end-to-end tests: our own containerd (from scripts/e2e,
// under its own E2E_DIR, so restarting it to add our proxy plugin disturbs nobody else's), our
// snapshotter as a child process on a fixed socket, ctr / ctr-remote in our own namespace, and the
// loopback registry's access log to count the blob bytes a run fetched. Everything is asynchronous:
// vitest's worker must keep turning while containers run.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { signalIfRunning, type ProcessIdentity } from '../../src/daemon/process-identity.js';
import { clientForReferences } from '../../src/registry/client.js';
import { readBlob } from '../../src/registry/image-store.js';
import { openImageStore } from '../../src/registry/index.js';
import { repoRoot } from '../helpers/cli.js';
import { E2E_DIR as HARNESS_DIR, e2eScript } from '../helpers/e2e.js';
import { diffManifests, treeManifest } from '../helpers/trees.js';

export const E2E_DIR = '/tmp/e2e-nydusify-snapshotter';
export const SOCKET = join(E2E_DIR, 'snapshotter.sock');
export const CONTAINERD_SOCK = join(E2E_DIR, 'containerd', 'containerd.sock');
export const SNAPSHOTTER = 'nydusify-ts';
export const NAMESPACE = 'nydusify-snap-test';
export const REGISTRY = '127.0.0.1:5000';
const REGISTRY_LOG = join(HARNESS_DIR, 'logs', 'registry.log');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

export async function mustRun(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs?: number): Promise<string> {
  const r = await run(cmd, args, env, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** ctr against our containerd, in our namespace. */
export const ctr = (args: string[], timeoutMs?: number): Promise<Run> => run('ctr', ['--address', CONTAINERD_SOCK, '-n', NAMESPACE, ...args], {}, timeoutMs);
export const ctrRemote = (args: string[], timeoutMs?: number): Promise<Run> => run('ctr-remote', ['--address', CONTAINERD_SOCK, '-n', NAMESPACE, ...args], {}, timeoutMs);

export async function mustCtr(args: string[], timeoutMs?: number): Promise<string> {
  const r = await ctr(args, timeoutMs);
  if (r.code !== 0) throw new Error(`ctr ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Our containerd with the snapshotter registered as a proxy plugin (restarted only when its config changes). */
export async function containerdUp(): Promise<void> {
  const env = { E2E_DIR, E2E_EXTRA_SNAPSHOTTERS: `${SNAPSHOTTER}=${SOCKET}` };
  const r = await run(e2eScript('containerd-up.sh'), [], env);
  if (r.code !== 0) await mustRun(e2eScript('containerd-up.sh'), ['--restart'], env);
}

export interface SnapshotterProcess {
  child: ChildProcess;
  log(): string;
  exit: Promise<number | null>;
}

/**
 * Starts `nydusify-ts snapshotter ARGS` (info logs, kept in ROOT/snapshotter.log too, for looking at
 * after a failed run) and waits until it says it is ready; containerd is not asked.
 */
export async function spawnSnapshotter(root: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<SnapshotterProcess> {
  mkdirSync(root, { recursive: true });
  const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'snapshotter', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NYDUSIFY_LOG_LEVEL: 'info', ...env },
    detached: true,
  });
  let log = '';
  const logFile = createWriteStream(join(root, 'snapshotter.log'), { flags: 'a' });
  child.stderr!.on('data', (d: Buffer) => {
    log += d.toString();
    logFile.write(d);
  });
  const exit = new Promise<number | null>((done) => child.on('exit', (code) => {
    logFile.end();
    done(code);
  }));
  const deadline = Date.now() + 30_000;
  while (!log.includes('"snapshotter ready"')) {
    if (child.exitCode !== null) throw new Error(`snapshotter exited ${child.exitCode}: ${log}`);
    if (Date.now() > deadline) throw new Error(`snapshotter did not start: ${log}`);
    await sleep(50);
  }
  return { child, log: () => log, exit };
}

/** Starts `nydusify-ts snapshotter` and waits until it answers (ctr snapshots ls through containerd). */
/** `base`: the flags every test's snapshotter gets, unless a test gives its own (none: a config.toml says). */
export async function startSnapshotter(root: string, extra: string[] = [], base = ['--address', SOCKET, '--root', root, '--plain-http']): Promise<SnapshotterProcess> {
  const sn = await spawnSnapshotter(root, [...base, ...extra]);
  // containerd dials lazily and backs off after failures (up to 3 s): wait until a call reaches
  // us; `snapshots ls` would not tell (containerd answers it from its own database)
  const deadline = Date.now() + 30_000;
  for (let i = 0; ; i++) {
    const probe = `probe-${process.pid}-${i}`;
    const r = await ctr(['snapshots', '--snapshotter', SNAPSHOTTER, 'prepare', probe]);
    if (r.code === 0) {
      await ctr(['snapshots', '--snapshotter', SNAPSHOTTER, 'rm', probe]);
      break;
    }
    if (Date.now() > deadline) throw new Error(`containerd cannot reach the snapshotter: ${r.stderr}`);
    await sleep(200);
  }
  return sn;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Where the registry log ends now. */
export const registryLogOffset = (): number => statSync(REGISTRY_LOG).size;

/** The registry's access log lines written since `offset` (registryLogOffset). */
export function registryLogSince(offset: number): string[] {
  return readFileSync(REGISTRY_LOG).subarray(offset).toString('utf8').split('\n').filter(Boolean);
}

/** Bytes of GETs of these blobs logged since `offset` (only those of a user agent `agent` matches, if given). */
export function registryBlobBytes(offset: number, digests: string[], agent?: RegExp): number {
  let total = 0;
  for (const line of registryLogSince(offset)) {
    const m = /"GET \/v2\/[^ ]+\/blobs\/(sha256:[0-9a-f]{64}) [^"]*" 20[06] (\d+) "[^"]*" "([^"]*)"/.exec(line);
    if (m && digests.includes(m[1]!) && (!agent || agent.test(m[3]!))) total += Number(m[2]);
  }
  return total;
}

/** The image's config diff_ids and the chain IDs they give, bottom first. */
export async function chainIds(ref: string, tag: string): Promise<{ diffIds: string[]; chains: string[] }> {
  const client = clientForReferences([[ref, false]], true);
  try {
    const { store } = await openImageStore(ref, client);
    const manifest = (await store.getManifest(tag)).parsed as { config: { digest: string; size: number; mediaType: string } };
    const config = JSON.parse((await readBlob(store, manifest.config, 1 << 20)).toString('utf8')) as { rootfs: { diff_ids: string[] } };
    const diffIds = config.rootfs.diff_ids;
    const chains: string[] = [];
    for (const d of diffIds) chains.push(chains.length === 0 ? d : `sha256:${createHash('sha256').update(`${chains.at(-1)} ${d}`).digest('hex')}`);
    return { diffIds, chains };
  } finally {
    await client.close();
  }
}

/** The image's layers as the registry serves its manifest. */
export async function manifestLayers(ref: string): Promise<{ digest: string; size: number; mediaType: string; annotations?: Record<string, string> }[]> {
  const [repo, tag] = ref.slice(REGISTRY.length + 1).split(':') as [string, string];
  const res = await fetch(`http://${REGISTRY}/v2/${repo}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  if (!res.ok) throw new Error(`manifest ${ref}: ${res.status}`);
  return ((await res.json()) as { layers: { digest: string; size: number; mediaType: string; annotations?: Record<string, string> }[] }).layers;
}

export const exists = existsSync;
export const readText = (p: string): string => readFileSync(p, 'utf8');

/** The daemons the snapshotter under `root` recorded: id, pid, mountpoint. */
export function recordedDaemons(root: string): ({ id: string; mountpoint: string } & Partial<ProcessIdentity>)[] {
  const dir = join(root, 'daemons');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.endsWith('.json') && !n.endsWith('.config.json')).map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as { id: string; mountpoint: string } & Partial<ProcessIdentity>);
}

/** The spare daemons the snapshotter keeps (spare-daemons.ts), by the identities it recorded. */
export function recordedSpares(root: string): Partial<ProcessIdentity>[] {
  const dir = join(root, 'daemons', 'spares');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.endsWith('.identity')).map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as Partial<ProcessIdentity>);
}

/** Stops a test's snapshotter (if it runs) and kills what it left under `root` (killLeftovers). */
export async function stopAndClean(sn: SnapshotterProcess | undefined, root: string): Promise<void> {
  if (sn && sn.child.exitCode === null) {
    sn.child.kill('SIGTERM');
    await sn.exit;
  }
  await killLeftovers(root);
}

/** Kills what a test's snapshotter left (its daemons, by recorded pid) and unmounts under root. */
export async function killLeftovers(root: string): Promise<void> {
  // only a process that is still the recorded one: a pid may name another process by now
  for (const d of recordedDaemons(root)) signalIfRunning(d, 'SIGKILL');
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => !!m && m.startsWith(`${root}/`));
  for (const m of mounts.reverse()) await run('umount', ['-l', m]);
}

/** Differences between debian-ml as `umoci unpack` gives it (under `work`) and the tree at `dir`; the root's mtime is neither's to give. */
export async function umociDiff(work: string, dir: string): Promise<string[]> {
  const bundle = join(work, 'umoci');
  rmSync(bundle, { recursive: true, force: true });
  await mustRun('umoci', ['unpack', '--image', `${join(HARNESS_DIR, 'images', 'oci')}:debian-ml`, bundle], {}, 300_000);
  return diffManifests(treeManifest(join(bundle, 'rootfs')), treeManifest(dir), (path, field) => path === '.' && field === 'mtime');
}

/**
 * umociDiff of snapshot `chainTop` as a view (`viewKey`) of our snapshotter mounts it, under
 * `root`. A view no lease holds is containerd's garbage soon: fine for layers of their own, not for
 * an image's mount that its removal lets go of (see the gzip-index test).
 */
export async function umociDiffOfView(root: string, viewKey: string, chainTop: string): Promise<string[]> {
  const mnt = join(root, 'view');
  mkdirSync(mnt, { recursive: true });
  // the mount command printed as the view is made
  const command = await mustCtr(['snapshots', '--snapshotter', SNAPSHOTTER, 'view', '--target', mnt, viewKey, chainTop]);
  execFileSync('sh', ['-c', command]);
  try {
    return await umociDiff(root, mnt);
  } finally {
    execFileSync('umount', [mnt]);
  }
}
