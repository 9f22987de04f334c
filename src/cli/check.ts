// `nydusify-ts check`: validate a bootstrap, and with blobs every chunk's data.
import { Command } from 'commander';
import { checkImage } from '../image/check.js';
import { openLocalImage } from '../image/local.js';
import { log } from '../util/log.js';

interface CheckFlags {
  bootstrap: string;
  blobDir?: string;
}

async function check(flags: CheckFlags): Promise<void> {
  const image = await openLocalImage(flags.bootstrap, flags.blobDir);
  try {
    const report = await checkImage(image);
    for (const problem of report.problems) process.stderr.write(`${problem}\n`);
    const { problems, ...counts } = report;
    if (problems.length > 0) throw new Error(`${problems.length} problem(s) found`);
    log.info('image is valid', counts);
  } finally {
    await image.close();
  }
}

export function checkCommand(): Command {
  return new Command('check')
    .description('validate a bootstrap; with --blob-dir also read and verify every chunk')
    .requiredOption('--bootstrap <file>', 'bootstrap to check')
    .option('--blob-dir <dir>', 'directory holding the data blobs')
    .action(check);
}
