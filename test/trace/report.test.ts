import { describe, expect, it } from 'vitest';
import { type AccessTrace, FETCH_KINDS } from '../../src/trace/access-trace.js';
import { computeReport, type ReportData } from '../../src/trace/report.js';
import { emptyTrace, handMadeTrace } from '../helpers/hand-made-traces.js';
import { sampleTrace } from '../helpers/sample-trace.js';

const sumOf = (values: number[]): number => values.reduce((a, b) => a + b, 0);

function expectSeriesMatchTotals(trace: AccessTrace, report: ReportData): void {
  const { timeline, header } = report;
  for (const kind of FETCH_KINDS) {
    expect(timeline.fetchedBytes[kind]).toHaveLength(timeline.buckets);
    expect(sumOf(timeline.fetchedBytes[kind]), kind).toBe(sumOf(trace.fetches.filter((f) => f.kind === kind).map((f) => f.bytes)));
  }
  expect(sumOf(FETCH_KINDS.flatMap((k) => timeline.fetchedBytes[k]))).toBe(header.totals.fetchedBytes);
  expect(sumOf(timeline.hits) + sumOf(timeline.misses)).toBe(header.totals.reads);
  expect(sumOf(timeline.misses)).toBe(trace.reads.filter((r) => r.miss).length);
  expect(timeline.buckets).toBeLessThanOrEqual(100);
  expect(timeline.buckets * timeline.bucketMs).toBeGreaterThanOrEqual(Math.max(trace.duration, ...trace.fetches.map((f) => f.t + f.ms)));
}

describe('lazy-load report numbers', () => {
  it('adds up the totals', () => {
    expect(computeReport(handMadeTrace()).header).toEqual({
      image: '127.0.0.1:5000/app:nydus',
      bootstrap: 'a'.repeat(64),
      started: '2026-12-06T20:00:00.000Z',
      duration: 50,
      truncated: false,
      totals: { fetchedBytes: 176_000, fetchedSize: 452_000, touchedBytes: 8192 + 11_072 + 4096 + 1 + 150 + 100, requests: 7, reads: 8, files: 3 },
    });
  });

  it('buckets fetches by when their bytes arrived and reads by when they came, summing to the totals', () => {
    const trace = handMadeTrace();
    const { timeline } = computeReport(trace);
    expect(timeline.bucketMs).toBe(1);
    expect(timeline.buckets).toBe(50);
    expect(timeline.fetchedBytes.demand[11]).toBe(50_000); // asked for at 1 ms, there at 11 ms
    expect(timeline.fetchedBytes.readahead[14]).toBe(20_000);
    expect(timeline.misses[1]).toBe(1);
    expect(timeline.hits[5]).toBe(1);
    expectSeriesMatchTotals(trace, computeReport(trace));
  });

  it('keeps the series summing to the totals on a realistic trace, in at most 100 round buckets', () => {
    const trace = sampleTrace();
    const report = computeReport(trace);
    expectSeriesMatchTotals(trace, report);
    expect(String(report.timeline.bucketMs)).toMatch(/^[125]0*$/);
  });

  it('counts events past the trace duration in the last bucket', () => {
    const trace = { ...handMadeTrace(), duration: 0 };
    const report = computeReport(trace);
    expect(report.timeline.buckets * report.timeline.bucketMs).toBeGreaterThanOrEqual(30);
    expectSeriesMatchTotals(trace, report);
  });

  it('counts the cache hits and the time reads waited on demand fetches', () => {
    expect(computeReport(handMadeTrace()).cache).toEqual({ reads: 8, hits: 5, misses: 3, hitShare: 5 / 8, demandFetches: 3, waitMs: 10 + 5 + 8 });
  });

  it('counts as wasted the fetched chunks none of whose bytes a read touched', () => {
    expect(computeReport(handMadeTrace()).waste).toEqual({
      chunks: 3,
      bytes: 46_000,
      share: 46_000 / 176_000,
      byKind: { demand: { chunks: 0, bytes: 0 }, readahead: { chunks: 1, bytes: 20_000 }, prefetch: { chunks: 2, bytes: 26_000 }, hot: { chunks: 0, bytes: 0 } },
    });
  });

  it('lists each file\'s size, touched and fetched bytes, costliest first, the rest as one row', () => {
    const { files } = computeReport(handMadeTrace(), { topFiles: 2 });
    expect(files.top).toEqual([
      { path: '/a', size: 300_000, touched: 8192 + 11_072 + 4096 + 1, fetchedBytes: 110_000, fetchedSize: 300_000, reads: 5, fetches: 4 },
      { path: '/b', size: 100_000, touched: 250, fetchedBytes: 40_000, fetchedSize: 100_000, reads: 3, fetches: 1 },
    ]);
    expect(files.others).toEqual({ count: 1, size: 50_000, touched: 0, fetchedBytes: 25_000, fetchedSize: 50_000, reads: 0, fetches: 1 });
    expect(computeReport(handMadeTrace()).files.others).toBeNull();
  });

  it('estimates an optimized layout: touched ranges in whole hot chunks, at each file\'s compression ratio', () => {
    // /a: [0,64K) [64K,128K) [192K,256K) [256K,300000) (its end); /b: [0,64K), both its ranges in one
    const a = (65_536 * 3 + (300_000 - 262_144)) * (110_000 / 300_000);
    const b = 65_536 * (40_000 / 100_000);
    expect(computeReport(handMadeTrace(), { hotChunkSize: 65_536 }).optimized).toEqual({
      hotChunkSize: 65_536,
      bytesNow: 176_000,
      estimatedBytes: Math.round(a + b),
      savedBytes: 176_000 - Math.round(a + b),
      savedShare: (176_000 - Math.round(a + b)) / 176_000,
      requestsNow: 7,
      requestsOptimized: 1,
      compressionRatio: 176_000 / 452_000,
    });
  });

  it('takes the image-wide compression ratio for a file that fetched nothing, and the hot chunk size asked for', () => {
    const trace = handMadeTrace();
    trace.fetches = trace.fetches.filter((f) => f.file !== 1);
    const ratio = (176_000 - 40_000) / (452_000 - 100_000);
    // /a in 4 KiB chunks: [0,8K) [116K,128K) [192K,200K) [299008,300000); /b: [0,4K) once for both ranges
    const a = (8192 + (131_072 - 118_784) + (204_800 - 196_608) + (300_000 - 299_008)) * (110_000 / 300_000);
    const estimate = computeReport(trace, { hotChunkSize: 4096 }).optimized;
    expect(estimate.compressionRatio).toBe(ratio);
    expect(estimate.estimatedBytes).toBe(Math.round(a + 4096 * ratio));
  });

  it('reports an empty trace as zeros', () => {
    const report = computeReport(emptyTrace());
    expect(report.header.totals).toEqual({ fetchedBytes: 0, fetchedSize: 0, touchedBytes: 0, requests: 0, reads: 0, files: 0 });
    expect(report.cache.hitShare).toBe(0);
    expect(report.waste.share).toBe(0);
    expect(report.optimized).toMatchObject({ estimatedBytes: 0, savedShare: 0, requestsOptimized: 0, compressionRatio: 1 });
    expect(report.files).toEqual({ top: [], others: null });
    expect(JSON.stringify(report)).not.toMatch(/NaN|Infinity/);
  });

  it('refuses a hot chunk size that is not a whole number of bytes', () => {
    expect(() => computeReport(handMadeTrace(), { hotChunkSize: 0 })).toThrow(RangeError);
    expect(() => computeReport(handMadeTrace(), { hotChunkSize: 1.5 })).toThrow(RangeError);
  });
});
