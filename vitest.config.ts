// `npm test`: both tiers, the unit tier first. The end-to-end tier (test/e2e) gets the global setup
// that starts the harness in scripts/e2e (registries, test images); vitest runs a project's global
// setup only when one of its files is selected, so `vitest run test/rafs` starts nothing.
import { defineConfig } from 'vitest/config';
import { unitTier } from './vitest.unit.config.js';

export default defineConfig({
  test: {
    // e2e files share kernel mounts, ports and the registry: one file at a time keeps them honest on
    // 2 cores (vitest applies this to every project of the run)
    fileParallelism: false,
    reporters: ['default', './test/helpers/fixtures-reporter.ts'],
    projects: [
      { test: { ...unitTier, sequence: { groupOrder: 0 } } },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
