// `nydusify-ts create`: one layer (tar, tar.gz, tar.zst or a directory) → layer bootstrap + blob; or a
// stargz-family layer (or its TOC JSON) → a bootstrap that serves that layer as it is.
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { createLayer } from '../convert/create.js';
import { createStargzIndex, createStargzRef } from '../convert/stargz-ref.js';
import { createTargzRef, DEFAULT_GZIP_CHUNK_SIZE } from '../convert/targz-ref.js';
import type { Compressor, Digester } from '../rafs/tree.js';
import { log } from '../util/log.js';
import { chunkSizeOption, compressorOption, digesterOption, parseByteCount, parseSize, prefetchPolicyOption, readPrefetchPatterns, writeJson } from './options.js';

const STARGZ_TYPES = ['estargz-ref', 'stargz-index'] as const;

interface CreateFlags {
  type: 'tar-rafs' | 'targz-rafs' | 'targz-ref' | 'dir-rafs' | (typeof STARGZ_TYPES)[number];
  span?: number;
  bootstrap: string;
  blobDir?: string;
  tocDigest?: string;
  blobId?: string;
  blobSize?: number;
  tocOffset?: number;
  compressor: Compressor;
  digester: Digester;
  chunkSize: number;
  prefetchPolicy: 'fs' | 'none';
  outputJson?: string;
}

/** The layer as a byte stream; a directory is streamed through GNU tar (xattrs kept, sockets skipped). */
function layerSource(type: 'tar-rafs' | 'targz-rafs' | 'dir-rafs', source: string): NodeJS.ReadableStream & AsyncIterable<Buffer> {
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

/** The flag a type needs, or the error saying so. */
function required<T>(value: T | undefined, flag: string, type: string): T {
  if (value === undefined) throw new InvalidArgumentError(`--type ${type} needs ${flag}`);
  return value;
}

async function createFromStargz(source: string, flags: CreateFlags, command: Command): Promise<void> {
  // a stargz layer's pieces decide the chunk size unless one is asked for
  const chunkSize = command.getOptionValueSource('chunkSize') === 'cli' ? flags.chunkSize : undefined;
  const started = Date.now();
  const result = flags.type === 'estargz-ref'
    ? await createStargzRef({ layerPath: source, bootstrapPath: flags.bootstrap, blobDir: required(flags.blobDir, '--blob-dir', flags.type), tocDigest: flags.tocDigest, chunkSize })
    : await createStargzIndex({
      tocPath: source, bootstrapPath: flags.bootstrap, blobId: required(flags.blobId, '--blob-id', flags.type),
      blobSize: required(flags.blobSize, '--blob-size', flags.type), tocOffset: flags.tocOffset, tocDigest: flags.tocDigest, chunkSize,
    });
  const summary = { ...result, seconds: (Date.now() - started) / 1000 };
  log.info('stargz layer bootstrap created', { kind: result.kind, blob: result.blobId, blobPath: result.blobPath, tocDigest: result.tocDigest, chunkSize: result.chunkSize, ...result.stats, seconds: summary.seconds });
  await writeJson(flags.outputJson, summary);
}

async function createFromGzip(source: string, flags: CreateFlags, command: Command): Promise<void> {
  const started = Date.now();
  // a gzip layer's chunks are small unless asked otherwise (DEFAULT_GZIP_CHUNK_SIZE)
  const chunkSize = command.getOptionValueSource('chunkSize') === 'cli' ? flags.chunkSize : DEFAULT_GZIP_CHUNK_SIZE;
  const result = await createTargzRef({ layerPath: source, bootstrapPath: flags.bootstrap, blobDir: required(flags.blobDir, '--blob-dir', flags.type), chunkSize, span: flags.span });
  const summary = { ...result, seconds: (Date.now() - started) / 1000 };
  log.info('gzip layer bootstrap created', { blob: result.blobId, blobPath: result.blobPath, bootstrapSize: result.bootstrapSize, ...result.stats, seconds: summary.seconds });
  await writeJson(flags.outputJson, summary);
}

async function create(source: string, flags: CreateFlags, command: Command): Promise<void> {
  if (flags.type === 'estargz-ref' || flags.type === 'stargz-index') return createFromStargz(source, flags, command);
  if (flags.type === 'targz-ref') return createFromGzip(source, flags, command);
  if (source === '-' && flags.prefetchPolicy === 'fs') {
    throw new InvalidArgumentError('the layer and the prefetch list cannot both come from stdin');
  }
  const started = Date.now();
  const result = await createLayer({
    source: layerSource(flags.type, source),
    bootstrapPath: flags.bootstrap,
    blobDir: required(flags.blobDir, '--blob-dir', flags.type),
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
    .description('build a RAFS v6 layer bootstrap and data blob from a tar stream or a directory, or a bootstrap over an eStargz/zstd:chunked or plain gzip layer as it is')
    .argument('<source>', "layer tar (plain, gzip or zstd), '-' for stdin, a directory (dir-rafs), a stargz-family layer file (estargz-ref), its TOC JSON (stargz-index) or a gzip layer file (targz-ref)")
    .addOption(new Option('--type <type>', 'source type').choices(['tar-rafs', 'targz-rafs', 'targz-ref', 'dir-rafs', ...STARGZ_TYPES]).default('tar-rafs'))
    .requiredOption('--bootstrap <file>', 'where to write the layer bootstrap')
    .option('--blob-dir <dir>', 'directory for the data blob (named by its sha256); estargz-ref and targz-ref put the layer there')
    .option('--span <bytes>', 'targz-ref: decoded bytes between checkpoints of the gzip stream (default 256K, at most 8M)', parseSize)
    .option('--toc-digest <digest>', 'estargz-ref, stargz-index: sha256:… the TOC JSON must have (the layer\'s toc.digest annotation)')
    .option('--blob-id <hex>', "stargz-index: the layer's sha256 (64 hex, optionally sha256:-prefixed)", (v: string) => v.replace(/^sha256:/, ''))
    .option('--blob-size <bytes>', "stargz-index: the layer's size (decimal or 0x-hex)", parseByteCount)
    .option('--toc-offset <bytes>', "stargz-index: where the layer's TOC member starts (default: its range runs to the footer)", parseByteCount)
    .addOption(compressorOption())
    .addOption(digesterOption())
    .addOption(chunkSizeOption())
    .addOption(prefetchPolicyOption())
    .option('--output-json <file>', 'write sizes, times and chunk/dedup stats as JSON')
    .action(create);
}
