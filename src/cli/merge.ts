// `nydusify-ts merge`: layer bootstraps (lowest first) → one image bootstrap with overlay semantics.
import { access, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Command } from 'commander';
import { writeAtomically } from '../util/files.js';
import { mergeLayers } from '../convert/merge.js';
import { BLOB_ID_PLACEHOLDER, isBlobId } from '../rafs/blob.js';
import { RafsImage } from '../rafs/reader.js';
import type { Bootstrap } from '../rafs/tree.js';
import { writeBootstrap } from '../rafs/writer.js';
import { log } from '../util/log.js';
import { prefetchPolicyOption, readPrefetchPatterns, writeJson } from './options.js';

interface MergeFlags {
  bootstrap: string;
  blobDir?: string;
  prefetchPolicy: 'fs' | 'none';
  outputJson?: string;
}

/** A layer bootstrap; one extracted from its blob names the blob after its own file (docs/rafs-v6.md §3.2). */
async function readLayer(path: string): Promise<Bootstrap> {
  const layer = RafsImage.open(await readFile(path)).toBootstrap();
  const fromName = basename(path).split('.')[0]!;
  for (const blob of layer.blobs) {
    if (blob.blobId !== BLOB_ID_PLACEHOLDER) continue;
    if (!isBlobId(fromName)) throw new Error(`${path}: its blob id is a placeholder; name the file after the blob's sha256`);
    blob.blobId = fromName;
  }
  return layer;
}

async function merge(layers: string[], flags: MergeFlags): Promise<void> {
  const inputs = await Promise.all(layers.map(readLayer));
  const prefetch = flags.prefetchPolicy === 'fs' ? await readPrefetchPatterns() : undefined;
  const merged = mergeLayers(inputs, { prefetch });
  if (flags.blobDir) {
    for (const blob of merged.blobs) {
      await access(join(flags.blobDir, blob.blobId)).catch(() => {
        throw new Error(`blob ${blob.blobId} is not in ${flags.blobDir}`);
      });
    }
  }
  const bootstrap = writeBootstrap(merged);
  await writeAtomically(flags.bootstrap, bootstrap);
  const summary = { layers: layers.length, blobs: merged.blobs.map((b) => b.blobId), bootstrapSize: bootstrap.length };
  log.info('bootstrap merged', summary);
  await writeJson(flags.outputJson, summary);
}

export function mergeCommand(): Command {
  return new Command('merge')
    .description('merge layer bootstraps (lowest first) into one image bootstrap, applying whiteouts')
    .argument('<layers...>', 'layer bootstraps, bottom to top')
    .requiredOption('--bootstrap <file>', 'where to write the merged bootstrap')
    .option('--blob-dir <dir>', 'check that every referenced blob is in this directory')
    .addOption(prefetchPolicyOption())
    .option('--output-json <file>', 'write a JSON summary')
    .action(merge);
}
