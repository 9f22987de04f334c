// Indexes an image as `soci create` + `soci push` would (SOCI index v1, a referrer of the image):
// a zTOC made by soci's own code (soci-ztoc, make.sh) for each layer of at least 10 MiB (soci's
// default min-layer-size), 4 MiB spans (its default), pushed with the index manifest.
//
//   node bench/soci-ztoc/push-index.mjs 127.0.0.1:5000/debian-ml-soci:latest
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', '..', 'dist');
const { clientForReferences } = await import(join(dist, 'registry', 'client.js'));
const { openImageStore } = await import(join(dist, 'registry', 'index.js'));
const { resolveImage } = await import(join(dist, 'registry', 'image-store.js'));
const { MediaType } = await import(join(dist, 'registry', 'media-types.js'));
const { pushReferrer } = await import(join(dist, 'registry', 'referrers.js'));
const { SOCI_INDEX_V1, SOCI_LAYER_ANNOTATION } = await import(join(dist, 'image', 'soci-index.js'));

const MIN_LAYER = 10 << 20;
const SPAN = 4 << 20;
const EMPTY = { digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 };
const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const ref = process.argv[2];
if (!ref) throw new Error('usage: push-index.mjs HOST:PORT/REPO:TAG');
const tool = execFileSync('sh', [join(here, 'make.sh')], { encoding: 'utf8' }).trim();
const { store, reference } = await openImageStore(ref, clientForReferences([[ref, false]], true));
const { manifest } = await resolveImage(store, reference);
const work = mkdtempSync(join(tmpdir(), 'soci-ztoc-'));
const layers = [];
try {
  for (const layer of manifest.parsed.layers.filter((l) => l.size >= MIN_LAYER)) {
    const file = join(work, 'layer.tar.gz');
    await pipeline(await store.getBlob(layer.digest), createWriteStream(file));
    execFileSync(tool, ['-span', String(SPAN), '-out', `${file}.ztoc`, file]);
    const ztoc = readFileSync(`${file}.ztoc`);
    await store.putBlob({ digest: sha256(ztoc), size: ztoc.length }, ztoc);
    layers.push({
      mediaType: 'application/octet-stream', digest: sha256(ztoc), size: ztoc.length,
      annotations: { [SOCI_LAYER_ANNOTATION]: layer.digest, 'com.amazon.soci.image-layer-mediaType': layer.mediaType, 'com.amazon.soci.span-size': String(SPAN) },
    });
    process.stderr.write(`zTOC of ${layer.digest} (${layer.size} B): ${ztoc.length} B\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
await store.putBlob(EMPTY, Buffer.from('{}'));
const index = {
  schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: SOCI_INDEX_V1, config: { mediaType: SOCI_INDEX_V1, ...EMPTY }, layers,
  subject: { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length },
  annotations: { 'com.amazon.soci.build-tool-identifier': 'AWS SOCI CLI v0.2' },
};
await pushReferrer(store, Buffer.from(JSON.stringify(index)), MediaType.ociManifest);
process.stderr.write(`SOCI index v1 of ${ref}: ${layers.length} zTOCs\n`);
