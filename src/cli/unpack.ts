// `nydusify-ts unpack`: an image's tree back into a tar file.
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { Command, InvalidArgumentError } from 'commander';
import { openLocalImage } from '../image/local.js';
import { unpackToTar } from '../image/unpack.js';
import { log } from '../util/log.js';

interface UnpackFlags {
  bootstrap?: string;
  blobDir?: string;
  output: string;
}

async function unpack(given: string | undefined, flags: UnpackFlags): Promise<void> {
  if (given !== undefined && flags.bootstrap !== undefined && given !== flags.bootstrap) throw new InvalidArgumentError('the BOOTSTRAP argument and --bootstrap name different files');
  const bootstrap = flags.bootstrap ?? given;
  if (bootstrap === undefined) throw new InvalidArgumentError('give the bootstrap: BOOTSTRAP or --bootstrap FILE');
  const image = await openLocalImage(bootstrap, flags.blobDir);
  const tmp = `${flags.output}.tmp-${process.pid}`;
  const out = createWriteStream(tmp);
  try {
    const result = await unpackToTar(image, out);
    out.end();
    await finished(out);
    await rename(tmp, flags.output);
    log.info('unpacked', { output: flags.output, ...result });
  } catch (err) {
    out.destroy();
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await image.close();
  }
}

export function unpackCommand(): Command {
  return new Command('unpack')
    .description('write a Nydus image tree as a tar file')
    .argument('[bootstrap]', 'image bootstrap (as nydus-image unpack takes it)')
    .option('--bootstrap <file>', 'image bootstrap')
    .option('--blob-dir <dir>', 'directory holding the data blobs (needed for file data)')
    .requiredOption('--output <file>', 'tar file to write')
    .action(unpack);
}
