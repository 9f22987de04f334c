// `nydusify-ts index`: a plain OCI image made lazy without touching it: each gzip layer streamed
// once and indexed (checkpoints of its gzip stream, a layer bootstrap over it), pushed with --push
// as an OCI artifact that refers to the image (image/gzip-index.ts).
import { Command, Option } from 'commander';
import { DEFAULT_GZIP_CHUNK_SIZE, DEFAULT_SPAN } from '../convert/targz-ref.js';
import { buildGzipIndex } from '../image/gzip-index.js';
import { clientForReferences } from '../registry/client.js';
import { resolveImage } from '../registry/image-store.js';
import { openImageStore } from '../registry/open-image-store.js';
import { log } from '../util/log.js';
import { chunkSizeOption, parseSize, writeJson } from './options.js';

interface IndexFlags {
  source: string;
  span: number;
  chunkSize: number;
  push?: boolean;
  platform?: string;
  plainHttp?: boolean;
  insecure?: boolean;
  outputJson?: string;
}

async function index(flags: IndexFlags): Promise<void> {
  const started = Date.now();
  const client = clientForReferences([[flags.source, flags.insecure]], flags.plainHttp);
  try {
    const { store, reference } = await openImageStore(flags.source, client);
    const { manifest } = await resolveImage(store, reference, flags.platform);
    const result = await buildGzipIndex(store, manifest, { chunkSize: flags.chunkSize, span: flags.span, push: flags.push });
    const summary = {
      image: manifest.digest, index: result.digest, pushed: flags.push === true, layers: result.layers,
      indexBytes: result.indexBytes, layerBytes: result.layerBytes, indexRatio: result.indexBytes / result.layerBytes, seconds: (Date.now() - started) / 1000,
    };
    log.info(flags.push ? 'gzip index pushed' : 'gzip index built (not pushed: --push)', { ...summary, layers: result.layers.length });
    await writeJson(flags.outputJson, summary);
  } finally {
    await client.close();
  }
}

export function indexCommand(): Command {
  return new Command('index')
    .description('index a plain OCI image\'s gzip layers as they are (checkpoints of each gzip stream and a layer bootstrap over it) so it mounts lazily; --push stores the index beside the image as an OCI referrer')
    .requiredOption('--source <ref>', 'the image: host[:port]/repo[:tag][@digest] or oci:DIR[:TAG]')
    .addOption(new Option('--span <bytes>', 'decoded bytes between checkpoints: a read decodes at most this much before its chunk').argParser(parseSize).default(DEFAULT_SPAN, '256K'))
    .addOption(chunkSizeOption().default(DEFAULT_GZIP_CHUNK_SIZE, '0x10000'))
    .option('--push', 'push the index to the image\'s repository (the referrers API, or the sha256-<digest> tag where the registry has none)')
    .option('--platform <os/arch[/variant]>', 'platform to index from a multi-platform image (default linux/amd64)')
    .option('--plain-http', 'talk plain HTTP to the registry')
    .option('--insecure', 'skip TLS verification for the registry')
    .option('--output-json <file>', 'write the index\'s digest and sizes (per layer, and over the image\'s layers) as JSON')
    .action(index);
}
