// BlobSources: reads go to a blob's backends in order, failing over on an error, but never past a
// read its caller has given up on.
import { describe, expect, it } from 'vitest';
import type { BlobBackend } from '../../src/blobcache/backend.js';
import { BlobSources } from '../../src/blobcache/blob-sources.js';

const BLOB = 'a'.repeat(64);

/** A backend that answers `answer` and counts its reads. */
function backend(answer: (signal?: AbortSignal) => Promise<Buffer>): BlobBackend & { reads: number } {
  return {
    reads: 0,
    readRange(_blobId, _offset, _length, _progress, signal) {
      this.reads++;
      return answer(signal);
    },
    size: async () => 0,
    close: async () => undefined,
  };
}

describe('BlobSources', () => {
  it('fails over to the next backend when one fails', async () => {
    const sources = new BlobSources();
    const dead = backend(() => Promise.reject(new Error('ECONNREFUSED')));
    const live = backend(async () => Buffer.from('ok'));
    sources.add({}, [BLOB], [dead, live]);
    expect((await sources.readRange(BLOB, 0, 2)).toString()).toBe('ok');
    expect(sources.stats.failovers).toBe(1);
  });

  it('regression: a read given up on is not sent to the next backend', async () => {
    const sources = new BlobSources();
    // the first backend stalls until the read is given up on
    const stalled = backend((signal) => new Promise((_, reject) => signal!.addEventListener('abort', () => reject(signal!.reason))));
    const next = backend(async () => Buffer.from('late'));
    sources.add({}, [BLOB], [stalled, next]);
    const read = sources.readRange(BLOB, 0, 4, undefined, AbortSignal.timeout(50));
    await expect(read).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(next.reads).toBe(0);
    expect(sources.stats.failovers).toBe(0);
  });
});
