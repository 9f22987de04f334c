// The blob cache as the manager's users (the snapshotter) see it: what a remote layer's blob occupies there (its usage),
// and garbage collection. A cached blob is referenced while a remote layer snapshot names it; once
// containerd has removed an image's snapshots (and calls Cleanup), its blobs are unreferenced and
// removed. A blob in use is always referenced: a running container's snapshot has the image's
// layers as parents, and a parent cannot be removed before its children.
// A registry image's bootstrap is copied next to the cache when it is mounted (<sha256>.boot, for
// looking at; the daemon serves from memory), and a built one is kept there under the key of what it
// was built from (built-bootstraps.ts): either goes with the last of its image's blobs.
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BUILT_BOOTSTRAP } from './built-bootstraps.js';
import { BlobCache } from './cache.js';
import { RafsImage } from '../rafs/reader.js';
import { log } from '../util/log.js';

const BOOTSTRAP_COPY = /^[0-9a-f]{64}\.boot$/;

/**
 * Removes the bootstrap copies (and built bootstraps) in the cache directory whose image has no blob left in the cache
 * (an unreadable copy serves nobody either); returns the file names removed and the bytes freed.
 */
export async function collectBootstrapCopies(cache: BlobCache): Promise<{ removed: string[]; freedBytes: number }> {
  const cached = new Set((await cache.list()).map((b) => b.blobId));
  const removed: string[] = [];
  let freedBytes = 0;
  for (const name of (await readdir(cache.dir)).filter((n) => BOOTSTRAP_COPY.test(n) || BUILT_BOOTSTRAP.test(n)).sort()) {
    const path = join(cache.dir, name);
    if (blobIdsOf(await readFile(path)).some((id) => cached.has(id))) continue;
    freedBytes += (await stat(path)).size;
    await rm(path, { force: true });
    removed.push(name);
  }
  if (removed.length > 0) log.info('bootstrap copies of images no longer cached removed', { bootstraps: removed.length, freedBytes });
  return { removed, freedBytes };
}

function blobIdsOf(bootstrap: Buffer): string[] {
  try {
    return RafsImage.open(bootstrap).blobs.map((b) => b.blobId);
  } catch {
    return [];
  }
}

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

  /** Removes every cached blob not in `referenced`, then the bootstrap copies of images with no blob left; returns what went. */
  async collect(referenced: Set<string>): Promise<{ removed: string[]; freedBytes: number; bootstraps: string[] }> {
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
    const bootstraps = await collectBootstrapCopies(cache);
    return { removed, freedBytes: freedBytes + bootstraps.freedBytes, bootstraps: bootstraps.removed };
  }
}
