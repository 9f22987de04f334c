// `nydusify-ts report TRACE --html OUT.html [--json [OUT.json]]`: the lazy-load report of a mount's
// access trace, as a self-contained HTML page and/or as JSON.
import { readFile, stat } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { MAX_TRACE_BYTES, parseAccessTrace } from '../trace/access-trace.js';
import { DEFAULT_HOT_CHUNK_SIZE } from '../trace/access-trace.js';
import { computeReport } from '../trace/report.js';
import { renderReportHtml } from '../trace/report-html.js';
import { writeAtomically } from '../util/files.js';
import { parseSize } from './options.js';

interface ReportFlags {
  html?: string;
  json?: string | true;
  hotChunkSize: number;
}

async function report(traceFile: string, flags: ReportFlags): Promise<void> {
  if (!flags.html && !flags.json) throw new InvalidArgumentError('say what to write: --html FILE and/or --json [FILE]');
  // refused before reading: a trace file is untrusted and could be anything
  const { size } = await stat(traceFile);
  if (size > MAX_TRACE_BYTES) throw new Error(`${traceFile}: ${size} bytes, more than a trace may hold (${MAX_TRACE_BYTES})`);
  const data = computeReport(parseAccessTrace(await readFile(traceFile)), { hotChunkSize: flags.hotChunkSize });
  if (flags.html) await writeAtomically(flags.html, renderReportHtml(data));
  const json = `${JSON.stringify(data, null, 2)}\n`;
  if (flags.json === true) process.stdout.write(json);
  else if (flags.json) await writeAtomically(flags.json, json);
}

export function reportCommand(): Command {
  return new Command('report')
    .description('draw the lazy-load report of a mount\'s access trace: a self-contained HTML page and/or JSON')
    .argument('<trace>', 'access trace file (mount --trace, or the daemon API\'s metrics/pattern)')
    .option('--html <file>', 'write the report as one HTML page (no network needed to view it)')
    .option('--json [file]', 'write the report\'s numbers as JSON (to stdout without a file)')
    .addOption(new Option('--hot-chunk-size <bytes>', 'chunk size of the optimized layout the estimate assumes (e.g. 16K)').argParser(parseSize).default(DEFAULT_HOT_CHUNK_SIZE, '16K'))
    .action(report);
}
