// `nydusify-ts export --block`: a flat EROFS disk image the kernel mounts (a file or a block device),
// of a local image or of one in a registry.
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { exportBlockImage } from '../image/export-block.js';
import { openLocalImage } from '../image/local.js';
import { connectNydusImage } from '../image/remote.js';
import { log } from '../util/log.js';

interface ExportFlags {
  block?: boolean;
  bootstrap?: string;
  blobDir?: string;
  target?: string;
  plainHttp?: boolean;
  insecure?: boolean;
  output: string;
}

async function exportImage({ localfsDir, ...given }: ExportFlags & { localfsDir?: string }): Promise<void> {
  if (localfsDir !== undefined && given.blobDir !== undefined && localfsDir !== given.blobDir) throw new InvalidArgumentError('--localfs-dir and --blob-dir name different directories');
  const flags: ExportFlags = { ...given, ...(localfsDir === undefined ? {} : { blobDir: localfsDir }) };
  if (!flags.block) throw new InvalidArgumentError('only --block export is supported');
  if ((flags.target === undefined) === (flags.bootstrap === undefined)) throw new InvalidArgumentError('give the image: --bootstrap FILE [--blob-dir DIR], or --target REF');
  if (flags.target !== undefined && flags.blobDir !== undefined) throw new InvalidArgumentError('--blob-dir goes with --bootstrap');
  if (flags.target !== undefined) {
    const remote = await connectNydusImage(flags.target, { plainHttp: flags.plainHttp, insecure: flags.insecure });
    try {
      const result = await exportBlockImage(remote.image, remote.image.bootstrap, flags.output);
      log.info('block image written', { output: flags.output, ...result });
    } finally {
      await remote.close();
    }
    return;
  }
  const image = await openLocalImage(flags.bootstrap!, flags.blobDir);
  try {
    const result = await exportBlockImage(image, await readFile(flags.bootstrap!), flags.output);
    log.info('block image written', { output: flags.output, ...result });
  } finally {
    await image.close();
  }
}

export function exportCommand(): Command {
  return new Command('export')
    .description('export a Nydus image as a flat EROFS block image')
    .option('--block', 'write a flat block image (bootstrap + uncompressed blobs)')
    .option('--bootstrap <file>', 'image bootstrap (a local image)')
    .option('--blob-dir <dir>', 'directory holding the data blobs of --bootstrap')
    .option('--localfs-dir <dir>', 'nydusify\'s name for --blob-dir')
    .option('--target <ref>', 'a Nydus image in a registry')
    .option('--plain-http', 'talk plain HTTP to the registry')
    .option('--insecure', 'skip TLS verification for the registry')
    .requiredOption('--output <file>', 'disk image to write')
    .action(exportImage);
}
