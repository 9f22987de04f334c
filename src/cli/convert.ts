// `nydusify-ts convert`: OCI image (registry or oci:DIR[:TAG]) → Nydus image.
import { Command, InvalidArgumentError, Option } from 'commander';
import { convertImage } from '../convert/pipeline.js';
import type { Compressor, Digester } from '../rafs/tree.js';
import { openImageStore } from '../registry/open-image-store.js';
import { log } from '../util/log.js';
import { ProgressGroup } from '../util/progress.js';
import { chunkSizeOption, compressorOption, parseChunkSize, readPrefetchPatterns, withSwitchEnv, writeJson } from './options.js';
import { clientForReferences, type RegistryClient } from '../registry/client.js';
import { readFile } from 'node:fs/promises';
import { type ChunkDict, chunkDict, parseChunkDictSpec } from '../convert/chunk-dict.js';
import { BuildCache } from '../convert/build-cache.js';
import { openRemoteNydusImage } from '../image/remote.js';
import { RafsImage } from '../rafs/reader.js';

interface ConvertFlags {
  source: string;
  target: string;
  platform?: string[];
  allPlatforms?: boolean;
  mergePlatform?: boolean;
  withReferrer?: boolean;
  chunkDict?: string;
  chunkDictInsecure?: boolean;
  buildCache?: string;
  buildCacheTag?: string;
  buildCacheVersion: string;
  buildCacheInsecure?: boolean;
  buildCacheMaxRecords: number;
  compressor: Compressor;
  chunkSize: number;
  fsVersion: string;
  keepStargz?: boolean;
  prefetchPatterns?: boolean;
  prefetchDir?: string;
  fsChunkSize?: number;
  oci?: boolean;
  workDir?: string;
  plainHttp?: boolean;
  sourceInsecure?: boolean;
  targetInsecure?: boolean;
  pushRetryCount: number;
  outputJson?: string;
}

async function convert(flags: ConvertFlags): Promise<void> {
  if (flags.fsVersion !== '6') throw new InvalidArgumentError('only --fs-version 6 (RAFS v6) is supported');
  if (flags.platform && flags.allPlatforms) throw new InvalidArgumentError('--platform and --all-platforms exclude each other');
  const dictSpec = flags.chunkDict === undefined ? undefined : parseChunkDictSpec(flags.chunkDict);
  const dictRef = dictSpec && 'registry' in dictSpec ? dictSpec.registry : undefined;
  const others: [string, boolean | undefined][] = [...(dictRef ? [[dictRef, flags.chunkDictInsecure] as [string, boolean | undefined]] : []), ...(flags.buildCache ? [[flags.buildCache, flags.buildCacheInsecure] as [string, boolean | undefined]] : [])];
  const client = clientForReferences([[flags.source, flags.sourceInsecure], [flags.target, flags.targetInsecure], ...others], flags.plainHttp, flags.pushRetryCount);
  const progress = new ProgressGroup();
  try {
    const source = await openImageStore(flags.source, client);
    const target = await openImageStore(flags.target, client, { create: true });
    const digester = flags.keepStargz ? 'sha256' : 'blake3';
    const chunkSize = flags.fsChunkSize ?? flags.chunkSize;
    const report = await convertImage({
      source: source.store,
      sourceReference: source.reference,
      target: target.store,
      targetReference: target.reference,
      platforms: flags.platform,
      allPlatforms: flags.allPlatforms,
      mergePlatform: flags.mergePlatform,
      withReferrer: flags.withReferrer,
      compressor: flags.compressor,
      // a kept layer's chunks carry sha256 digests (its TOC's), and one image has one digester
      digester,
      keepStargz: flags.keepStargz,
      chunkSize,
      ...await dictAndCache(flags, dictSpec, client, chunkSize, digester),
      prefetch: await prefetchOf(flags),
      oci: flags.oci ?? false,
      workDir: flags.workDir,
      progressFor: (label, total) => progress.add(label, total),
    });
    progress.finish();
    log.info('image converted', { target: flags.target, digest: report.digest, manifests: report.manifests.length, seconds: report.seconds });
    await writeJson(flags.outputJson, report);
  } finally {
    progress.finish();
    await client.close();
  }
}

/** The chunk dictionary and the build cache the flags name, if they do. */
async function dictAndCache(flags: ConvertFlags, dictSpec: ReturnType<typeof parseChunkDictSpec> | undefined, client: RegistryClient, chunkSize: number, digester: Digester): Promise<{ chunkDict?: ChunkDict; buildCache?: BuildCache }> {
  const chunkDict = dictSpec && await loadChunkDict(dictSpec, client, chunkSize, digester);
  if (!flags.buildCache) return { ...(chunkDict ? { chunkDict } : {}) };
  const cache = await openImageStore(flags.buildCache, client, { create: true });
  if (!Number.isSafeInteger(flags.buildCacheMaxRecords) || flags.buildCacheMaxRecords < 1) throw new InvalidArgumentError('--build-cache-max-records: a positive count');
  const buildCache = await BuildCache.open({
    store: cache.store, tag: cache.reference ?? flags.buildCacheTag, maxRecords: flags.buildCacheMaxRecords,
    // what makes a converted layer these bytes and no others
    conversion: { version: flags.buildCacheVersion, chunkSize, compressor: flags.compressor, digester, chunkDict: chunkDict?.blobs.map((b) => b.blobId).join(',') ?? '' },
  });
  return { ...(chunkDict ? { chunkDict } : {}), buildCache };
}

/** The chunk dictionary a --chunk-dict names: a Nydus image in a registry, or a bootstrap file. */
async function loadChunkDict(spec: ReturnType<typeof parseChunkDictSpec>, client: RegistryClient, chunkSize: number, digester: Digester): Promise<ChunkDict> {
  if ('local' in spec) return chunkDict(RafsImage.open(await readFile(spec.local)), chunkSize, digester);
  const { store, reference } = await openImageStore(spec.registry, client);
  const image = await openRemoteNydusImage(store, reference);
  const layers = new Map(image.manifest.layers.slice(0, -1).map((l) => [l.digest, l]));
  return chunkDict(image.rafs, chunkSize, digester, { store, layers });
}

/** The prefetch list: the paths on stdin (--prefetch-patterns), and everything under --prefetch-dir. */
async function prefetchOf(flags: ConvertFlags): Promise<string[] | undefined> {
  if (flags.prefetchDir !== undefined && !flags.prefetchDir.startsWith('/')) throw new InvalidArgumentError(`--prefetch-dir ${JSON.stringify(flags.prefetchDir)} is not absolute`);
  const dir = flags.prefetchDir === undefined ? [] : [Buffer.from(flags.prefetchDir, 'utf8').toString('latin1')];
  const patterns = flags.prefetchPatterns ? await readPrefetchPatterns() : [];
  return patterns.length + dir.length > 0 ? [...patterns, ...dir] : undefined;
}

export function convertCommand(): Command {
  // nydusify's names for the flags it reads from the environment too
  const command = new Command('convert')
    .description('convert an OCI image (registry or oci:DIR[:TAG]) to a Nydus image (RAFS v6)')
    .addOption(new Option('--source <ref>', 'source image: host[:port]/repo[:tag][@digest] or oci:DIR[:TAG]').env('SOURCE').makeOptionMandatory())
    .addOption(new Option('--target <ref>', 'target image, same forms').env('TARGET').makeOptionMandatory())
    .option('--platform <os/arch[/variant],…>', 'platforms to convert from a multi-platform source (default linux/amd64); more than one makes the target an index of them', parsePlatformList)
    .option('--all-platforms', 'convert every platform of a multi-platform source into a multi-platform target')
    .option('--merge-platform', 'the target is an index of the source\'s manifests and the Nydus ones (os.features nydus.remoteimage.v1); the source image is copied to the target repository')
    .option('--multi-platform', 'nydusify\'s other name for --merge-platform')
    .option('--with-referrer', 'each Nydus manifest names its source manifest as its subject (an OCI referrer of it)')
    .addOption(new Option('--chunk-dict <spec>', 'bootstrap:registry:REF (a Nydus image) or bootstrap:local:PATH (a bootstrap whose blobs the target has): chunks it has are referred to in its blobs, not stored again').env('CHUNK_DICT'))
    .option('--chunk-dict-insecure', 'skip TLS verification for the chunk dictionary\'s registry')
    .addOption(new Option('--build-cache <ref>', 'an image of layers converted before (ours, not upstream\'s records): a source layer converted the same way is taken from it, new ones are added').env('BUILD_CACHE'))
    .addOption(new Option('--build-cache-tag <tag>', 'the cache image\'s tag, when --build-cache names none').env('BUILD_CACHE_TAG'))
    .addOption(new Option('--build-cache-version <v>', 'records of another version are not used').default('v1').env('BUILD_CACHE_VERSION'))
    .option('--build-cache-insecure', 'skip TLS verification for the cache\'s registry')
    .addOption(new Option('--build-cache-max-records <n>', 'most layers the cache keeps (the most recently used)').argParser((v) => Number.parseInt(v, 10)).default(200).env('BUILD_CACHE_MAX_RECORDS'))
    .addOption(compressorOption().env('COMPRESSOR'))
    .addOption(chunkSizeOption())
    .addOption(new Option('--fs-version <version>', 'RAFS version').default('6').env('FS_VERSION'))
    .option('--keep-stargz', 'keep eStargz / zstd:chunked layers as they are (served lazily through their TOC) and convert only the others; chunk digests are sha256')
    .option('--prefetch-patterns', 'read absolute paths to prefetch from stdin, one per line')
    .addOption(new Option('--prefetch-dir <dir>', 'prefetch everything under this absolute directory (with --prefetch-patterns: both)').env('PREFETCH_DIR'))
    .addOption(new Option('--fs-chunk-size <bytes>', 'nydusify\'s name for --chunk-size').argParser(parseChunkSize).env('FS_CHUNK_SIZE'))
    .option('--oci', 'make a Docker-typed source an OCI-typed target (manifest, config, layers)')
    .addOption(new Option('--work-dir <dir>', 'where to keep layer blobs while converting (default: the temp dir)').env('WORK_DIR'))
    .option('--plain-http', 'talk plain HTTP to the registries (a loopback one answering TLS in plain HTTP is asked in plain HTTP anyway, as containerd does)')
    .option('--source-insecure', 'skip TLS verification for the source registry')
    .option('--target-insecure', 'skip TLS verification for the target registry')
    .addOption(new Option('--push-retry-count <n>', 'retries of failed registry requests').argParser((v) => Number.parseInt(v, 10)).default(3).env('PUSH_RETRY_COUNT'))
    .addOption(new Option('--output-json <file>', 'write sizes, times and chunk/dedup stats as JSON').env('OUTPUT_JSON'))
    .action((flags: ConvertFlags & { multiPlatform?: boolean }) => convert({ ...flags, mergePlatform: flags.mergePlatform || flags.multiPlatform }));
  return withSwitchEnv(command, {
    mergePlatform: 'MERGE_PLATFORM', withReferrer: 'WITH_REFERRER', oci: 'OCI', prefetchPatterns: 'PREFETCH_PATTERNS', plainHttp: 'PLAIN_HTTP',
    sourceInsecure: 'SOURCE_INSECURE', targetInsecure: 'TARGET_INSECURE', chunkDictInsecure: 'CHUNK_DICT_INSECURE', buildCacheInsecure: 'BUILD_CACHE_INSECURE',
  });
}

/** nydusify's comma-separated platforms. */
function parsePlatformList(value: string): string[] {
  const list = value.split(',').map((p) => p.trim());
  if (list.some((p) => !/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(p))) throw new InvalidArgumentError(`${JSON.stringify(value)}: expected os/arch[/variant], comma-separated`);
  return list;
}
