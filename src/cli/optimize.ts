// `nydusify-ts optimize`: a Nydus image laid out again for an access trace, hot files first. The
// trace is a file (--trace), or recorded here by running a command over the mounted image (--run).
import { Command, InvalidArgumentError, Option } from 'commander';
import { assertHotChunkSize } from '../convert/hot-layout.js';
import { DEFAULT_HOT_CHUNK_SIZE } from '../trace/access-trace.js';
import { runTraced } from '../daemon/traced-run.js';
import { optimizeImage } from '../image/optimize.js';
import { readTraceFile } from '../image/trace-file.js';
import { clientForReferences } from '../registry/client.js';
import { openImageStore } from '../registry/open-image-store.js';
import { parseImageLocation } from '../registry/reference.js';
import type { AccessTrace } from '../trace/access-trace.js';
import { log } from '../util/log.js';
import { parseSize, writeJson } from './options.js';

interface OptimizeFlags {
  source: string;
  target: string;
  trace?: string;
  run?: boolean;
  hotChunkSize: number;
  platform?: string;
  workDir?: string;
  plainHttp?: boolean;
  sourceInsecure?: boolean;
  targetInsecure?: boolean;
  pushRetryCount: number;
  outputJson?: string;
}

function parseHotChunkSize(value: string): number {
  const size = parseSize(value);
  try {
    assertHotChunkSize(size);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return size;
}

async function optimize(command: string[], flags: OptimizeFlags): Promise<void> {
  if (flags.run && command.length === 0) throw new InvalidArgumentError('--run needs the command to run: --run CMD [ARGS...]');
  if (!flags.run && command.length > 0) throw new InvalidArgumentError(`unknown option or argument ${command[0]} (a command is only run with --run)`);
  if (!flags.run && flags.trace === undefined) throw new InvalidArgumentError('give the trace: --trace FILE, or --run CMD [ARGS...] to record one');
  if (flags.run && parseImageLocation(flags.source).kind !== 'registry') throw new InvalidArgumentError('--run mounts the source from its registry: give a registry reference');
  const trace = flags.run ? await recordTrace(command, flags) : await readTraceFile(flags.trace!);
  const client = clientForReferences([[flags.source, flags.sourceInsecure], [flags.target, flags.targetInsecure]], flags.plainHttp, flags.pushRetryCount);
  try {
    const source = await openImageStore(flags.source, client);
    const target = await openImageStore(flags.target, client, { create: true });
    const report = await optimizeImage({
      source: source.store,
      sourceReference: source.reference,
      platform: flags.platform,
      target: target.store,
      targetReference: target.reference,
      trace,
      hotChunkSize: flags.hotChunkSize,
      workDir: flags.workDir,
    });
    log.info('optimized image pushed', { target: flags.target, digest: report.digest, seconds: report.seconds });
    await writeJson(flags.outputJson, report);
  } finally {
    await client.close();
  }
}

/** `command` run over the mounted source: the trace it left (kept at --trace when given). */
function recordTrace(command: string[], flags: OptimizeFlags): Promise<AccessTrace> {
  const mountArgs = [...(flags.plainHttp ? ['--plain-http'] : []), ...(flags.sourceInsecure ? ['--insecure'] : [])];
  return runTraced({ target: flags.source, mountArgs, command, traceFile: flags.trace, workDir: flags.workDir });
}

export function optimizeCommand(): Command {
  return new Command('optimize')
    .description('lay a Nydus image out again for an access trace: the files it read, cut at the hot chunk size, in one blob that starts with every chunk it touched')
    .argument('[command...]', 'with --run: the command to run in the image and its arguments (options of its own are passed on; put -- before it if one is also an option of optimize)')
    .requiredOption('--source <ref>', 'Nydus image: host[:port]/repo[:tag][@digest] or oci:DIR[:TAG]')
    .requiredOption('--target <ref>', 'where the optimized image goes, same forms')
    .option('--trace <file>', 'the access trace of the source (from `mount --trace`); with --run, where the recorded trace is kept')
    .option('--run', 'record the trace: mount the source and run the command chrooted in it, on a throwaway overlay (a command that fails is an error)')
    .addOption(new Option('--hot-chunk-size <bytes>', 'chunk size of the hot blob: a power of two from 4K to 1M').argParser(parseHotChunkSize).default(DEFAULT_HOT_CHUNK_SIZE, '16K'))
    .option('--platform <os/arch[/variant]>', 'platform to optimize from a multi-platform source (default linux/amd64)')
    .option('--work-dir <dir>', 'where to build the hot blob (default: the temp dir)')
    .option('--plain-http', 'talk plain HTTP to the registries (a loopback one answering TLS in plain HTTP is asked in plain HTTP anyway, as containerd does)')
    .option('--source-insecure', 'skip TLS verification for the source registry')
    .option('--target-insecure', 'skip TLS verification for the target registry')
    .option('--push-retry-count <n>', 'retries of failed registry requests', (v) => Number.parseInt(v, 10), 3)
    .option('--output-json <file>', 'write the layout\'s sizes (hot region, touched bytes, kept and dropped blobs) as JSON')
    // `--run node -e 1`: the command's own options are its arguments, not errors
    .allowUnknownOption()
    .action(optimize);
}
