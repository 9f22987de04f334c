// `npm run test:unit`: the unit tier — everything under test/ but test/e2e. No root, no services, no
// network beyond sockets a test opens on loopback itself; its only global setup builds dist/. A test
// that starts the harness fails at once here (test/helpers/e2e.ts), and short timeouts turn a wait on
// something that is not there into a failure instead of a hang.
import { defineConfig } from 'vitest/config';

/**
 * End-to-end files still in unit folders: they need root, the registry or containerd. They run in
 * the e2e tier until they move to test/e2e/; then this list goes.
 */
export const awaitingMoveToE2e: string[] = [];

export const unitTier = {
  name: 'unit',
  include: ['test/**/*.test.ts'],
  exclude: ['test/e2e/**', ...awaitingMoveToE2e, '**/node_modules/**'],
  globalSetup: ['test/build-dist.ts'],
  env: { NYDUSIFY_TEST_TIER: 'unit' },
  testTimeout: 30_000,
  hookTimeout: 30_000,
};

export default defineConfig({
  test: { ...unitTier, reporters: ['default'] },
});
