// `nydusify-ts inspect`: superblock, blobs, counts and the tree (or one entry) of a bootstrap; or the
// footer and TOC of a stargz-family layer file.
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { inspectPath, inspectSummary, treeListing } from '../image/inspect.js';
import { inspectStargzLayer, stargzSummaryLines } from '../image/inspect-stargz.js';
import { RafsImage } from '../rafs/reader.js';

interface InspectFlags {
  json?: boolean;
  path?: string;
  tree?: boolean;
}

async function inspect(file: string, flags: InspectFlags): Promise<void> {
  const print = (v: unknown): void => void process.stdout.write(flags.json ? `${JSON.stringify(v, null, 2)}\n` : `${String(v)}\n`);
  const layer = await inspectStargzLayer(file);
  if (layer) {
    if (flags.path) throw new InvalidArgumentError('--path needs a bootstrap: make one with create --type estargz-ref');
    return print(flags.json ? layer : stargzSummaryLines(layer).join('\n'));
  }
  const rafs = RafsImage.open(await readFile(file));
  if (flags.path) return print(flags.json ? inspectPath(rafs, flags.path) : JSON.stringify(inspectPath(rafs, flags.path), null, 2));
  const summary = inspectSummary(rafs);
  // JSON lists the tree only on request (--tree); text output lists it unless --no-tree
  if (flags.json) return print({ ...summary, ...(flags.tree === true ? { tree: [...treeListing(rafs)] } : {}) });
  const lines = [
    `RAFS v6, block size ${summary.blockSize}, chunk size 0x${summary.chunkSize.toString(16)}, ${summary.compressor}, ${summary.digester}, flags ${summary.flags}`,
    `root nid ${summary.rootNid}, ${summary.inodeCount} inodes, meta block ${summary.metaBlkaddr}`,
    `entries ${summary.counts.entries}: ${summary.counts.dirs} dirs, ${summary.counts.files} files, ${summary.counts.symlinks} symlinks, ${summary.counts.others} other`,
    `chunks ${summary.counts.chunkRefs} referenced, ${summary.counts.distinctChunks} distinct`,
    ...summary.blobs.map((b) => `blob ${b.index} ${b.blobId} ${b.chunkCount} chunks of 0x${b.chunkSize.toString(16)} ${b.compressor} features ${b.features} compressed ${b.compressedSize} uncompressed ${b.uncompressedSize} mapped block ${b.mappedBlkaddr}`),
    ...(summary.prefetch.length ? [`prefetch ${summary.prefetch.join(' ')}`] : []),
  ];
  print(lines.join('\n'));
  if (flags.tree !== false) for (const line of treeListing(rafs)) print(line);
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('show what a RAFS bootstrap holds (also reads upstream Nydus bootstraps), or the footer and TOC of an eStargz/stargz/zstd:chunked layer file')
    .argument('<file>', 'bootstrap file, or stargz-family layer file')
    .option('--json', 'print JSON')
    .option('--path <path>', 'show one entry: attributes, xattrs, chunks')
    .option('--tree', 'include the tree listing (default for text output)')
    .option('--no-tree', 'omit the tree listing')
    .action(inspect);
}
