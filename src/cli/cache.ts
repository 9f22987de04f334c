// `nydusify-ts cache ls|usage|prune|rm|check`: look at and clean a blob cache directory (the layout
// nydusd's filecache uses: <blob>.blob.data + <blob>.blob.data.chunk_map). Removing blobs removes
// the bootstrap copies (<sha256>.boot) of images left with no blob in the cache.
import { stat } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { BlobCache, type BlobUsage } from '../blobcache/cache.js';
import { collectBootstrapCopies } from '../blobcache/cache-gc.js';
import { cacheCheckCommand } from './cache-check.js';
import { parseSize } from './options.js';
import { isBlobId } from '../rafs/blob.js';

interface DirFlags {
  cacheDir: string;
  json?: boolean;
}

const cacheDirOption = () => new Option('--cache-dir <dir>', 'blob cache directory').makeOptionMandatory();

async function openDir(dir: string): Promise<BlobCache> {
  const s = await stat(dir).catch(() => undefined);
  if (!s?.isDirectory()) throw new Error(`cache directory ${dir} does not exist`);
  return BlobCache.open(dir);
}

const print = (line: string): void => void process.stdout.write(`${line}\n`);

function describe(b: BlobUsage): string {
  const total = b.exact ? String(b.totalChunks) : `${b.totalChunks}*`;
  return `${b.blobId}  ${b.dataSize}  ${b.diskBytes}  ${b.readyChunks}/${total}`;
}

async function ls(flags: DirFlags): Promise<void> {
  const cache = await openDir(flags.cacheDir);
  const blobs = await cache.list();
  if (flags.json) return print(JSON.stringify(blobs.map(({ busy: _busy, ...b }) => b), null, 2));
  print('BLOB  SIZE  DISK-BYTES  READY/CHUNKS');
  for (const b of blobs) print(describe(b));
  // the chunk map does not record the chunk count: without the image it is known to the next 8
  if (blobs.some((b) => !b.exact)) print('* chunk slots in the chunk map (the chunk count rounded up to a multiple of 8)');
}

async function usage(flags: DirFlags): Promise<void> {
  const cache = await openDir(flags.cacheDir);
  const blobs = await cache.list();
  const total = blobs.reduce((sum, b) => sum + b.diskBytes, 0);
  if (flags.json) return print(JSON.stringify({ blobs: blobs.length, totalBytes: total }));
  print(`${total} bytes in ${blobs.length} blobs`);
}

async function prune(flags: DirFlags & { maxSize: number }): Promise<void> {
  const cache = await openDir(flags.cacheDir);
  const result = await cache.prune(flags.maxSize);
  const bootstraps = await collectBootstrapCopies(cache);
  const freedBytes = result.freedBytes + bootstraps.freedBytes;
  if (flags.json) return print(JSON.stringify({ ...result, freedBytes, bootstraps: bootstraps.removed }));
  for (const id of [...result.removed, ...bootstraps.removed]) print(`removed ${id}`);
  print(`freed ${freedBytes} bytes, ${result.totalBytes} bytes left`);
}

async function rm(blobId: string, flags: DirFlags): Promise<void> {
  const id = blobId.replace(/^sha256:/, '');
  if (!isBlobId(id)) throw new Error(`not a blob id: ${blobId}`);
  const cache = await openDir(flags.cacheDir);
  if (!(await cache.remove(id))) throw new Error(`blob ${id} is not in ${flags.cacheDir}`);
  print(`removed ${id}`);
  for (const name of (await collectBootstrapCopies(cache)).removed) print(`removed ${name}`);
}

export function cacheCommand(): Command {
  const cache = new Command('cache').description('list and clean the local blob cache');
  cache.command('ls').description('list cached blobs: id, size, bytes on disk, ready chunks')
    .addOption(cacheDirOption()).option('--json', 'print JSON').action(ls);
  cache.command('usage').description('total bytes the cache uses')
    .addOption(cacheDirOption()).option('--json', 'print JSON').action(usage);
  cache.command('prune').description('remove least recently used blobs until the cache fits --max-size')
    .addOption(cacheDirOption())
    .addOption(new Option('--max-size <size>', 'size to shrink to (bytes, or with K, M, G, T)').argParser(parseSize).makeOptionMandatory())
    .option('--json', 'print JSON').action(prune);
  cache.command('rm').description('remove one blob from the cache').argument('<blob>', 'blob id (sha256 hex)')
    .addOption(cacheDirOption()).action(rm);
  cache.addCommand(cacheCheckCommand());
  return cache;
}
