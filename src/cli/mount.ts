// `nydusify-ts mount`: serve a local RAFS image (bootstrap + blob directory) over FUSE in the
// foreground until it is unmounted or the process gets SIGINT/SIGTERM.
import { readFileSync, statSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { FuseSession, mountsAt } from '../daemon/fuse/session.js';
import { RafsImage } from '../rafs/reader.js';

interface MountFlags {
  bootstrap?: string;
  blobDir?: string;
  mountPath: string;
  threads: number;
  target?: string;
}

function parseThreads(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 64) throw new InvalidArgumentError('expected a thread count from 1 to 64.');
  return n;
}

async function mount(flags: MountFlags): Promise<void> {
  if (flags.target !== undefined) throw new Error('--target (mounting a registry image) is not yet supported: use --bootstrap and --blob-dir');
  if (flags.bootstrap === undefined) throw new Error("required option '--bootstrap <file>' not specified");
  // a stale mount of ours there (a dead daemon) may not even stat: the session cleans it up first
  if (mountsAt(flags.mountPath).length === 0 && !statSync(flags.mountPath, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`mount path ${flags.mountPath} is not a directory`);
  }
  // fail here, before mounting, on a bootstrap the workers could not open
  const image = RafsImage.open(readFileSync(flags.bootstrap));
  if (flags.blobDir === undefined && image.blobs.length > 0) throw new Error("required option '--blob-dir <dir>' not specified (the image has data blobs)");
  if (process.getuid?.() !== 0) throw new Error('mounting over /dev/fuse needs root');
  const session = new FuseSession({ bootstrap: flags.bootstrap, blobDir: flags.blobDir, mountPath: flags.mountPath, threads: flags.threads });
  await session.start();
  await session.wait();
}

export function mountCommand(): Command {
  return new Command('mount')
    .description('mount a Nydus image over FUSE (in the foreground, until unmounted or signalled)')
    .option('--bootstrap <file>', 'image bootstrap')
    .option('--blob-dir <dir>', 'directory holding the data blobs')
    .requiredOption('--mount-path <dir>', 'directory to mount on')
    .option('--threads <n>', 'FUSE serving threads', parseThreads, 2)
    .option('--target <ref>', 'registry image to mount (not yet supported)')
    .action(mount);
}
