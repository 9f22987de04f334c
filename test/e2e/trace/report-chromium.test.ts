// The lazy-load report page in a real browser: Debian's headless Chromium loads the page the CLI
// wrote from a realistic trace, and what it built (its DOM) and what it drew (a screenshot) are
// checked: every chart series there with points, the numbers it carries unchanged, no error text,
// and the series' colours on screen.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serializeAccessTrace } from '../../../src/trace/access-trace.js';
import { computeReport } from '../../../src/trace/report.js';
import { cliAsync, repoRoot } from '../../helpers/cli.js';
import { countColour, decodePng } from '../../helpers/png.js';
import { embeddedData, REPORT_SERIES, seriesIn } from '../../helpers/report-page.js';
import { sampleTrace } from '../../helpers/sample-trace.js';

const work = mkdtempSync(join(tmpdir(), 'report-chromium-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const trace = sampleTrace();
const traceFile = join(work, 'trace.json');
writeFileSync(traceFile, serializeAccessTrace(trace));

/** Runs a program to its end and gives its stdout; rejects with its stderr unless it exits 0. */
function output(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${cmd} exited ${code}: ${stderr}`))));
  });
}

describe('lazy-load report in headless Chromium', () => {
  it('builds a DOM with every series drawn and the report\'s numbers, and no error text', async () => {
    const page = join(work, 'report.html');
    await cliAsync(['report', traceFile, '--html', page]);
    const dom = await output('chromium', ['--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${join(work, 'profile-dom')}`, '--dump-dom', `file://${page}`]);
    expect(dom).toContain('<h1>Lazy-load report</h1>');
    const series = seriesIn(dom);
    for (const key of REPORT_SERIES) expect(series.get(key), key).toMatch(/\d/);
    // cumulative lines: one point per bucket end, and the last one above the first for what was fetched
    const report = computeReport(trace);
    for (const kind of ['demand', 'prefetch', 'readahead'] as const) {
      const points = series.get(kind)!.split(' ').map((p) => p.split(',').map(Number));
      expect(points, kind).toHaveLength(report.timeline.buckets + 1);
      expect(points[points.length - 1]![1], kind).toBeLessThan(points[0]![1]!); // SVG y grows downwards
    }
    expect(embeddedData(dom)).toEqual(report);
    expect(dom).not.toMatch(/NaN|Infinity|undefined|ERR_[A-Z_]+|Uncaught|is not available/);
  });

  it('draws the charts in a 1280×1600 screenshot under 300 KB', async () => {
    const png = join(work, 'report.png');
    await output(join(repoRoot, 'scripts', 'report-screenshot.sh'), [traceFile, png]);
    expect(statSync(png).size).toBeLessThan(300 * 1024);
    const pixels = decodePng(readFileSync(png));
    expect([pixels.width, pixels.height]).toEqual([1280, 1600]);
    // the lines of the demand and prefetch series, the reads that hit and missed, the file bars
    for (const colour of ['#d9480f', '#2f9e44', '#e03131', '#1c7ed6', '#adb5bd']) expect(countColour(pixels, colour), colour).toBeGreaterThan(300);
  });
});
