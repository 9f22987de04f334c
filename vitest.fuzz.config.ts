// `npm run fuzz`: only the fuzz targets (test/fuzz), at the case count FUZZ_RUNS sets. They run in
// process on built samples and temp dirs, so the e2e registry and images of the global setup are
// not needed.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/fuzz/**/*.test.ts'],
    testTimeout: 3_600_000,
    fileParallelism: false,
    reporters: ['default', './test/helpers/fixtures-reporter.ts'],
  },
});
