// The upstream Nydus test data (spec/rafs-v6.md §8.2): bootstraps and blobs from dragonflyoss/nydus and
// containerd/nydus-snapshotter. They are not part of this repository: every test reads them through
// here. The root is NYDUSIFY_FIXTURES when set, else ../shared/fixtures next to the checkout, else the
// copy `npm run fixtures` fetched into .fixtures/ (scripts/fixtures.mjs, sha256-checked). When there is
// none, the tests that need them are skipped under a name that says why (describeFixtures,
// itFixtures) and fixtures-reporter.ts counts them at the end of the run; files read them lazily
// (lazyFixture), so the other tests of a file still run.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { repoRoot } from './cli.js';
import { FIXTURES_MISSING } from './fixtures-reporter.js';

/** Where the fixtures are looked for, in order: an explicit NYDUSIFY_FIXTURES is the only place looked. */
const candidates = process.env.NYDUSIFY_FIXTURES ? [process.env.NYDUSIFY_FIXTURES] : [join(repoRoot, '..', 'shared', 'fixtures'), join(repoRoot, '.fixtures')];
const root = candidates.find((dir) => existsSync(join(dir, 'nydus')));

/** True when the upstream fixtures are on this machine. */
export const fixturesAvailable = root !== undefined;

/** The root that holds nydus/ (NYDUSIFY_FIXTURES, ../shared/fixtures or .fixtures). */
export function fixturesRoot(): string {
  if (root === undefined) throw new Error(`upstream fixtures not available (${candidates.join(', ')}): ${FIXTURES_MISSING}`);
  return root;
}

/**
 * Path of an upstream fixture file from the first root that has it (the shared fixtures may predate
 * the sample configs, which `npm run fixtures` also fetches); undefined when none has it.
 */
export function fixtureFile(...parts: string[]): string | undefined {
  return candidates.map((dir) => join(dir, 'nydus', ...parts)).find((path) => existsSync(path));
}

/** A test of fixture file `parts` (its path given): skipped, with the reason in its name, where no root has it. */
export function itFixtureFile(parts: string[], name: string, fn: (path: string) => unknown, timeout?: number): void {
  const path = fixtureFile(...parts);
  it.skipIf(path === undefined)(path === undefined ? `${name} (${FIXTURES_MISSING})` : name, () => fn(path!), timeout);
}

/** Path of an upstream Nydus fixture, e.g. nydusFixture('bootstrap', 'rafs-v6-2.2.boot'). */
export function nydusFixture(...parts: string[]): string {
  return join(fixturesRoot(), 'nydus', ...parts);
}

/** The bytes of a fixture, read on first call (never at import, so a file loads without them). */
export function lazyFixture(...parts: string[]): () => Buffer {
  let bytes: Buffer | undefined;
  return () => (bytes ??= readFileSync(nydusFixture(...parts)));
}

/** A file from one of the snapshotter's tar.gz fixtures (bootstraps are packed as image/image.boot). */
export function untarFixture(name: string, inner: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'nydusify-fixture-'));
  try {
    execFileSync('tar', ['-xzf', nydusFixture('snapshotter-testdata', name), '-C', dir]);
    return readFileSync(join(dir, inner));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const named = (name: string): string => (fixturesAvailable ? name : `${name} (${FIXTURES_MISSING})`);

/** A describe block that needs the fixtures: skipped, with the reason in its name, without them. */
export function describeFixtures(name: string, fn: () => void): void {
  describe.skipIf(!fixturesAvailable)(named(name), fn);
}

/** A test that needs the fixtures: skipped, with the reason in its name, without them. */
export function itFixtures(name: string, fn: () => unknown, timeout?: number): void {
  it.skipIf(!fixturesAvailable)(named(name), fn, timeout);
}
