// `nydusify-ts convert`: OCI image (registry or oci:DIR[:TAG]) → Nydus image.
import { Command, InvalidArgumentError, Option } from 'commander';
import { convertImage } from '../convert/pipeline.js';
import type { Compressor } from '../rafs/tree.js';
import { openImageStore } from '../registry/open-image-store.js';
import { log } from '../util/log.js';
import { ProgressGroup } from '../util/progress.js';
import { chunkSizeOption, compressorOption, parseChunkSize, readPrefetchPatterns, writeJson } from './options.js';
import { clientForReferences } from '../registry/client.js';

interface ConvertFlags {
  source: string;
  target: string;
  platform?: string;
  allPlatforms?: boolean;
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
  const client = clientForReferences([[flags.source, flags.sourceInsecure], [flags.target, flags.targetInsecure]], flags.plainHttp, flags.pushRetryCount);
  const progress = new ProgressGroup();
  try {
    const source = await openImageStore(flags.source, client);
    const target = await openImageStore(flags.target, client, { create: true });
    const report = await convertImage({
      source: source.store,
      sourceReference: source.reference,
      target: target.store,
      targetReference: target.reference,
      platform: flags.platform,
      allPlatforms: flags.allPlatforms,
      compressor: flags.compressor,
      // a kept layer's chunks carry sha256 digests (its TOC's), and one image has one digester
      digester: flags.keepStargz ? 'sha256' : 'blake3',
      keepStargz: flags.keepStargz,
      chunkSize: flags.fsChunkSize ?? flags.chunkSize,
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

/** The prefetch list: the paths on stdin (--prefetch-patterns), and everything under --prefetch-dir. */
async function prefetchOf(flags: ConvertFlags): Promise<string[] | undefined> {
  if (flags.prefetchDir !== undefined && !flags.prefetchDir.startsWith('/')) throw new InvalidArgumentError(`--prefetch-dir ${JSON.stringify(flags.prefetchDir)} is not absolute`);
  const dir = flags.prefetchDir === undefined ? [] : [Buffer.from(flags.prefetchDir, 'utf8').toString('latin1')];
  const patterns = flags.prefetchPatterns ? await readPrefetchPatterns() : [];
  return patterns.length + dir.length > 0 ? [...patterns, ...dir] : undefined;
}

export function convertCommand(): Command {
  return new Command('convert')
    .description('convert an OCI image (registry or oci:DIR[:TAG]) to a Nydus image (RAFS v6)')
    .requiredOption('--source <ref>', 'source image: host[:port]/repo[:tag][@digest] or oci:DIR[:TAG]')
    .requiredOption('--target <ref>', 'target image, same forms')
    .option('--platform <os/arch[/variant]>', 'platform to convert from a multi-platform source (default linux/amd64)')
    .option('--all-platforms', 'convert every platform of a multi-platform source into a multi-platform target')
    .addOption(compressorOption())
    .addOption(chunkSizeOption())
    .addOption(new Option('--fs-version <version>', 'RAFS version').default('6'))
    .option('--keep-stargz', 'keep eStargz / zstd:chunked layers as they are (served lazily through their TOC) and convert only the others; chunk digests are sha256')
    .option('--prefetch-patterns', 'read absolute paths to prefetch from stdin, one per line')
    .option('--prefetch-dir <dir>', 'prefetch everything under this absolute directory (with --prefetch-patterns: both)')
    .option('--fs-chunk-size <bytes>', 'nydusify\'s name for --chunk-size', parseChunkSize)
    .option('--oci', 'make a Docker-typed source an OCI-typed target (manifest, config, layers)')
    .option('--work-dir <dir>', 'where to keep layer blobs while converting (default: the temp dir)')
    .option('--plain-http', 'talk plain HTTP to the registries (never chosen silently)')
    .option('--source-insecure', 'skip TLS verification for the source registry')
    .option('--target-insecure', 'skip TLS verification for the target registry')
    .option('--push-retry-count <n>', 'retries of failed registry requests', (v) => Number.parseInt(v, 10), 3)
    .option('--output-json <file>', 'write sizes, times and chunk/dedup stats as JSON')
    .action(convert);
}
