// `optimize`: a Nydus image and an access trace of it in, the same image laid out for that trace
// out (convert/hot-layout.ts): the files the trace read move, cut at the hot chunk size, into one
// new blob that starts with every chunk the trace touched, in first-touch order; every other file
// keeps its chunks in the source's blobs, which are mounted or copied to the target unchanged. The
// target manifest names the kept blobs, the hot blob (its hot region's size annotated) and the new
// bootstrap, and is pushed last: a refusal or a failure pushes nothing, or leaves the tag as it was.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildHotBlob } from '../convert/hot-blob.js';
import { type HotPackFile, writeHotPack } from '../convert/hot-pack-file.js';
import { formatHotPackIndex } from '../rafs/hot-pack.js';
import { DEFAULT_HOT_CHUNK_SIZE } from '../trace/access-trace.js';
import { assertHotChunkSize, type HotLayout, OptimizeError, optimizedTree, planHotLayout } from '../convert/hot-layout.js';
import { blobLayerDescriptor, bootstrapLayer, sha256Digest } from '../convert/nydus-image.js';
import { publish, type PushableManifest } from '../convert/pipeline.js';
import type { Bootstrap } from '../rafs/tree.js';
import { writeBootstrap } from '../rafs/writer.js';
import { MAX_CONFIG_BYTES, readBlob, type ImageStore } from '../registry/image-store.js';
import { MediaType, type Descriptor, type ImageManifest } from '../registry/media-types.js';
import { Annotation, isNydusBootstrap } from '../registry/nydus-layers.js';
import type { AccessTrace } from '../trace/access-trace.js';
import { log } from '../util/log.js';
import type { HotBlob } from '../convert/hot-blob.js';
import { openRemoteNydusImage } from './remote.js';

export interface OptimizeOptions {
  source: ImageStore;
  sourceReference?: string;
  /** os/arch[/variant] when the source is an index (default linux/amd64). */
  platform?: string;
  target: ImageStore;
  targetReference?: string;
  trace: AccessTrace;
  /** Chunk size of the hot blob (default 64 KiB). */
  hotChunkSize?: number;
  workDir?: string;
}

export interface OptimizeReport {
  /** Digest of the target manifest. */
  digest: string;
  /** sha256 of the source's bootstrap (the trace's). */
  sourceBootstrap: string;
  hotFiles: number;
  hotChunkSize: number;
  /** Chunks of the hot region, and of the whole hot blob (before dedup). */
  hotRegionChunks: number;
  hotBlobChunks: number;
  /** Uncompressed bytes of the hot region's chunks. */
  touchedBytes: number;
  /** Compressed bytes of the hot region: the annotation's value. */
  hotRegionBytes: number;
  /** Compressed bytes of the source chunks those chunks overlap. */
  sourceTouchedBytes: number;
  /** What the traced mount fetched from the source (the trace's fetches). */
  tracedFetchBytes: number;
  hotBlob: { digest: string; size: number };
  /** The hot region's chunks packed in a few large frames (rafs/hot-pack.ts): what a cold start fetches instead. */
  hotPack?: { digest: string; size: number; frames: number };
  keptBlobs: string[];
  droppedBlobs: string[];
  bootstrapSize: number;
  seconds: number;
}

export async function optimizeImage(opts: OptimizeOptions): Promise<OptimizeReport> {
  const started = performance.now();
  const hotChunkSize = opts.hotChunkSize ?? DEFAULT_HOT_CHUNK_SIZE;
  assertHotChunkSize(hotChunkSize);
  const image = await openRemoteNydusImage(opts.source, opts.sourceReference, opts.platform);
  const layers = image.manifest.layers;
  if (!isNydusBootstrap(layers.at(-1) ?? {})) throw new OptimizeError(`${opts.source.name}: not a Nydus image (its last layer is no Nydus bootstrap layer)`);
  if (image.problems.length > 0) throw new OptimizeError(`${opts.source.name}: not a well-formed Nydus image: ${image.problems.join('; ')}`);
  const sourceBootstrap = createHash('sha256').update(image.bootstrap).digest('hex');
  const model = image.rafs.toBootstrap();
  const layout = planHotLayout(model, sourceBootstrap, opts.trace, hotChunkSize);
  const tree = optimizedTree(model, layout);
  const workDir = await mkdtemp(join(opts.workDir ?? tmpdir(), 'nydusify-optimize-'));
  try {
    const hot = await buildHotBlob({ source: model, layout, tree, blobDir: workDir, read: (ref) => image.chunks.read(ref) });
    const pack = await writeHotPack(hot.info, hot.blobPath, hot.chunks, hot.hotRegionSize, workDir);
    const bootstrap = writeBootstrap(hot.bootstrap);
    const config = JSON.parse((await readBlob(opts.source, image.manifest.config, MAX_CONFIG_BYTES)).toString('utf8')) as Record<string, unknown>;
    const pushable = await optimizedManifest({ source: opts.source, manifest: image.manifest, config, model, layout, hot, pack, bootstrap });
    const digest = await publish(opts.target, pushable, opts.targetReference);
    const report: OptimizeReport = {
      digest,
      sourceBootstrap,
      hotFiles: layout.files.length,
      hotChunkSize,
      hotRegionChunks: layout.hotRegionChunks,
      hotBlobChunks: layout.chunks.length,
      touchedBytes: layout.touchedBytes,
      hotRegionBytes: hot.hotRegionSize,
      sourceTouchedBytes: layout.sourceTouchedBytes,
      tracedFetchBytes: opts.trace.fetches.reduce((sum, f) => sum + f.bytes, 0),
      hotBlob: { digest: `sha256:${hot.blobId}`, size: hot.blobSize },
      ...(pack ? { hotPack: { digest: `sha256:${pack.id}`, size: pack.size, frames: pack.index.frames.length } } : {}),
      keptBlobs: layout.keptBlobs.map((i) => `sha256:${model.blobs[i]!.blobId}`),
      droppedBlobs: layout.droppedBlobs.map((i) => `sha256:${model.blobs[i]!.blobId}`),
      bootstrapSize: bootstrap.length,
      seconds: Math.round(performance.now() - started) / 1000,
    };
    log.info('image optimized', { digest, hotFiles: report.hotFiles, hotRegionBytes: report.hotRegionBytes, touchedBytes: report.touchedBytes, kept: report.keptBlobs.length, dropped: report.droppedBlobs.length });
    return report;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

interface ManifestParts {
  source: ImageStore;
  manifest: ImageManifest;
  config: Record<string, unknown>;
  model: Bootstrap;
  layout: HotLayout;
  hot: HotBlob;
  pack: HotPackFile | undefined;
  bootstrap: Buffer;
}

/**
 * The target manifest and its blobs: the kept source layers as they were (with their diff_ids),
 * the hot blob, the bootstrap layer, and the source config with those diff_ids.
 */
async function optimizedManifest(p: ManifestParts): Promise<PushableManifest> {
  const docker = p.manifest.mediaType === MediaType.dockerManifest;
  const diffIds = (p.config.rootfs as { diff_ids: string[] }).diff_ids;
  const kept = p.layout.keptBlobs.map((i) => {
    const at = p.manifest.layers.findIndex((l) => l.digest === `sha256:${p.model.blobs[i]!.blobId}`);
    return { descriptor: p.manifest.layers[at]!, diffId: diffIds[at]! };
  });
  const plain = blobLayerDescriptor(p.hot.blobId, p.hot.blobSize);
  const hotDescriptor: Descriptor = { ...plain, annotations: { ...plain.annotations, [Annotation.HOT_REGION]: String(p.hot.hotRegionSize) } };
  const packDescriptors: Descriptor[] = p.pack ? [packLayerDescriptor(p.pack)] : [];
  const bootLayer = await bootstrapLayer(p.bootstrap, docker);
  const config = Buffer.from(JSON.stringify({ ...p.config, rootfs: { type: 'layers', diff_ids: [...kept.map((k) => k.diffId), ...packDescriptors.map((d) => d.digest), hotDescriptor.digest, bootLayer.diffId] } }));
  const configDescriptor: Descriptor = { mediaType: p.manifest.config.mediaType, digest: sha256Digest(config), size: config.length };
  const mediaType = docker ? MediaType.dockerManifest : MediaType.ociManifest;
  // the pack before the hot blob: the hot blob stays the layer before the bootstrap
  const out: ImageManifest = { schemaVersion: 2, mediaType, config: configDescriptor, layers: [...kept.map((k) => k.descriptor), ...packDescriptors, hotDescriptor, bootLayer.descriptor] };
  if (p.manifest.annotations) out.annotations = p.manifest.annotations;
  return {
    mediaType,
    manifest: Buffer.from(JSON.stringify(out)),
    blobs: [
      ...kept.map((k) => ({ descriptor: k.descriptor, content: () => p.source.getBlob(k.descriptor.digest), mountFrom: p.source })),
      ...packDescriptors.map((descriptor) => ({ descriptor, content: { path: p.pack!.path } })),
      { descriptor: hotDescriptor, content: { path: p.hot.blobPath } },
      { descriptor: bootLayer.descriptor, content: bootLayer.blob },
      { descriptor: configDescriptor, content: config },
    ],
  };
}

/** The hot pack's layer: a Nydus blob layer to every other reader, its frames on the annotation. */
function packLayerDescriptor(pack: HotPackFile): Descriptor {
  const plain = blobLayerDescriptor(pack.id, pack.size);
  return { ...plain, annotations: { ...plain.annotations, [Annotation.HOT_PACK]: formatHotPackIndex(pack.index) } };
}
