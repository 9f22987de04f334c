// The lazy-load report as one self-contained HTML page: inline stylesheet, inline SVG charts, no
// script and no network (its Content-Security-Policy forbids fetching anything). Every string from
// the trace is escaped; the ReportData it was drawn from rides along as a JSON block
// (id="report-data") for tools and tests.
import { formatBytes } from '../util/bytes.js';
import { FETCH_KINDS, type FetchKind } from './access-trace.js';
import { barChart, byteUnit, COUNT_UNIT, lineChart, timeUnit, type LineSeries } from './report-charts.js';
import { escapeHtml, jsonForScript } from './html-escape.js';
import type { FileRow, ReportData } from './report.js';

/** Files drawn in the per-file chart (the table lists every row of the report). */
const CHART_FILES = 15;

const KIND_LABELS: Record<FetchKind, string> = {
  demand: 'on demand (a read waited)',
  readahead: 'readahead',
  prefetch: 'prefetch',
  hot: 'hot region at startup',
};
const KIND_COLORS: Record<FetchKind, string> = { demand: '#d9480f', readahead: '#1c7ed6', prefetch: '#2f9e44', hot: '#7048e8' };
const HIT_COLOR = '#2f9e44';
const MISS_COLOR = '#e03131';

const STYLE = `
:root { color-scheme: light; }
body { margin: 0; background: #f6f7f9; color: #1f2328; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 10px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d8dee4; padding-bottom: 4px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0 0 14px; }
.facts dt { color: #57606a; }
.facts dd { margin: 0; word-break: break-all; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
.warning { background: #fff4e5; border: 1px solid #f0b45b; border-radius: 6px; padding: 8px 12px; margin: 0 0 14px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; }
.card { background: #fff; border: 1px solid #d8dee4; border-radius: 8px; padding: 10px 12px; }
.card .value { font-size: 20px; font-weight: 600; }
.card .label { color: #57606a; font-size: 12px; }
.chart { background: #fff; border: 1px solid #d8dee4; border-radius: 8px; margin: 10px 0; padding: 10px 12px; }
.chart figcaption { font-weight: 600; }
.chart svg { display: block; }
.chart text { fill: #404850; }
.chart .axis-label { fill: #1f2328; font-weight: 600; }
.chart .grid { stroke: #eaeef2; }
.chart .axis, .chart .tick { stroke: #8c959f; }
.legend { list-style: none; margin: 4px 0; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 12px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: 13px; }
th, td { border-bottom: 1px solid #eaeef2; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f0f2f4; }
th:first-child, td:first-child { text-align: left; white-space: normal; word-break: break-all; }
td.path { min-width: 420px; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
.split { display: flex; height: 18px; border-radius: 4px; overflow: hidden; background: #eaeef2; margin: 6px 0; max-width: 640px; }
.note { color: #57606a; font-size: 13px; }
.estimate { font-weight: 600; color: #7048e8; }
`;

const percent = (share: number): string => `${(share * 100).toFixed(1)} %`;
const count = (n: number): string => n.toLocaleString('en-US');
const bytes = (n: number): string => formatBytes(Math.round(n));

function duration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function renderReportHtml(data: ReportData): string {
  const { header } = data;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lazy-load report: ${escapeHtml(header.image)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${headerSection(data)}
${timelineSection(data)}
${filesSection(data)}
${cacheSection(data)}
${wasteSection(data)}
${optimizedSection(data)}
<p class="note">Drawn by nydusify-ts report from the mount's access trace.</p>
</main>
<script type="application/json" id="report-data">${jsonForScript(data)}</script>
</body>
</html>
`;
}

function card(value: string, label: string): string {
  return `<div class="card"><div class="value">${escapeHtml(value)}</div><div class="label">${escapeHtml(label)}</div></div>`;
}

function headerSection({ header, cache, waste, optimized }: ReportData): string {
  const { totals } = header;
  const facts: Array<[string, string]> = [
    ['image', header.image],
    ['bootstrap', `sha256:${header.bootstrap}`],
    ['started', header.started],
    ['duration', duration(header.duration)],
  ];
  const warning = header.truncated
    ? '<p class="warning" id="truncated"><strong>Truncated trace.</strong> The recorder hit its event limit and dropped what came after: every number below covers only the start of the mount.</p>'
    : '';
  return `<header>
<h1>Lazy-load report</h1>
${warning}
<dl class="facts">${facts.map(([k, v]) => `<dt>${k}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>
<div class="cards">
${card(bytes(totals.fetchedBytes), `fetched (compressed), ${bytes(totals.fetchedSize)} uncompressed`)}
${card(bytes(totals.touchedBytes), `read by the container, in ${count(totals.files)} files`)}
${card(count(totals.requests), 'chunk fetches')}
${card(percent(cache.hitShare), `cache hits: ${count(cache.misses)} of ${count(cache.reads)} reads waited`)}
${card(duration(cache.waitMs), `waiting on ${count(cache.demandFetches)} demand fetches`)}
${card(bytes(waste.bytes), `wasted: ${percent(waste.share)} of fetched bytes never read`)}
${card(bytes(optimized.estimatedBytes), `optimized layout (estimate), ${percent(optimized.savedShare)} less`)}
</div>
</header>`;
}

/** A running total, as points at each bucket's end (starting from 0 at time 0). */
function cumulative(perBucket: number[], bucketMs: number): Array<[number, number]> {
  let total = 0;
  return [[0, 0], ...perBucket.map((v, i): [number, number] => [(i + 1) * bucketMs, (total += v)])];
}

/** A per-bucket count as a step line: flat across each bucket. */
function steps(perBucket: number[], bucketMs: number): Array<[number, number]> {
  return perBucket.flatMap((v, i): Array<[number, number]> => [[i * bucketMs, v], [(i + 1) * bucketMs, v]]);
}

function timelineSection({ timeline }: ReportData): string {
  const end = timeline.buckets * timeline.bucketMs;
  const x = { label: 'time since the mount was served', unit: timeUnit(end), max: end };
  const fetched: LineSeries[] = FETCH_KINDS.map((k) => ({ key: k, label: KIND_LABELS[k], color: KIND_COLORS[k], points: cumulative(timeline.fetchedBytes[k], timeline.bucketMs) }));
  const maxFetched = Math.max(...fetched.map((s) => s.points[s.points.length - 1]![1]));
  const reads: LineSeries[] = [
    { key: 'hits', label: 'reads served from the cache (hits)', color: HIT_COLOR, points: steps(timeline.hits, timeline.bucketMs) },
    { key: 'misses', label: 'reads that waited for a fetch (misses)', color: MISS_COLOR, points: steps(timeline.misses, timeline.bucketMs) },
  ];
  const maxReads = Math.max(...timeline.hits, ...timeline.misses);
  return `<section id="timeline">
<h2>Fetches and reads over time</h2>
${lineChart({ title: 'Bytes fetched so far, by why they were fetched (compressed, cumulative)', x, y: { label: 'bytes fetched', unit: byteUnit(maxFetched), max: maxFetched }, series: fetched })}
${lineChart({ title: `Reads per ${duration(timeline.bucketMs)}: cache hits and misses`, x, y: { label: `reads per ${duration(timeline.bucketMs)}`, unit: COUNT_UNIT, max: maxReads }, series: reads })}
</section>`;
}

function fileCells(row: Omit<FileRow, 'path'>): string {
  const cells = [bytes(row.size), bytes(row.touched), percent(row.size === 0 ? 0 : row.touched / row.size), bytes(row.fetchedBytes), bytes(row.fetchedSize), count(row.reads), count(row.fetches)];
  return cells.map((c) => `<td>${c}</td>`).join('');
}

function filesSection({ files }: ReportData): string {
  if (files.top.length === 0) return '<section id="files"><h2>Files</h2><p>No file was read or fetched.</p></section>';
  const drawn = files.top.slice(0, CHART_FILES);
  const max = Math.max(...drawn.flatMap((r) => [r.size, r.touched, r.fetchedBytes]));
  const chart = barChart({
    title: `The ${drawn.length} files that cost most: size, bytes read, bytes fetched`,
    rows: drawn.map((r) => r.path),
    x: { label: 'bytes', unit: byteUnit(max), max },
    series: [
      { key: 'file-size', label: 'file size', color: '#adb5bd', values: drawn.map((r) => r.size) },
      { key: 'file-touched', label: 'bytes read (touched, uncompressed)', color: '#1c7ed6', values: drawn.map((r) => r.touched) },
      { key: 'file-fetched', label: 'bytes fetched (compressed)', color: '#d9480f', values: drawn.map((r) => r.fetchedBytes) },
    ],
  });
  const rows = files.top.map((r) => `<tr><td class="path">${escapeHtml(r.path)}</td>${fileCells(r)}</tr>`);
  if (files.others) rows.push(`<tr class="others"><td>${count(files.others.count)} other files</td>${fileCells(files.others)}</tr>`);
  return `<section id="files">
<h2>Files</h2>
${chart}
<table id="file-table">
<thead><tr><th>file</th><th>size</th><th>read</th><th>read ÷ size</th><th>fetched (compressed)</th><th>fetched (uncompressed)</th><th>reads</th><th>chunk fetches</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
<p class="note">Fetched bytes are those of the chunks the trace attributes to the file (a chunk shared by several files counts for one of them).</p>
</section>`;
}

function cacheSection({ cache }: ReportData): string {
  const missShare = cache.reads === 0 ? 0 : cache.misses / cache.reads;
  const meanWait = cache.demandFetches === 0 ? 0 : cache.waitMs / cache.demandFetches;
  return `<section id="cache">
<h2>Cache hits</h2>
<div class="split" title="hits and misses"><div style="width:${(cache.hitShare * 100).toFixed(2)}%;background:${HIT_COLOR}"></div><div style="width:${(missShare * 100).toFixed(2)}%;background:${MISS_COLOR}"></div></div>
<ul class="legend"><li><span class="swatch" style="background:${HIT_COLOR}"></span>${count(cache.hits)} reads served from the cache (${percent(cache.hitShare)})</li><li><span class="swatch" style="background:${MISS_COLOR}"></span>${count(cache.misses)} reads waited for a fetch (${percent(missShare)})</li></ul>
<p>Reads waited on ${count(cache.demandFetches)} demand fetches for <strong>${duration(cache.waitMs)}</strong> in all (${duration(meanWait)} per fetch on average; fetches that overlap in time are counted each).</p>
</section>`;
}

function wasteSection({ waste, timeline }: ReportData): string {
  const rows = FETCH_KINDS.map((k) => {
    const fetched = timeline.fetchedBytes[k].reduce((a, b) => a + b, 0);
    const w = waste.byKind[k];
    return `<tr><td>${escapeHtml(KIND_LABELS[k])}</td><td>${count(w.chunks)}</td><td>${bytes(w.bytes)}</td><td>${bytes(fetched)}</td><td>${percent(fetched === 0 ? 0 : w.bytes / fetched)}</td></tr>`;
  });
  return `<section id="waste">
<h2>Wasted fetches</h2>
<p><strong>${bytes(waste.bytes)}</strong> (${percent(waste.share)} of the bytes fetched) in ${count(waste.chunks)} chunks that no read touched.</p>
<table id="waste-table">
<thead><tr><th>fetched as</th><th>unread chunks</th><th>unread bytes</th><th>fetched bytes</th><th>unread share</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
<p class="note">A chunk is unread when no read of the file it was fetched for touched any of its bytes (bytes compressed).</p>
</section>`;
}

function optimizedSection({ optimized }: ReportData): string {
  const max = Math.max(optimized.bytesNow, optimized.estimatedBytes);
  const chart = barChart({
    title: 'Bytes fetched now and by an optimized layout (estimate)',
    rows: ['fetched now', 'optimized layout (estimate)'],
    x: { label: 'bytes fetched (compressed)', unit: byteUnit(max), max },
    series: [{ key: 'optimized-bytes', label: 'compressed bytes', color: '#7048e8', values: [optimized.bytesNow, optimized.estimatedBytes] }],
  });
  const verdict = optimized.savedBytes >= 0
    ? `${bytes(optimized.savedBytes)} less (${percent(optimized.savedShare)})`
    : `${bytes(-optimized.savedBytes)} more (${percent(-optimized.savedShare)})`;
  return `<section id="optimized">
<h2>What an optimized layout would save <span class="estimate">(an estimate)</span></h2>
<p>An image laid out from this trace would fetch about <strong>${bytes(optimized.estimatedBytes)}</strong> instead of ${bytes(optimized.bytesNow)}: ${verdict}, in ${optimized.requestsOptimized === 0 ? 'no request' : 'one sequential stream'} instead of ${count(optimized.requestsNow)} chunk fetches.</p>
${chart}
<p class="note"><span class="estimate">Estimate</span>, not a measurement: each file's read ranges rounded out to ${bytes(optimized.hotChunkSize)} hot chunks, times that file's observed compression ratio (compressed ÷ uncompressed bytes fetched; the image-wide ${optimized.compressionRatio.toFixed(3)} for a file that fetched nothing). The real hot region depends on how the optimizer packs the chunks and how well they compress.</p>
</section>`;
}
