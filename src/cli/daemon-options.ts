// Flags `daemon` and `mount` share: the daemon config (a --config file, then flags over it) and
// the image to serve (--target, or --bootstrap with --blob-dir).
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_CONFIG, type DaemonConfig, loadDaemonConfig, type MountSpec, parseDaemonConfig, pathList } from '../daemon/config.js';
import { mountsAt } from '../daemon/fuse/session.js';
import { parseSize } from './options.js';

export interface ConfigFlags {
  config?: string;
  cacheDir?: string;
  fallbackCacheDir?: string;
  threads?: number;
  fetchTimeout?: number;
  plainHttp?: boolean;
  insecure?: boolean;
  mirror?: string[];
  prefetchAll?: boolean;
  prefetchBandwidth?: number;
  amplify?: number;
  readahead?: number;
  hotRegion?: boolean;
  hotPages?: boolean;
  execPrefetch?: number;
  execPrefetchMin?: number;
  kernelReadahead?: number;
}

export interface ImageFlags {
  target?: string;
  platform?: string;
  /** nydusd's --prefetch-files: fetch these files in the background instead of the prefetch list. */
  prefetchFiles?: string[];
  bootstrap?: string;
  blobDir?: string;
  prefetch?: boolean;
  trace?: string;
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n <= 0 || n > 3600) throw new InvalidArgumentError('expected seconds, more than 0 and at most 3600.');
  return n;
}

export function parseThreads(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 64) throw new InvalidArgumentError('expected a thread count from 1 to 64.');
  return n;
}

function parseKib(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 1 << 20) throw new InvalidArgumentError('expected KiB from 0 to 1048576.');
  return n;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function addConfigOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'daemon config (JSON); the flags below override it')
    .option('--cache-dir <dir>', `blob cache directory (default ${DEFAULT_CONFIG.cacheDir})`)
    .option('--fallback-cache-dir <dir>', 'a read-only cache directory consulted on a miss')
    .option('--threads <n>', `FUSE serving threads (default ${DEFAULT_CONFIG.threads})`, parseThreads)
    .option('--kernel-readahead <KiB>', 'the kernel\'s readahead on the FUSE mount (default 1024, or 0 for a dedicated mount of an optimized image)', parseKib)
    .option('--fetch-timeout <seconds>', `a read waiting longer than this for the registry fails with EIO (default ${DEFAULT_CONFIG.fetchTimeout})`, parseSeconds)
    .option('--plain-http', 'talk plain HTTP to the registry')
    .option('--insecure', 'skip TLS verification for the registry')
    .option('--mirror <host>', 'a registry mirror (host[:port], plain HTTP with --plain-http) tried before the image\'s registry; repeatable', collect)
    .option('--prefetch-all', 'after the prefetch list, fetch every chunk in the background')
    .option('--prefetch-bandwidth <bytes>', 'prefetch at most this many bytes per second (e.g. 50M; default no limit)', parseSize)
    .option('--amplify <bytes>', `grow a miss's request with the blob's next chunks toward this size (0: off; default ${DEFAULT_CONFIG.fetch.amplify})`, parseSize)
    .option('--readahead <bytes>', `largest readahead window for reads going forward through a blob (0: off; default ${DEFAULT_CONFIG.fetch.readahead})`, parseSize)
    .option('--no-hot-region', 'do not stream an optimized image\'s hot region into the cache when it is mounted')
    .option('--no-hot-pages', 'do not put the hot region\'s pages into the kernel\'s page cache as they arrive')
    .option('--exec-prefetch <bytes>', `when a program starts, fetch up to this much of its code and linking data in the background (0: off; default ${DEFAULT_CONFIG.fetch.execPrefetch})`, parseSize)
    .option('--exec-prefetch-min <bytes>', `programs whose code and linking data are smaller are left to their faults (default ${DEFAULT_CONFIG.fetch.execPrefetchMin})`, parseSize);
}

export function addImageOptions(cmd: Command): Command {
  return cmd
    .option('--target <ref>', 'Nydus image in a registry, loaded lazily through the blob cache')
    .option('--platform <os/arch[/variant]>', 'platform to mount from a multi-platform --target (default linux/amd64)')
    .option('--bootstrap <file>', 'image bootstrap (a local image)')
    .option('--blob-dir <dir>', 'directory holding the data blobs of --bootstrap')
    .option('--prefetch', 'fetch the files on the image\'s prefetch list in the background')
    .option('--trace <file>', 'write the image\'s access trace (what it read and fetched, when) to this file when it is unmounted');
}

/** The config file (or the defaults) with the flags given on top. */
export function configFrom(flags: ConfigFlags): DaemonConfig {
  const base = flags.config !== undefined ? loadDaemonConfig(flags.config) : parseDaemonConfig({});
  const plainHttp = flags.plainHttp ?? base.registry.plainHttp;
  return {
    ...base,
    ...(flags.cacheDir !== undefined ? { cacheDir: flags.cacheDir } : {}),
    ...(flags.fallbackCacheDir !== undefined ? { fallbackCacheDir: flags.fallbackCacheDir } : {}),
    threads: flags.threads ?? base.threads,
    ...(flags.kernelReadahead !== undefined ? { kernelReadaheadKb: flags.kernelReadahead } : {}),
    fetchTimeout: flags.fetchTimeout ?? base.fetchTimeout,
    registry: {
      ...base.registry,
      plainHttp,
      insecure: flags.insecure ?? base.registry.insecure,
      mirrors: [...base.registry.mirrors, ...(flags.mirror ?? []).map((host) => parseDaemonConfig({ registry: { mirrors: [{ host, plainHttp }] } }, '--mirror').registry.mirrors[0]!)],
    },
    prefetch: { enable: base.prefetch.enable, all: flags.prefetchAll ?? base.prefetch.all, bandwidth: flags.prefetchBandwidth ?? base.prefetch.bandwidth },
    // commander makes a --no-X flag true unless given: only false overrides the config
    fetch: { amplify: flags.amplify ?? base.fetch.amplify, readahead: flags.readahead ?? base.fetch.readahead, hotRegion: flags.hotRegion !== false && base.fetch.hotRegion, hotPages: flags.hotPages !== false && base.fetch.hotPages, execPrefetch: flags.execPrefetch ?? base.fetch.execPrefetch,
      execPrefetchMin: flags.execPrefetchMin ?? base.fetch.execPrefetchMin },
  };
}

/** The image flags as a mount spec (undefined when none were given). */
export function specFrom(flags: ImageFlags): MountSpec | undefined {
  if (flags.target === undefined && flags.bootstrap === undefined) {
    if (flags.blobDir !== undefined || flags.prefetch || flags.trace !== undefined || flags.platform !== undefined || flags.prefetchFiles !== undefined) {
      throw new Error('--blob-dir, --platform, --prefetch, --prefetch-files and --trace go with --target or --bootstrap');
    }
    return undefined;
  }
  if (flags.target !== undefined && (flags.bootstrap !== undefined || flags.blobDir !== undefined)) throw new Error('--target does not go with --bootstrap or --blob-dir');
  const spec: MountSpec = flags.target !== undefined ? { target: flags.target } : { bootstrap: flags.bootstrap! };
  if (flags.blobDir !== undefined) spec.blobDir = flags.blobDir;
  if (flags.prefetch) spec.prefetch = true;
  if (flags.trace !== undefined) spec.trace = resolve(flags.trace);
  if (flags.platform !== undefined) {
    if (flags.target === undefined) throw new Error('--platform goes with --target');
    spec.platform = flags.platform;
  }
  const files = pathList(flags.prefetchFiles, '--prefetch-files');
  if (files.length > 0) {
    spec.prefetch = true;
    spec.prefetchFiles = files;
  }
  return spec;
}

/** A directory to mount on (a stale mount of ours there, from a dead daemon, may not even stat). */
export function checkMountPath(path: string): void {
  if (mountsAt(path).length === 0 && !statSync(path, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`mount path ${path} is not a directory`);
  if (process.getuid?.() !== 0) throw new Error('mounting over /dev/fuse needs root');
}
