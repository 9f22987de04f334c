// `nydusify-ts demo`: runs the demo job (src/demo.ts) and prints its summary.
import { Command } from 'commander';
import { parseByteCount } from './options.js';
import { DEFAULT_CHUNK_SIZE } from '../convert/chunker.js';
import { runDemo, type DemoSummary } from '../demo.js';
import { formatBytes } from '../util/bytes.js';
import { ProgressGroup } from '../util/progress.js';

interface DemoFlags {
  json?: boolean;
  chunkSize: number;
}

function summaryTable(summary: DemoSummary): string {
  const rows: [string, string][] = [
    ['layer', `${formatBytes(summary.layerBytes)} as a tar`],
    ['files', String(summary.files)],
    ['bytes', `${formatBytes(summary.bytes)} (${summary.bytes})`],
    ['chunks', `${summary.chunks} (at most ${formatBytes(summary.chunkSize)} each, ${summary.digester} digests)`],
    ['unique chunks', String(summary.uniqueChunks)],
    ['compressed', `${formatBytes(summary.compressedBytes)} (${summary.compressor} data blob ${summary.blobId.slice(0, 12)})`],
    ['bootstrap', formatBytes(summary.bootstrapBytes)],
    ['ratio', `${summary.ratio.toFixed(2)}x (bytes / compressed)`],
    ['convert time', `${summary.timeMs} ms`],
    ['read back', `${summary.verifiedFiles} files verified through ${summary.readBack === 'kernel-mount' ? 'a kernel EROFS mount' : 'the blob reader'}${summary.fuseDaemon ? ', our FUSE daemon' : ''}${summary.blockMode ? ' and the kernel EROFS on our daemon\'s image file (block mode)' : ''}`],
    ['os-release', summary.osRelease],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}\n`).join('');
}

async function demo(flags: DemoFlags): Promise<void> {
  const progress = new ProgressGroup();
  const summary = await runDemo({ chunkSize: flags.chunkSize, progress: progress.add('chunking') });
  progress.finish();
  process.stdout.write(flags.json ? `${JSON.stringify(summary, null, 2)}\n` : summaryTable(summary));
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('the main job on a built-in sample: build a layer, convert it, mount it (kernel EROFS and our FUSE daemon), read it back')
    .option('--json', 'print the summary as JSON')
    .option('--chunk-size <bytes>', 'chunk size: a power of two from 4096 to 16 MiB', parseByteCount, DEFAULT_CHUNK_SIZE)
    .action(demo);
}
