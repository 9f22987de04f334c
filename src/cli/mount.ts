// `nydusify-ts mount`: serve a RAFS image over FUSE in the foreground until it is unmounted or the
// process gets SIGINT/SIGTERM: a local one (bootstrap + blob directory), or a Nydus image straight
// from a registry (--target), loaded lazily: only the chunks that are read are fetched (merged
// Range requests), verified and kept in the blob cache (--cache-dir), which later mounts reuse.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { BlobCache } from '../blobcache/cache.js';
import { blobChunkTables, ChunkFetcher } from '../blobcache/fetcher.js';
import { FuseSession, mountsAt } from '../daemon/fuse/session.js';
import { openRemoteNydusImage, StoreBackend } from '../image/remote.js';
import { RafsImage } from '../rafs/reader.js';
import type { ChunkRef } from '../rafs/tree.js';
import { openImageStore } from '../registry/image-store.js';
import { log } from '../util/log.js';
import { registryClient } from './options.js';

/** Where `mount --target` keeps its blob cache (and the image's bootstrap) unless --cache-dir says otherwise. */
export const DEFAULT_CACHE_DIR = '/var/lib/nydusify-ts/cache';

interface MountFlags {
  bootstrap?: string;
  blobDir?: string;
  mountPath: string;
  threads: number;
  target?: string;
  plainHttp?: boolean;
  insecure?: boolean;
  cacheDir: string;
  fetchTimeout: number;
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n <= 0 || n > 3600) throw new InvalidArgumentError('expected seconds, more than 0 and at most 3600.');
  return n;
}

function parseThreads(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 64) throw new InvalidArgumentError('expected a thread count from 1 to 64.');
  return n;
}

function checkMountPath(path: string): void {
  // a stale mount of ours there (a dead daemon) may not even stat: the session cleans it up first
  if (mountsAt(path).length === 0 && !statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`mount path ${path} is not a directory`);
  }
}

async function mountRemote(flags: MountFlags & { target: string }): Promise<void> {
  if (flags.bootstrap !== undefined || flags.blobDir !== undefined) throw new Error('--target does not go with --bootstrap or --blob-dir');
  checkMountPath(flags.mountPath);
  if (process.getuid?.() !== 0) throw new Error('mounting over /dev/fuse needs root');
  const client = registryClient([[flags.target, flags.insecure]], flags.plainHttp);
  let cache: BlobCache | undefined;
  try {
    const { store, reference } = await openImageStore(flags.target, client);
    const image = await openRemoteNydusImage(store, reference);
    for (const problem of image.problems) log.warn('image problem', { target: flags.target, problem });
    const { rafs } = image;
    // the workers open the bootstrap themselves: keep it, content-addressed, next to the cache
    const cacheDir = flags.cacheDir;
    const tables = blobChunkTables(rafs);
    cache = await BlobCache.open(cacheDir, {
      fetcher: new ChunkFetcher(new StoreBackend(store), { chunkTable: (blob) => tables.get(blob.blobId) }),
    });
    const bootstrap = join(cacheDir, `${createHash('sha256').update(image.bootstrap).digest('hex')}.boot`);
    const tmp = `${bootstrap}.${process.pid}.tmp`;
    await writeFile(tmp, image.bootstrap);
    await rename(tmp, bootstrap);
    const refs = rafs.blobs.map((blob) => new Map((tables.get(blob.blobId) ?? []).map((r): [number, ChunkRef] => [r.ciIndex, r])));
    // create (or check) every blob's cache files now: the workers open them read-only
    for (const [index, blob] of rafs.blobs.entries()) {
      const first = refs[index]!.values().next().value;
      if (first) await cache.isCached(blob, first);
    }
    const blobBytes = image.manifest.layers.slice(0, -1).reduce((sum, l) => sum + l.size, 0);
    const opened = cache;
    const fetch = async (blobIndex: number, ciIndex: number): Promise<void> => {
      const blob = rafs.blobs[blobIndex];
      const ref = refs[blobIndex]?.get(ciIndex);
      if (!blob || !ref) throw new Error(`chunk ${ciIndex} of blob index ${blobIndex} is not in the image`);
      await opened.readChunk(blob, ref);
      // verified, but the worker reads it from the cache: it must have been stored
      if (!(await opened.isCached(blob, ref))) throw new Error(`chunk ${ciIndex} of blob ${blob.blobId} was fetched but could not be stored in the cache`);
    };
    log.info('mounting registry image lazily', { target: flags.target, cacheDir, bootstrap, blobs: rafs.blobs.length, blobBytes });
    const session = new FuseSession({ bootstrap, mountPath: flags.mountPath, threads: flags.threads, lazy: { cacheDir, fetch, timeoutMs: Math.round(flags.fetchTimeout * 1000) } });
    await session.start();
    try {
      await session.wait();
    } finally {
      const stats = opened.fetcher!.stats;
      log.info('lazy loading done', { target: flags.target, rangeRequests: stats.requests, fetchedBytes: stats.bytes, chunks: stats.chunks, amplifiedChunks: stats.amplifiedChunks, corruptChunks: stats.corruptChunks, blobBytes });
    }
  } finally {
    await cache?.close();
    await client.close();
  }
}

async function mount(flags: MountFlags): Promise<void> {
  if (flags.target !== undefined) return mountRemote(flags as MountFlags & { target: string });
  if (flags.bootstrap === undefined) throw new Error("required option '--bootstrap <file>' not specified (or mount a registry image with --target)");
  checkMountPath(flags.mountPath);
  // fail here, before mounting, on a bootstrap the workers could not open
  const image = RafsImage.open(readFileSync(flags.bootstrap));
  if (flags.blobDir === undefined && image.blobs.length > 0) throw new Error("required option '--blob-dir <dir>' not specified (the image has data blobs)");
  if (process.getuid?.() !== 0) throw new Error('mounting over /dev/fuse needs root');
  const session = new FuseSession({ bootstrap: flags.bootstrap, blobDir: flags.blobDir, mountPath: flags.mountPath, threads: flags.threads });
  await session.start();
  await session.wait();
}

export function mountCommand(): Command {
  return new Command('mount')
    .description('mount a Nydus image over FUSE (in the foreground, until unmounted or signalled)')
    .option('--bootstrap <file>', 'image bootstrap')
    .option('--blob-dir <dir>', 'directory holding the data blobs')
    .requiredOption('--mount-path <dir>', 'directory to mount on')
    .option('--threads <n>', 'FUSE serving threads', parseThreads, 2)
    .option('--target <ref>', 'Nydus image in a registry to mount, loaded lazily through the blob cache')
    .option('--plain-http', 'talk plain HTTP to the --target registry')
    .option('--insecure', 'skip TLS verification for the --target registry')
    .option('--cache-dir <dir>', 'blob cache directory for --target', DEFAULT_CACHE_DIR)
    .option('--fetch-timeout <seconds>', 'with --target: a read waiting longer than this for the registry fails with EIO', parseSeconds, 30)
    .action(mount);
}
