// The early read of a hot region: reads inside it are answered from its bytes as they arrive (no
// request of their own), reads outside it and every read after it failed or was released go to the
// backend underneath, and a reader that gives up is not held.
import { describe, expect, it } from 'vitest';
import type { BlobBackend } from '../../src/blobcache/backend.js';
import { EARLY_RANGE_MAX, EarlyRangeBackend } from '../../src/blobcache/early-range.js';

const BLOB = 'a'.repeat(64);
const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));

/** A backend whose first read streams `data` in steps the test releases; later reads answer at once. */
function streamingBackend() {
  const calls: [string, number, number][] = [];
  let step: (filled: number) => void = () => undefined;
  let fail: (err: Error) => void = () => undefined;
  const inner: BlobBackend = {
    readRange: (blobId, offset, length, progress) => {
      calls.push([blobId, offset, length]);
      if (calls.length > 1) return Promise.resolve(Buffer.from(data.subarray(offset, offset + length)));
      const buf = Buffer.alloc(length);
      return new Promise((done, reject) => {
        fail = reject;
        step = (filled) => {
          data.copy(buf, 0, 0, filled);
          progress?.(buf, filled);
          if (filled === length) done(buf);
        };
      });
    },
    size: async () => data.length,
    close: async () => undefined,
  };
  return { inner, calls, step: (n: number) => step(n), fail: (err: Error) => fail(err) };
}

describe('EarlyRangeBackend', () => {
  it('answers reads inside the early range from its bytes as they arrive, with one request in all', async () => {
    const b = streamingBackend();
    const early = new EarlyRangeBackend(b.inner);
    early.start(BLOB, 600);
    let got: Buffer | undefined;
    const read = early.readRange(BLOB, 100, 200).then((x) => (got = x));
    b.step(250);
    await new Promise((r) => setImmediate(r));
    expect(got).toBeUndefined();
    b.step(300);
    await read;
    expect(got!.equals(data.subarray(100, 300))).toBe(true);
    b.step(600);
    expect((await early.readRange(BLOB, 500, 100)).equals(data.subarray(500, 600))).toBe(true);
    expect(b.calls).toEqual([[BLOB, 0, 600]]);
  });

  it('sends reads outside the range, of other blobs, and after a failure or release to the backend', async () => {
    const b = streamingBackend();
    const early = new EarlyRangeBackend(b.inner);
    early.start(BLOB, 600);
    expect((await early.readRange(BLOB, 550, 100)).equals(data.subarray(550, 650))).toBe(true);
    expect((await early.readRange('b'.repeat(64), 0, 10)).length).toBe(10);
    const waiting = early.readRange(BLOB, 0, 100);
    b.fail(new Error('connection reset'));
    expect((await waiting).equals(data.subarray(0, 100))).toBe(true);
    expect(b.calls.map(([, offset, length]) => [offset, length])).toEqual([[0, 600], [550, 100], [0, 10], [0, 100]]);
    const again = new EarlyRangeBackend(streamingBackend().inner);
    again.start(BLOB, 600);
    again.release();
    await expect(again.readRange(BLOB, 0, 10)).resolves.toHaveLength(10);
  });

  it('reads nothing ahead above its limit, and a demoted blob is read from the backend', async () => {
    const b = streamingBackend();
    const early = new EarlyRangeBackend(b.inner);
    early.start(BLOB, EARLY_RANGE_MAX + 1);
    expect(b.calls).toEqual([]);
    early.start(BLOB, 600);
    early.demote(BLOB);
    await early.readRange(BLOB, 0, 10);
    expect(b.calls.map(([, offset, length]) => [offset, length])).toEqual([[0, 600], [0, 10]]);
  });

  it('lets a reader that gives up go', async () => {
    const b = streamingBackend();
    const early = new EarlyRangeBackend(b.inner);
    early.start(BLOB, 600);
    const abort = new AbortController();
    const read = early.readRange(BLOB, 0, 100, undefined, abort.signal);
    abort.abort(new Error('timed out'));
    await expect(read).rejects.toThrow('timed out');
  });
});
