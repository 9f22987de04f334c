// `nydusify-ts report`, the built CLI run as a user would: a trace file in, a page and JSON out.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serializeAccessTrace } from '../../src/trace/access-trace.js';
import { computeReport } from '../../src/trace/report.js';
import { handMadeTrace } from '../helpers/hand-made-traces.js';
import { cli, runCli } from '../helpers/cli.js';
import { embeddedData } from '../helpers/report-page.js';

const dir = mkdtempSync(join(tmpdir(), 'report-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const traceFile = join(dir, 'trace.json');
writeFileSync(traceFile, serializeAccessTrace(handMadeTrace()));

describe('nydusify-ts report', () => {
  it('writes the page and prints the JSON of the same numbers', () => {
    const html = join(dir, 'out', 'report.html');
    const stdout = cli(['report', traceFile, '--html', html, '--json']);
    expect(JSON.parse(stdout)).toEqual(computeReport(handMadeTrace()));
    expect(embeddedData(readFileSync(html, 'utf8'))).toEqual(computeReport(handMadeTrace()));
  });

  it('writes the JSON to a file, with the hot chunk size asked for', () => {
    const json = join(dir, 'report.json');
    expect(cli(['report', traceFile, '--json', json, '--hot-chunk-size', '4K'])).toBe('');
    expect(JSON.parse(readFileSync(json, 'utf8'))).toEqual(computeReport(handMadeTrace(), { hotChunkSize: 4096 }));
  });

  it('refuses a file that is not a trace, in one line', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...handMadeTrace(), reads: [{ t: 0, file: 9, offset: 0, length: 1, miss: false }] }));
    const r = runCli(['report', bad, '--json']);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('nydusify-ts report: not a valid access trace: reads[0].file is 9, past the 3 entries it indexes\n');
  });

  it('asks for an output', () => {
    const r = runCli(['report', traceFile]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('--html FILE and/or --json');
  });
});
