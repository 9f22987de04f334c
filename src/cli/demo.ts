// `nydusify-ts demo`: runs the demo job (src/demo.ts) and prints its summary.
import { Command } from 'commander';
import { parseByteCount } from './options.js';
import { DEFAULT_CHUNK_SIZE } from '../convert/chunker.js';
import { runDemo, type DemoSummary } from '../demo/demo.js';
import { formatBytes } from '../util/bytes.js';
import { ProgressGroup } from '../util/progress.js';

interface DemoFlags {
  json?: boolean;
  lazy: boolean;
  report?: string;
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
    ...lazyRows(summary.lazy),
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}\n`).join('');
}

function lazyRows(lazy: DemoSummary['lazy']): [string, string][] {
  if ('skipped' in lazy) return [['lazy mount', `skipped: ${lazy.skipped}`]];
  return [
    ['registry', `${lazy.registry} (docker-registry): pushed ${lazy.source} (OCI, ${formatBytes(lazy.ociBytes)}), converted to ${lazy.target} (Nydus, ${formatBytes(lazy.nydusBytes)}) in ${lazy.seconds.convert.toFixed(2)} s`],
    ['lazy mount', `mounted in ${lazy.seconds.mount.toFixed(2)} s; \`${lazy.command}\` ran in ${lazy.seconds.run.toFixed(2)} s`],
    ['fetched', `${formatBytes(lazy.fetchedBytes)} of the image's ${formatBytes(lazy.nydusBytes)} (${((100 * lazy.fetchedBytes) / lazy.nydusBytes).toFixed(1)}%) in ${lazy.rangeRequests} range requests`],
    ['output', lazy.output],
    ['report', `${lazy.report} (the mount's lazy-load report: open it in a browser)`],
  ];
}

async function demo(flags: DemoFlags): Promise<void> {
  const progress = new ProgressGroup();
  const summary = await runDemo({ chunkSize: flags.chunkSize, lazy: flags.lazy, ...(flags.report === undefined ? {} : { reportPath: flags.report }), progress: progress.add('chunking') });
  progress.finish();
  process.stdout.write(flags.json ? `${JSON.stringify(summary, null, 2)}\n` : summaryTable(summary));
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('the main job on a built-in sample: build a layer, convert it, mount it (kernel EROFS and our FUSE daemon), read it back; then push a sample image to a local registry, convert it and run a command in it mounted lazily')
    .option('--json', 'print the summary as JSON')
    .option('--report <file>', 'where the lazy half writes its lazy-load report (default: nydusify-demo-report.html in the temp directory)')
    .option('--no-lazy', 'skip the lazy half: local registry, push, convert, lazy mount, a command run in it')
    .option('--chunk-size <bytes>', 'chunk size: a power of two from 4096 to 16 MiB', parseByteCount, DEFAULT_CHUNK_SIZE)
    .action(demo);
}
