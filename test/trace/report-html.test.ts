import { describe, expect, it } from 'vitest';
import { MiB } from '../../src/util/bytes.js';
import { escapeHtml, jsonForScript } from '../../src/trace/html-escape.js';
import { computeReport } from '../../src/trace/report.js';
import { renderReportHtml } from '../../src/trace/report-html.js';
import { byteUnit, ticks } from '../../src/trace/report-charts.js';
import { emptyTrace, handMadeTrace } from '../helpers/hand-made-traces.js';
import { embeddedData, REPORT_SERIES, seriesIn } from '../helpers/report-page.js';
import { sampleTrace } from '../helpers/sample-trace.js';

describe('lazy-load report page', () => {
  it('draws every series with points, and carries the numbers it was drawn from', () => {
    const data = computeReport(sampleTrace());
    const html = renderReportHtml(data);
    const series = seriesIn(html);
    expect([...series.keys()].sort()).toEqual([...REPORT_SERIES].sort());
    for (const [key, points] of series) expect(points, key).toMatch(/\d/);
    // a cumulative line starts at 0 and has a point at the end of every bucket
    expect(series.get('demand')!.split(' ')).toHaveLength(data.timeline.buckets + 1);
    expect(embeddedData(html)).toEqual(data);
  });

  it('renders a path holding a script as text, and keeps it from ending the data block', () => {
    const trace = handMadeTrace();
    trace.files[0]!.path = '/</script><script>alert("path")</script>';
    trace.image = 'evil"><img src=x onerror=alert(1)>';
    const data = computeReport(trace);
    const html = renderReportHtml(data);
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<img');
    expect(html.match(/<script/g)).toHaveLength(1);
    expect(html.match(/<\/script>/g)).toHaveLength(1);
    expect(html).toContain('<td class="path">/&lt;/script&gt;&lt;script&gt;alert(&quot;path&quot;)&lt;/script&gt;</td>');
    expect(html).toContain('<dd>evil&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</dd>');
    expect(embeddedData(html)).toEqual(data);
  });

  it('draws an empty trace without NaN, Infinity or undefined', () => {
    const html = renderReportHtml(computeReport(emptyTrace()));
    expect(html).not.toMatch(/NaN|Infinity|undefined/);
    expect(html).toContain('No file was read or fetched.');
    for (const key of ['demand', 'readahead', 'prefetch', 'hot', 'hits', 'misses']) expect(seriesIn(html).get(key), key).toMatch(/\d/);
  });

  it('warns when the trace was truncated', () => {
    expect(renderReportHtml(computeReport({ ...handMadeTrace(), truncated: true }))).toContain('id="truncated"');
    expect(renderReportHtml(computeReport(handMadeTrace()))).not.toContain('id="truncated"');
  });

  it('needs no network: nothing is loaded from anywhere, and its policy forbids it', () => {
    const html = renderReportHtml(computeReport(sampleTrace()));
    expect(html).not.toMatch(/\s(src|href)=|url\(|@import|https?:\/\//i);
    expect(html).toContain('content="default-src \'none\'; style-src \'unsafe-inline\'"');
  });

  it('labels both axes of every chart with their unit', () => {
    const html = renderReportHtml(computeReport(sampleTrace()));
    expect(html).toContain('time since the mount was served (ms)');
    expect(html).toContain('bytes fetched (MiB)');
    expect(html).toMatch(/reads per 20 ms/);
    expect(html).toContain('bytes (MiB)');
  });
});

describe('report escaping', () => {
  it('escapes the five HTML characters', () => {
    expect(escapeHtml('<a href="x">it\'s & that</a>')).toBe('&lt;a href=&quot;x&quot;&gt;it&#39;s &amp; that&lt;/a&gt;');
  });

  it('writes JSON with no way out of a script element, and reads back the same', () => {
    const value = { path: '</script><!-- & \u2028' };
    const json = jsonForScript(value);
    expect(json).not.toMatch(/[<>&\u2028]/);
    expect(JSON.parse(json)).toEqual(value);
  });
});

describe('report chart axes', () => {
  it('ends at a round tick at or above the largest value', () => {
    expect(ticks(7.3 * MiB, byteUnit(7.3 * MiB))).toEqual([0, 2, 4, 6, 8].map((n) => n * MiB));
    expect(ticks(40, byteUnit(40))).toEqual([0, 10, 20, 30, 40]);
    expect(ticks(1300, { size: 1, name: 'ms' })).toEqual([0, 500, 1000, 1500]);
  });

  it('keeps an axis of nothing one unit long', () => {
    expect(ticks(0, byteUnit(0))).toEqual([0, 1]);
  });
});
