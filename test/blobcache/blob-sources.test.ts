// BlobSources: reads go to a blob's backends in order, failing over on an error, but never past a
// read its caller has given up on.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BlobBackend } from '../../src/blobcache/backend.js';
import { BlobSources } from '../../src/blobcache/blob-sources.js';
import { BlobCache } from '../../src/blobcache/cache.js';
import { LocalDirBackend } from '../../src/blobcache/local-backend.js';
import { content, CountingBackend, makeBlob } from './helpers.js';

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

  it('asks a backend that failed failureLimit reads in a row last, until recheckMs has passed; a success clears it', async () => {
    let up = false;
    const mirror = backend(() => (up ? Promise.resolve(Buffer.from('mirror')) : Promise.reject(new Error('ECONNREFUSED'))));
    const origin = backend(async () => Buffer.from('origin'));
    const sources = new BlobSources({ failureLimit: 2, recheckMs: 100 });
    sources.add({}, [BLOB], [mirror, origin]);
    for (let i = 0; i < 2; i++) expect((await sources.readRange(BLOB, 0, 6)).toString()).toBe('origin');
    expect(mirror.reads).toBe(2);
    // down: the origin first, the mirror not asked
    for (let i = 0; i < 3; i++) expect((await sources.readRange(BLOB, 0, 6)).toString()).toBe('origin');
    expect(mirror.reads).toBe(2);
    // after recheckMs it is tried first again, and once it answers it stays first
    up = true;
    await new Promise((r) => setTimeout(r, 120));
    expect((await sources.readRange(BLOB, 0, 6)).toString()).toBe('mirror');
    expect((await sources.readRange(BLOB, 0, 6)).toString()).toBe('mirror');
    expect(mirror.reads).toBe(4);
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

describe('regression: a lying backend offered by one image fails another image\'s reads of a shared blob', () => {
  it('a chunk whose bytes from the first backend do not verify is fetched from the next one', async () => {
    const work = mkdtempSync(join(tmpdir(), 'blob-sources-'));
    try {
      const t = await makeBlob(work, { 'f.bin': content(3, 32 << 10) });
      const honest = new LocalDirBackend(t.blobDir);
      const liar = new CountingBackend(honest);
      liar.tamper = (_id, _offset, data) => data.fill(0x5a);
      const sources = new BlobSources();
      sources.add({ image: 'hostile, mounted first' }, [t.blob.blobId], [liar]);
      sources.add({ image: 'honest' }, [t.blob.blobId], [honest]);
      const cache = await BlobCache.open(join(work, 'cache'), { backend: sources, fetch: { amplify: 0 } });
      const file = t.files.get('/f.bin')!;
      const got = Buffer.concat(await Promise.all(file.chunks.map((ref) => cache.readChunk(t.blob, ref))));
      expect(got.equals(file.data)).toBe(true);
      await cache.close();
      await honest.close();
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
