// End to end against docker-registry from scripts/e2e (plain HTTP on 127.0.0.1:5000): busybox
// converted with the CLI, every file's chunks read through BlobCache + fetcher over StoreBackend
// and compared with direct (uncached) reads; Range requests counted on a wrapping backend.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobCache } from '../../../src/blobcache/cache.js';
import { ChunkReader } from '../../../src/blobcache/chunk-reader.js';
import { blobChunkTables } from '../../../src/blobcache/fetcher.js';
import { StoreBackend } from '../../../src/blobcache/store-backend.js';
import { openRemoteNydusImage } from '../../../src/image/remote.js';
import { RegistryClient } from '../../../src/registry/client.js';
import { openImageStore } from '../../../src/registry/open-image-store.js';
import type { ChunkRef } from '../../../src/rafs/tree.js';
import { cli } from '../../helpers/cli.js';
import { E2E_DIR as e2eDir, e2eUp } from '../../helpers/e2e.js';
import { CountingBackend } from '../../blobcache/helpers.js';

const REG = '127.0.0.1:5000';
const TARGET = `${REG}/busybox:cache-test`;
// the same image with 64 KiB chunks: many chunks per request, so merging shows
const TARGET_64K = `${REG}/busybox:cache-test-64k`;
const work = mkdtempSync(join(tmpdir(), 'blobcache-e2e-'));

beforeAll(() => {
  e2eUp('registry-up.sh');
  e2eUp('make-images.sh');
  cli(['convert', '--source', `${REG}/busybox:latest`, '--target', TARGET, '--plain-http']);
  cli(['convert', '--source', `${REG}/busybox:latest`, '--target', TARGET_64K, '--plain-http', '--chunk-size', '0x10000']);
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** GET lines for one blob in the registry's access log (which does not show Range headers). */
function blobGets(blobId: string): number {
  const log = join(e2eDir, 'logs', 'registry.log');
  if (!existsSync(log)) return 0;
  const needle = `"GET /v2/busybox/blobs/sha256:${blobId} `;
  return readFileSync(log, 'utf8').split('\n').filter((l) => l.includes(needle)).length;
}

describe('blob cache over a registry', () => {
  it.each([TARGET, TARGET_64K])('%s: every chunk through the cache with few Range requests, then from disk alone', async (target) => {
    const client = new RegistryClient({ hosts: { [REG]: { plainHttp: true } } });
    const { store, reference } = await openImageStore(target, client);
    const image = await openRemoteNydusImage(store, reference);
    expect(image.problems).toEqual([]);
    const { rafs } = image;
    expect(rafs.blobs).toHaveLength(1);
    const blob = rafs.blobs[0]!;

    const files: { path: string; chunks: ChunkRef[] }[] = [];
    for (const entry of rafs.walk()) {
      if ((entry.inode.mode & 0o170000) === 0o100000 && entry.inode.size > 0) files.push({ path: entry.path, chunks: rafs.chunks(entry.nid) });
    }
    const distinct = new Set(files.flatMap((f) => f.chunks.map((c) => c.ciIndex)));
    expect(distinct.size).toBe(blob.chunkCount);

    const direct = new ChunkReader(new StoreBackend(store), rafs.blobs);
    const backend = new CountingBackend(new StoreBackend(store));
    const tables = await blobChunkTables(rafs);
    const dir = join(work, `cache-${target.split(':').at(-1)}`);
    const logBefore = blobGets(blob.blobId);
    const cache = await BlobCache.open(dir, { backend, fetch: { chunkTable: (b) => tables.get(b.blobId) } });
    const started = performance.now();
    // file by file, as a lazy reader would: each file's chunks at once
    for (const file of files) {
      const got = await Promise.all(file.chunks.map((c) => cache.readChunk(blob, c)));
      const want = await Promise.all(file.chunks.map((c) => direct.read(c)));
      got.forEach((g, i) => expect(g.equals(want[i]!), `${file.path} chunk ${i}`).toBe(true));
    }
    const elapsed = performance.now() - started;
    const requests = backend.calls.length;
    // busybox is one ~2 MiB binary (plus links): requests grow toward 1 MiB, so a handful of them
    expect(requests).toBeGreaterThan(0);
    expect(requests).toBeLessThanOrEqual(Math.ceil(blob.compressedSize / (1 << 20)) + 2);
    if (blob.chunkCount >= 16) expect(requests).toBeLessThan(blob.chunkCount / 4);
    expect(backend.calls.every((c) => c.blobId === blob.blobId)).toBe(true);
    // the registry saw at least those GETs (other runs may add their own)
    expect(blobGets(blob.blobId) - logBefore).toBeGreaterThanOrEqual(requests);
    const [usage] = await cache.list();
    expect(usage).toMatchObject({ blobId: blob.blobId, readyChunks: blob.chunkCount, totalChunks: blob.chunkCount, dataSize: blob.uncompressedSize });
    await cache.close();
    console.log(`${target}: ${blob.chunkCount} chunks, ${files.length} files, ${requests} range requests (${backend.calls.reduce((s, c) => s + c.length, 0)} bytes), ${elapsed.toFixed(0)} ms`);

    // a second cache on the same directory answers everything without the registry
    const offline = new CountingBackend(new StoreBackend(store));
    const again = await BlobCache.open(dir, { backend: offline });
    for (const file of files) {
      const got = await Promise.all(file.chunks.map((c) => again.readChunk(blob, c)));
      const want = await Promise.all(file.chunks.map((c) => direct.read(c)));
      got.forEach((g, i) => expect(g.equals(want[i]!)).toBe(true));
    }
    expect(offline.calls).toHaveLength(0);
    await again.close();
  });
});
