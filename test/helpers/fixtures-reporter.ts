// Says at the end of a run how many tests were skipped for want of the upstream fixtures: a skipped
// test is reported, never silently dropped (see fixtures.ts). Runs in vitest's main process, where
// the test API cannot be loaded: so fixtures.ts takes the marker from here, not the other way round.
import type { Reporter, TestModule } from 'vitest/node';

/** In the name of every test skipped for want of the fixtures (fixtures.ts puts it there). */
export const FIXTURES_MISSING = 'needs upstream fixtures: run npm run fixtures';

export default class FixturesReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let skipped = 0;
    for (const module of modules) {
      for (const test of module.children.allTests('skipped')) if (test.fullName.includes(FIXTURES_MISSING)) skipped++;
    }
    if (skipped === 0) return;
    console.log(`\n${skipped} tests skipped: upstream fixtures not available (looked in $NYDUSIFY_FIXTURES if set, else in the ` +
      'shared fixtures beside the checkout, then in .fixtures/): run `npm run fixtures` to fetch them, or set NYDUSIFY_FIXTURES\n');
  }
}
