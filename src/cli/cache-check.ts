// `nydusify-ts cache check --cache-dir DIR --bootstrap B`: verifies every chunk the cache marks
// ready for the image's blobs against the bootstrap's digests; fails when one does not match.
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { verifyCache } from '../blobcache/verify.js';
import { RafsImage } from '../rafs/reader.js';

interface CheckFlags {
  cacheDir: string;
  bootstrap: string;
  json?: boolean;
}

const print = (line: string): void => void process.stdout.write(`${line}\n`);

async function check(flags: CheckFlags): Promise<void> {
  const rafs = RafsImage.open(await readFile(flags.bootstrap));
  const result = await verifyCache(flags.cacheDir, rafs);
  if (flags.json) print(JSON.stringify(result));
  else {
    print('BLOB  STATE  READY/CHUNKS  VERIFIED  CORRUPT');
    for (const b of result.blobs) print(`${b.blobId}  ${b.state}  ${b.ready}/${b.chunks}  ${b.verified}  ${b.corrupt.length}`);
  }
  if (result.corrupt > 0) throw new Error(`${result.corrupt} ready chunk(s) do not match their digest`);
}

export function cacheCheckCommand(): Command {
  return new Command('check').description('verify every chunk the cache marks ready against the image\'s digests')
    .addOption(new Option('--cache-dir <dir>', 'blob cache directory').makeOptionMandatory())
    .addOption(new Option('--bootstrap <file>', 'the image\'s bootstrap').makeOptionMandatory())
    .option('--json', 'print JSON').action(check);
}
