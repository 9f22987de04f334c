// Global setup of the unit tier (vitest.unit.config.ts): builds dist/, which the CLI tests run as a
// user would. Nothing else: the unit tier needs no root, no services and no network.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..');

/** Builds dist/ once per vitest run, however many projects ask (they share vitest's main process). */
export function buildDist(): void {
  if (process.env.NYDUSIFY_DIST_BUILT === repo) return;
  execFileSync(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: repo, stdio: 'inherit' });
  process.env.NYDUSIFY_DIST_BUILT = repo;
}

export default buildDist;
