// Runs the built CLI as a user would (dist/ is rebuilt by test/global-setup.ts).
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const repoRoot = join(import.meta.dirname, '..', '..');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const result = spawnSync(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), ...args], {
    encoding: 'utf8',
    input: opts.input,
    env: { ...process.env, NYDUSIFY_LOG_LEVEL: 'warn', ...opts.env },
    maxBuffer: 1 << 28,
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Runs the CLI and throws with its stderr unless it exits 0. */
export function cli(args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): string {
  const r = runCli(args, opts);
  if (r.status !== 0) throw new Error(`nydusify-ts ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/**
 * runCli without blocking the test worker: long end-to-end files must let the worker's event loop
 * turn, or vitest's 60 s RPC timeout fires while a synchronous child runs.
 */
export function runCliAsync(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), ...args], {
      env: { ...process.env, NYDUSIFY_LOG_LEVEL: 'warn', ...opts.env },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    child.stdin?.end(opts.input);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

export async function cliAsync(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<string> {
  const r = await runCliAsync(args, opts);
  if (r.status !== 0) throw new Error(`nydusify-ts ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}
