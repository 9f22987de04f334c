// Runs the built CLI as a user would (dist/ is rebuilt by test/global-setup.ts).
import { spawnSync } from 'node:child_process';
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
