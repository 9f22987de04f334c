import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // e2e tests share kernel mounts and ports: one file at a time keeps them honest on 2 cores
    fileParallelism: false,
    reporters: ['default'],
  },
});
