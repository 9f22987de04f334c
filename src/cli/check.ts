// `nydusify-ts check`: a local bootstrap (with blobs: every chunk verified), or a converted image
// against its source: manifest conventions, then the two file trees, with --with-data the contents.
import { Command, InvalidArgumentError } from 'commander';
import { checkImage } from '../image/check.js';
import { diffTrees, sourceTree, targetTree } from '../image/compare.js';
import { openLocalImage } from '../image/local.js';
import { openRemoteNydusImage } from '../image/remote.js';
import { openImageStore } from '../registry/open-image-store.js';
import { isStargzLayer } from '../registry/stargz-layers.js';
import { log } from '../util/log.js';
import { clientForReferences } from '../registry/client.js';

interface CheckFlags {
  bootstrap?: string;
  blobDir?: string;
  source?: string;
  target?: string;
  withData?: boolean;
  platform?: string;
  plainHttp?: boolean;
  sourceInsecure?: boolean;
  targetInsecure?: boolean;
}

/** Prints every problem on stderr and fails when there is any. */
function verdict(problems: string[], what: string, counts: Record<string, unknown>): void {
  for (const problem of problems) process.stderr.write(`${problem}\n`);
  if (problems.length > 0) throw new Error(`${problems.length} problem(s) found`);
  log.info(what, counts);
}

async function checkLocal(bootstrap: string, blobDir: string | undefined): Promise<void> {
  const image = await openLocalImage(bootstrap, blobDir);
  try {
    const { problems, ...counts } = await checkImage(image);
    verdict(problems, 'image is valid', counts);
  } finally {
    await image.close();
  }
}

async function checkAgainstSource(flags: CheckFlags & { source: string; target: string }): Promise<void> {
  const client = clientForReferences([[flags.source, flags.sourceInsecure], [flags.target, flags.targetInsecure]], flags.plainHttp);
  try {
    const source = await openImageStore(flags.source, client);
    const target = await openImageStore(flags.target, client);
    const image = await openRemoteNydusImage(target.store, target.reference, flags.platform);
    const withData = flags.withData ?? false;
    const [want, got] = await Promise.all([
      sourceTree(source.store, source.reference, flags.platform, withData, new Set(image.manifest.layers.filter(isStargzLayer).map((l) => l.digest))),
      targetTree(image, withData),
    ]);
    const problems = [...image.problems, ...diffTrees(want, got)];
    verdict(problems, 'target matches its source', { layers: image.manifest.layers.length, blobs: image.rafs.blobs.length, withData });
  } finally {
    await client.close();
  }
}

/** --target alone (as nydusify checks): the image's manifest and bootstrap, with --with-data every chunk of every file. */
async function checkTarget(flags: CheckFlags & { target: string }): Promise<void> {
  const client = clientForReferences([[flags.target, flags.targetInsecure]], flags.plainHttp);
  try {
    const target = await openImageStore(flags.target, client);
    const image = await openRemoteNydusImage(target.store, target.reference, flags.platform);
    const withData = flags.withData ?? false;
    await targetTree(image, withData);
    verdict(image.problems, 'target is a Nydus image', { layers: image.manifest.layers.length, blobs: image.rafs.blobs.length, withData });
  } finally {
    await client.close();
  }
}

async function check(given: string | undefined, flags: CheckFlags): Promise<void> {
  if (given !== undefined && flags.bootstrap !== undefined && given !== flags.bootstrap) throw new InvalidArgumentError('the BOOTSTRAP argument and --bootstrap name different files');
  const bootstrap = flags.bootstrap ?? given;
  if (flags.source || flags.target) {
    if (bootstrap !== undefined) throw new InvalidArgumentError('a bootstrap file is checked on its own, not with --source / --target');
    if (!flags.target) throw new InvalidArgumentError('--source goes with --target');
    if (!flags.source) return checkTarget(flags as CheckFlags & { target: string });
    return checkAgainstSource(flags as CheckFlags & { source: string; target: string });
  }
  if (!bootstrap) throw new InvalidArgumentError('give a bootstrap (BOOTSTRAP or --bootstrap), --target, or --source and --target');
  return checkLocal(bootstrap, flags.blobDir);
}

export function checkCommand(): Command {
  return new Command('check')
    .description('validate a bootstrap (with --blob-dir: every chunk), a Nydus image (--target), or a converted image against its source')
    .argument('[bootstrap]', 'bootstrap to check (as nydus-image check takes it)')
    .option('--bootstrap <file>', 'bootstrap to check')
    .option('--blob-dir <dir>', 'directory holding the data blobs')
    .option('--source <ref>', 'the original OCI image (registry reference or oci:DIR[:TAG])')
    .option('--target <ref>', 'the converted Nydus image')
    .option('--with-data', 'also compare file contents, read through the Nydus blobs')
    .option('--platform <os/arch[/variant]>', 'platform to check in multi-platform images (default linux/amd64)')
    .option('--plain-http', 'talk plain HTTP to the registries')
    .option('--source-insecure', 'skip TLS verification for the source registry')
    .option('--target-insecure', 'skip TLS verification for the target registry')
    .action(check);
}
