import { describe, expect, it } from 'vitest';
import { type AccessTrace, parseAccessTrace, serializeAccessTrace, touchedRanges, TraceFormatError } from '../../src/trace/access-trace.js';

const trace = (): AccessTrace => ({
  format: 'nydusify-ts access trace',
  version: 1,
  image: '127.0.0.1:5000/app:nydus',
  bootstrap: 'a'.repeat(64),
  started: '2026-12-06T20:00:00.000Z',
  duration: 1500,
  blobs: [{ id: 'b'.repeat(64), compressedSize: 1000, chunkSize: 1 << 20 }],
  files: [{ path: '/usr/bin/node', size: 5000 }, { path: '/etc/hosts', size: 10 }],
  reads: [
    { t: 1, file: 0, offset: 4096, length: 4096, miss: true },
    { t: 2, file: 0, offset: 0, length: 4096, miss: false },
    { t: 3, file: 0, offset: 12288, length: 100, miss: false },
    { t: 4, file: 1, offset: 0, length: 10, miss: true },
  ],
  fetches: [{ t: 1, ms: 20.5, blob: 0, chunk: 0, bytes: 600, size: 5000, file: 0, offset: 0, kind: 'demand' }, { t: 2, ms: 3, blob: 0, chunk: 1, bytes: 9, size: 10, kind: 'prefetch' }],
  truncated: false,
});

describe('access trace', () => {
  it('round-trips through its file form', () => {
    expect(parseAccessTrace(serializeAccessTrace(trace()))).toEqual(trace());
  });

  it('merges the ranges each file read', () => {
    expect(touchedRanges(trace())).toEqual(new Map([[0, [[0, 8192], [12288, 12388]]], [1, [[0, 10]]]]));
  });

  it.each([
    ['a read of a file the trace does not name', (t: AccessTrace) => void (t.reads[0]!.file = 2), /reads\[0\]\.file is 2, past the 2 entries/],
    ['a fetch of a blob the trace does not name', (t: AccessTrace) => void (t.fetches[0]!.blob = 1), /fetches\[0\]\.blob/],
    ['a fetch in a file the trace does not name', (t: AccessTrace) => void (t.fetches[0]!.file = 5), /fetches\[0\]\.file is 5/],
    ['a fetch with a file but no offset', (t: AccessTrace) => void delete t.fetches[0]!.offset, /one of file and offset without the other/],
    ['a negative offset', (t: AccessTrace) => void (t.reads[1]!.offset = -1), /reads\[1\]\.offset is not a whole number/],
    ['an unknown fetch kind', (t: AccessTrace) => void ((t.fetches[0] as { kind: string }).kind = 'guess'), /kind is "guess"/],
    ['a relative path', (t: AccessTrace) => void (t.files[1]!.path = 'etc/hosts'), /files\[1\]\.path is not an absolute path/],
    ['another version', (t: AccessTrace) => void ((t as { version: number }).version = 2), /version 2/],
    ['a bootstrap digest that is not hex', (t: AccessTrace) => void (t.bootstrap = 'zz'), /bootstrap is not 64 lowercase hex/],
  ])('refuses %s', (_what, spoil, message) => {
    const t = trace();
    spoil(t);
    expect(() => parseAccessTrace(serializeAccessTrace(t))).toThrow(TraceFormatError);
    expect(() => parseAccessTrace(serializeAccessTrace(t))).toThrow(message);
  });

  it('refuses what is not JSON, or not a trace', () => {
    expect(() => parseAccessTrace('{')).toThrow(/not JSON/);
    expect(() => parseAccessTrace('[]')).toThrow(/the trace is not an object/);
    expect(() => parseAccessTrace('{"format":"x"}')).toThrow(/format is "x"/);
  });
});
