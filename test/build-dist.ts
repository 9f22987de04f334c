// Global setup of the unit tier (vitest.unit.config.ts): builds dist/, which the CLI tests run as a
// user would. Nothing else: the unit tier needs no root, no services and no network.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..');
// the stamp scripts/setup.sh keeps too: dist/ is as new as the sources when it is newer than all of them
const stamp = join(repo, 'dist', '.build-stamp');
const inputs = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json'];

function newestChange(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return readdirSync(path).reduce((newest, name) => Math.max(newest, newestChange(join(path, name))), st.mtimeMs);
}

function upToDate(): boolean {
  try {
    const built = statSync(stamp).mtimeMs;
    return inputs.every((p) => newestChange(join(repo, p)) < built);
  } catch {
    return false;
  }
}

/** Builds dist/ unless it is newer than every source; once per vitest run, however many projects ask. */
export function buildDist(): void {
  if (process.env.NYDUSIFY_DIST_BUILT === repo || upToDate()) return;
  execFileSync(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: repo, stdio: 'inherit' });
  writeFileSync(stamp, '');
  const now = new Date();
  utimesSync(stamp, now, now);
  process.env.NYDUSIFY_DIST_BUILT = repo;
}

export default buildDist;
