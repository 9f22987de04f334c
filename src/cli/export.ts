// `nydusify-ts export --block`: a flat EROFS disk image the kernel mounts with `-o loop`.
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { exportBlockImage } from '../image/export-block.js';
import { openLocalImage } from '../image/local.js';
import { log } from '../util/log.js';

interface ExportFlags {
  block?: boolean;
  bootstrap: string;
  blobDir?: string;
  output: string;
}

async function exportImage(flags: ExportFlags): Promise<void> {
  if (!flags.block) throw new InvalidArgumentError('only --block export is supported');
  const image = await openLocalImage(flags.bootstrap, flags.blobDir);
  try {
    const result = await exportBlockImage(image, await readFile(flags.bootstrap), flags.output);
    log.info('block image written', { output: flags.output, ...result });
  } finally {
    await image.close();
  }
}

export function exportCommand(): Command {
  return new Command('export')
    .description('export a Nydus image as a flat EROFS block image')
    .option('--block', 'write a flat block image (bootstrap + uncompressed blobs)')
    .requiredOption('--bootstrap <file>', 'image bootstrap')
    .option('--blob-dir <dir>', 'directory holding the data blobs')
    .requiredOption('--output <file>', 'disk image to write')
    .action(exportImage);
}
