// `npm run test:unit`: the unit tier — everything under test/ but test/e2e. No root, no services, no
// network beyond sockets a test opens on loopback itself; its only global setup builds dist/. A test
// that starts the harness or reads its state fails at once here (test/helpers/e2e.ts, E2E_DIR below),
// and short timeouts turn a wait on something that is not there into a failure instead of a hang.
import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export const unitTier = {
  name: 'unit',
  include: ['test/**/*.test.ts'],
  exclude: ['test/e2e/**', '**/node_modules/**'],
  globalSetup: ['test/build-dist.ts'],
  // no harness state either: a test reading the registry's storage or the test images fails at once
  env: { NYDUSIFY_TEST_TIER: 'unit', E2E_DIR: '/nonexistent/e2e-harness-is-not-part-of-the-unit-tier' },
  testTimeout: 30_000,
  hookTimeout: 30_000,
};

export default defineConfig({
  // one worker per core (vitest keeps one core free by default: a single worker on 2 cores)
  test: { ...unitTier, maxWorkers: availableParallelism(), reporters: ['default', './test/helpers/fixtures-reporter.ts'] },
});
