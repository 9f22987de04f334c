// `nydusify-ts daemon` (nydusd) as a child process with its API socket: dedicated to one image, or
// shared and waiting for API mounts. Every child started is remembered, so a file's afterAll can
// kill what a failed test left.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DaemonClient } from '../../src/daemon/api-client.js';
import { repoRoot } from './cli.js';

export interface ApiDaemon {
  child: ChildProcess;
  client: DaemonClient;
  mnt: string;
  stderr(): string;
}

const started: ChildProcess[] = [];

/**
 * Starts a daemon under `dir` (mount dir, socket, and unless `extra` names one, its cache dir):
 * dedicated to `target`, or shared when `target` is null. Resolves once it says it is ready.
 */
export async function startApiDaemon(dir: string, name: string, target: string | null, extra: string[] = []): Promise<ApiDaemon> {
  const mnt = join(dir, name);
  const sock = join(dir, `${name}.sock`);
  mkdirSync(mnt, { recursive: true });
  const cache = extra.includes('--cache-dir') ? [] : ['--cache-dir', join(dir, `${name}-cache`)];
  const mode = target === null ? ['--mode', 'shared'] : ['--target', target];
  const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'daemon', ...mode, '--plain-http', '--apisock', sock, '--mountpoint', mnt, ...cache, ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NYDUSIFY_LOG_LEVEL: 'info' },
  });
  started.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 15_000;
  while (!stderr.includes('"msg":"daemon ready"')) {
    if (child.exitCode !== null) throw new Error(`daemon exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`daemon not ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, client: new DaemonClient(sock, 5000), mnt, stderr: () => stderr };
}

/** SIGTERM, then its exit code. */
export async function stopApiDaemon(d: ApiDaemon): Promise<number | null> {
  if (d.child.exitCode !== null) return d.child.exitCode;
  const exited = new Promise<number | null>((r) => d.child.once('exit', (code) => r(code)));
  d.child.kill('SIGTERM');
  return exited;
}

/** SIGKILLs every daemon started here that is still running. */
export function killApiDaemons(): void {
  for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
