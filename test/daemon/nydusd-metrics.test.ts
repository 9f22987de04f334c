import { describe, expect, it } from 'vitest';
import { latencyRange, sizeClass, sumWorkerMetrics, WorkerMetrics, newWorkerMetricsBuffer } from '../../src/daemon/metrics.js';
import { accessPatterns, backendMetrics, fsMetrics, inflightMetrics, RequestLatencies } from '../../src/daemon/nydusd-metrics.js';
import type { AccessTrace } from '../../src/trace/access-trace.js';

describe('nydusd-shaped metrics', () => {
  it('classes reads by size and latency as nydusd does', () => {
    expect([0, 1023, 1024, 4095, 4096, 16383, 16384, 65535, 65536, 1 << 20].map(sizeClass)).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    expect([0, 1000, 1001, 20_000, 50_000, 100_000, 500_000, 1_000_000, 2_000_000, 2_000_001].map(latencyRange)).toEqual([0, 0, 1, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('puts each operation in nydusd\'s slot, reads in their classes, latencies in microseconds', () => {
    const buffer = newWorkerMetricsBuffer();
    const w = new WorkerMetrics(buffer);
    w.request(15, 0.0005, false); // READ, 500 µs
    w.readBytes(4096);
    w.request(15, 0.03, true); // a failed READ, 30 ms
    w.request(1, 0.0001, false); // LOOKUP
    const m = fsMetrics('/', sumWorkerMetrics([buffer]));
    expect(m.fop_hits).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    expect(m.fop_errors).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect((m.fop_cumulative_latency_total as number[])[4]).toBe(30_500);
    expect(m.block_count_read).toEqual([0, 0, 1, 0, 0, 0, 0, 0]);
    expect(m.read_latency_dist).toEqual([1, 0, 1, 0, 0, 0, 0, 0]);
    expect(m.data_read).toBe(4096);
    expect(Math.abs((m.last_fop_tp as number) - Date.now() / 1000)).toBeLessThan(5);
  });

  it('shapes the backend, the hung reads and the access pattern', () => {
    const l = new RequestLatencies();
    l.add(4, 1, 15_000);
    l.add(4, 1, 5_000);
    const b = backendMetrics('registry', { requests: 2, errors: 0, bytes: 3 << 20 }, l);
    expect(b).toMatchObject({ backend_type: 'registry', read_count: 2, read_errors: 0, read_amount_total: 3 << 20, read_cumulative_latency_total: 20_000 });
    expect((b.read_latency_dist as number[][])[4]![1]).toBe(2);
    expect(inflightMetrics([{ inode: 7, unique: 3, sinceMs: 1_700_000_000_500 }])).toEqual({ values: [{ inode: 7, opcode: 15, unique: 3, timestamp_secs: 1_700_000_000 }] });
    const trace = { started: '2026-01-01T00:00:00.000Z', files: [{ path: '/a', size: 1 }, { path: '/b', size: 1 }], reads: [{ t: 1500, file: 1 }, { t: 2500, file: 1 }, { t: 3000, file: 0 }] } as unknown as AccessTrace;
    const t0 = Date.parse('2026-01-01T00:00:00.000Z') / 1000;
    expect(accessPatterns(trace)).toEqual([{ file_path: '/b', nr_read: 2, first_access_time: t0 + 1 }, { file_path: '/a', nr_read: 1, first_access_time: t0 + 3 }]);
  });
});
