// The blob cache as the manager's users (the snapshotter) see it: what a remote layer's blob occupies there (its usage),
// and garbage collection. A cached blob is referenced while a remote layer snapshot names it; once
// containerd has removed an image's snapshots (and calls Cleanup), its blobs are unreferenced and
// removed. A blob in use is always referenced: a running container's snapshot has the image's
// layers as parents, and a parent cannot be removed before its children.
import { BlobCache } from '../blobcache/cache.js';
import { log } from '../util/log.js';

export class CacheGc {
  private cache: Promise<BlobCache> | undefined;

  constructor(readonly dir: string) {}

  private open(): Promise<BlobCache> {
    // no fetcher: this process only looks and deletes; the daemons fill the cache
    this.cache ??= BlobCache.open(this.dir);
    return this.cache;
  }

  /** Bytes the blob's cached chunks occupy on disk (0 when nothing is cached). */
  async usage(blobId: string): Promise<number> {
    const blobs = await (await this.open()).list();
    return blobs.find((b) => b.blobId === blobId)?.diskBytes ?? 0;
  }

  /** Removes every cached blob not in `referenced`; returns what went. */
  async collect(referenced: Set<string>): Promise<{ removed: string[]; freedBytes: number }> {
    const cache = await this.open();
    const removed: string[] = [];
    let freedBytes = 0;
    for (const b of await cache.list()) {
      if (referenced.has(b.blobId)) continue;
      if (await cache.remove(b.blobId)) {
        removed.push(b.blobId);
        freedBytes += b.diskBytes;
      }
    }
    if (removed.length > 0) log.info('unreferenced blobs removed from the cache', { blobs: removed.length, freedBytes });
    return { removed, freedBytes };
  }
}
