// The end-to-end harness of this repository (scripts/e2e, see its README): where its scripts and its
// state are, and how a test starts the parts it needs. Every path to the harness goes through here.
// In the unit tier (vitest.unit.config.ts sets NYDUSIFY_TEST_TIER=unit) starting a part throws at
// once: a test that needs a registry, images or containerd belongs in test/e2e/.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './cli.js';

/** The harness's scripts in this checkout. */
export const E2E_SCRIPTS = join(repoRoot, 'scripts', 'e2e');
/** The harness's state: pids/, logs/NAME.log, registry/data, images/oci (the test images' OCI layout). */
export const E2E_DIR = process.env.E2E_DIR ?? '/tmp/e2e';

/** Path of a harness script; refused in the unit tier, which runs without services. */
export function e2eScript(name: string): string {
  if (process.env.NYDUSIFY_TEST_TIER === 'unit') {
    throw new Error(`this test needs the end-to-end harness (scripts/e2e/${name}): it belongs in test/e2e/, not in the unit tier`);
  }
  return join(E2E_SCRIPTS, name);
}

/**
 * Runs a harness script and waits for it: it starts what is not running yet and returns at once when
 * everything is (concurrent callers wait on the harness's setup lock). `env` adds to the environment,
 * e.g. another E2E_DIR.
 */
export function e2eUp(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): void {
  execFileSync(e2eScript(script), args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, E2E_DIR, ...env } });
}
