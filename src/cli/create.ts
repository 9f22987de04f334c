// `nydusify-ts create`: one layer (tar, tar.gz, tar.zst or a directory) → layer bootstrap + blob.
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { createLayer } from '../convert/create.js';
import type { Compressor, Digester } from '../rafs/tree.js';
import { log } from '../util/log.js';
import { chunkSizeOption, compressorOption, digesterOption, prefetchPolicyOption, readPrefetchPatterns, writeJson } from './options.js';

interface CreateFlags {
  type: 'tar-rafs' | 'targz-rafs' | 'dir-rafs';
  bootstrap: string;
  blobDir: string;
  compressor: Compressor;
  digester: Digester;
  chunkSize: number;
  prefetchPolicy: 'fs' | 'none';
  outputJson?: string;
}

/** The layer as a byte stream; a directory is streamed through GNU tar (xattrs kept, sockets skipped). */
function layerSource(type: CreateFlags['type'], source: string): NodeJS.ReadableStream & AsyncIterable<Buffer> {
  if (type === 'dir-rafs') {
    const tar = spawn('tar', ['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', source, '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    tar.on('exit', (code) => {
      if (code) tar.stdout.destroy(new Error(`tar of directory ${source} failed (exit ${code})`));
    });
    return tar.stdout;
  }
  // 1 MiB reads: far fewer trips through the decompressor and parser than the 64 KiB default
  return source === '-' ? process.stdin : createReadStream(source, { highWaterMark: 1 << 20 });
}

async function create(source: string, flags: CreateFlags): Promise<void> {
  if (source === '-' && flags.prefetchPolicy === 'fs') {
    throw new InvalidArgumentError('the layer and the prefetch list cannot both come from stdin');
  }
  const started = Date.now();
  const result = await createLayer({
    source: layerSource(flags.type, source),
    bootstrapPath: flags.bootstrap,
    blobDir: flags.blobDir,
    compressor: flags.compressor,
    digester: flags.digester,
    chunkSize: flags.chunkSize,
    prefetch: flags.prefetchPolicy === 'fs' ? await readPrefetchPatterns() : [],
  });
  const summary = { ...result, seconds: (Date.now() - started) / 1000 };
  log.info('layer created', { blob: result.blobId, blobSize: result.blobSize, ...result.stats, seconds: summary.seconds });
  await writeJson(flags.outputJson, summary);
}

export function createCommand(): Command {
  return new Command('create')
    .description('build a RAFS v6 layer bootstrap and data blob from a tar stream or a directory')
    .argument('<source>', "layer tar (plain, gzip or zstd), '-' for stdin, or a directory with --type dir-rafs")
    .addOption(new Option('--type <type>', 'source type').choices(['tar-rafs', 'targz-rafs', 'dir-rafs']).default('tar-rafs'))
    .requiredOption('--bootstrap <file>', 'where to write the layer bootstrap')
    .requiredOption('--blob-dir <dir>', 'directory for the data blob (named by its sha256)')
    .addOption(compressorOption())
    .addOption(digesterOption())
    .addOption(chunkSizeOption())
    .addOption(prefetchPolicyOption())
    .option('--output-json <file>', 'write sizes, times and chunk/dedup stats as JSON')
    .action(create);
}
