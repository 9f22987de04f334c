// Small access traces whose report numbers can be worked out by hand (test/trace/report.test.ts does).
import type { AccessTrace } from '../../src/trace/access-trace.js';

/**
 * Three files: /a read in four places, /b in three (two inside one hot chunk), /c only prefetched.
 * Of seven fetches three touch nothing read: the prefetch of /c, a prefetch no file holds, and a
 * readahead that starts exactly where a read of /a ended. The prefetch at the end of /a is touched
 * by one byte.
 */
export function handMadeTrace(): AccessTrace {
  return {
    format: 'nydusify-ts access trace',
    version: 1,
    image: '127.0.0.1:5000/app:nydus',
    bootstrap: 'a'.repeat(64),
    started: '2026-12-06T20:00:00.000Z',
    duration: 50,
    blobs: [{ id: 'b'.repeat(64), compressedSize: 200_000, chunkSize: 1 << 20 }],
    files: [{ path: '/a', size: 300_000 }, { path: '/b', size: 100_000 }, { path: '/c', size: 50_000 }],
    reads: [
      { t: 1, file: 0, offset: 0, length: 4096, miss: true },
      { t: 5, file: 0, offset: 4096, length: 4096, miss: false },
      { t: 6, file: 0, offset: 120_000, length: 11_072, miss: false },
      { t: 10, file: 0, offset: 200_000, length: 4096, miss: true },
      { t: 20, file: 1, offset: 0, length: 100, miss: true },
      { t: 21, file: 1, offset: 50, length: 100, miss: false },
      { t: 22, file: 1, offset: 1000, length: 100, miss: false },
      { t: 30, file: 0, offset: 299_999, length: 1, miss: false },
    ],
    fetches: [
      { t: 1, ms: 10, blob: 0, chunk: 0, bytes: 50_000, size: 131_072, file: 0, offset: 0, kind: 'demand' },
      { t: 2, ms: 3, blob: 0, chunk: 5, bytes: 25_000, size: 50_000, file: 2, offset: 0, kind: 'prefetch' },
      { t: 3, ms: 1, blob: 0, chunk: 6, bytes: 1000, size: 2000, kind: 'prefetch' },
      { t: 4, ms: 2, blob: 0, chunk: 3, bytes: 10_000, size: 37_856, file: 0, offset: 262_144, kind: 'prefetch' },
      { t: 10, ms: 5, blob: 0, chunk: 2, bytes: 30_000, size: 65_536, file: 0, offset: 196_608, kind: 'demand' },
      { t: 10, ms: 4, blob: 0, chunk: 1, bytes: 20_000, size: 65_536, file: 0, offset: 131_072, kind: 'readahead' },
      { t: 20, ms: 8, blob: 0, chunk: 4, bytes: 40_000, size: 100_000, file: 1, offset: 0, kind: 'demand' },
    ],
    truncated: false,
  };
}

export function emptyTrace(): AccessTrace {
  return { ...handMadeTrace(), duration: 0, files: [], reads: [], fetches: [] };
}
