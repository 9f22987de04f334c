// Says at the end of a run how many tests were skipped for want of the upstream fixtures, and where
// they were looked for: a skipped test is reported, never silently dropped (see fixtures.ts).
import type { Reporter, TestModule } from 'vitest/node';
import { FIXTURES_MISSING, locateFixtures } from './fixtures.js';

export default class FixturesReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let skipped = 0;
    for (const module of modules) {
      for (const test of module.children.allTests('skipped')) if (test.fullName.includes(FIXTURES_MISSING)) skipped++;
    }
    if (skipped === 0) return;
    const { tried } = locateFixtures();
    console.log(`\n${skipped} tests skipped: upstream fixtures not available (looked in ${tried.join(', ')}); ` +
      'run `npm run fixtures` to fetch them into .fixtures/, or set NYDUSIFY_FIXTURES\n');
  }
}
