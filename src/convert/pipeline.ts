// `convert`: an OCI image (registry or OCI layout) in, a Nydus image out. Each source layer is
// streamed from the source straight into the layer builder (bounded parallelism), the layer
// bootstraps are merged, and only when every layer has been built are blobs, the bootstrap
// layer, the config and finally the manifest (and index) pushed — a failure leaves the target's
// tag untouched. With keepStargz, eStargz / zstd:chunked source layers are kept as they are
// (kept-stargz-layer.ts) and only the other layers are converted: one image mixes both kinds.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobLayerDescriptor, bootstrapLayer, nydusConfig, sha256Digest } from './nydus-image.js';
import { forEachLimited } from '../util/concurrency.js';
import { RafsImage } from '../rafs/reader.js';
import type { Bootstrap, Compressor, Digester, TreeNode } from '../rafs/tree.js';
import { writeBootstrap } from '../rafs/writer.js';
import type { BlobContent } from '../registry/blob-content.js';
import { MAX_CONFIG_BYTES, readBlob, type FetchedManifest, type ImageStore } from '../registry/image-store.js';
import { MediaType, type Descriptor, type ImageIndex, type ImageManifest, type Platform } from '../registry/media-types.js';
import { formatPlatform, parsePlatform, platformMatches } from '../registry/platform.js';
import { isStargzLayer } from '../registry/stargz-layers.js';
import { NYDUS_OS_FEATURE } from '../registry/nydus-layers.js';
import { log } from '../util/log.js';
import { noProgress, type ProgressSink } from '../util/progress.js';
import { createLayer, type CreateResult } from './create.js';
import { keptStargzLayer, type KeptStargzLayer } from './kept-stargz-layer.js';
import { mergeLayers } from './merge.js';
import type { ChunkDict } from './chunk-dict.js';
import type { BuildCache } from './build-cache.js';

export interface ConvertOptions {
  source: ImageStore;
  sourceReference?: string;
  target: ImageStore;
  targetReference?: string;
  /**
   * os/arch[/variant] of the images to convert from an index (default linux/amd64), unless
   * allPlatforms; more than one makes the target an index of them.
   */
  platforms?: string[];
  allPlatforms?: boolean;
  /**
   * The target is an index holding the source's manifests and the Nydus ones, each Nydus one marked
   * with the os.feature nydus.remoteimage.v1 (nydusify --merge-platform): runtimes without Nydus
   * support take the first, ours the second. The source's manifests and blobs are copied to the target.
   */
  mergePlatform?: boolean;
  /** Each Nydus manifest names the manifest it was converted from as its subject (an OCI referrer of it). */
  withReferrer?: boolean;
  /** Chunks this dictionary has are referred to in its blobs, which become data layers of the target. */
  chunkDict?: ChunkDict;
  /** Layers converted before are taken from it, layers converted now are added to it (saved once the target is pushed). */
  buildCache?: BuildCache;
  compressor: Compressor;
  /** Must be sha256 when stargz layers are kept: theirs is, and one image has one digester. */
  digester: Digester;
  chunkSize: number;
  /** Keep eStargz / zstd:chunked layers as they are instead of converting them. */
  keepStargz?: boolean;
  /** A Docker-typed source becomes an OCI-typed target (manifest, config, layers, index), as nydusify --oci. */
  oci?: boolean;
  /** Absolute paths (byte strings) for the prefetch table. */
  prefetch?: string[];
  workDir?: string;
  /** Layers built at once. */
  layerConcurrency?: number;
  /** A progress bar per layer (bytes of the source layer read). */
  progressFor?: (label: string, total: number) => ProgressSink;
}

export interface LayerReport {
  sourceDigest: string;
  sourceSize: number;
  blobDigest: string;
  blobSize: number;
  seconds: number;
  /** Set for a layer kept as it is: its format. */
  kept?: KeptStargzLayer['kind'];
  /** Set for a layer taken from the build cache. */
  cached?: true;
  stats: CreateResult['stats'] | { entries: number; chunks: number };
}

export interface ManifestReport {
  platform?: string;
  digest: string;
  layers: LayerReport[];
  bootstrapSize: number;
}

export interface ConvertReport {
  /** Digest of what the target reference now points at (a manifest or an index). */
  digest: string;
  mediaType: string;
  manifests: ManifestReport[];
  seconds: number;
}

export class ConvertError extends Error {}

export async function convertImage(opts: ConvertOptions): Promise<ConvertReport> {
  const started = performance.now();
  const workDir = await mkdtemp(join(opts.workDir ?? tmpdir(), 'nydusify-convert-'));
  try {
    const top = await opts.source.getManifest(opts.sourceReference);
    const sources: { manifest: ManifestOf; platform?: Platform }[] = top.kind === 'manifest'
      ? [{ manifest: top as ManifestOf }]
      : await Promise.all(chosenEntries(top.parsed as ImageIndex, opts).map(async (entry) => ({ manifest: await indexEntry(opts.source, entry), platform: entry.platform })));
    const built: Built[] = [];
    for (const [i, source] of sources.entries()) built.push(await convertManifest(opts, source.manifest, join(workDir, `m${i}`), source.platform));
    const published = await publishConverted(opts, top, sources, built);
    // the cache's records name what was just pushed: kept once the target is there
    await opts.buildCache?.save();
    return { ...published, seconds: elapsed(started) };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Pushes the converted manifests: one as it is, or an index of them (with the sources' own, for --merge-platform). */
async function publishConverted(
  opts: ConvertOptions, top: Awaited<ReturnType<ImageStore['getManifest']>>, sources: { manifest: ManifestOf }[], built: Built[],
): Promise<Omit<ConvertReport, 'seconds'>> {
  if (!opts.mergePlatform && built.length === 1 && !(top.kind === 'index' && opts.allPlatforms)) {
    const digest = await publish(opts.target, built[0]!, opts.targetReference);
    return { digest, mediaType: built[0]!.mediaType, manifests: [{ ...built[0]!.report, digest }] };
  }
  const reports: ManifestReport[] = [];
  const descriptors: Descriptor[] = [];
  if (opts.mergePlatform) {
    for (const [i, { manifest }] of sources.entries()) descriptors.push({ ...(await copyManifest(opts.source, opts.target, manifest)), platform: built[i]!.platform });
  }
  for (const b of built) {
    const digest = await publish(opts.target, b, undefined);
    reports.push({ ...b.report, digest });
    const platform = opts.mergePlatform ? { ...b.platform, 'os.features': [...(b.platform['os.features'] ?? []), NYDUS_OS_FEATURE] } : b.platform;
    descriptors.push({ mediaType: b.mediaType, digest, size: b.manifest.length, platform });
  }
  const indexType = !opts.oci && (top.mediaType === MediaType.dockerManifestList || top.mediaType === MediaType.dockerManifest) ? MediaType.dockerManifestList : MediaType.ociIndex;
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: indexType, manifests: descriptors }));
  const digest = await opts.target.putManifest(index, indexType, opts.targetReference);
  return { digest, mediaType: indexType, manifests: reports };
}

async function indexEntry(source: ImageStore, entry: Descriptor): Promise<ManifestOf> {
  const manifest = await source.getManifest(entry.digest);
  if (manifest.kind !== 'manifest') throw new ConvertError(`${source.name}: index entry ${entry.digest} is not an image manifest`);
  return manifest as ManifestOf;
}

/** The source's manifest and its blobs in the target (mounted from the source where the registry can), by digest. */
async function copyManifest(source: ImageStore, target: ImageStore, manifest: ManifestOf): Promise<Descriptor> {
  const blobs = [manifest.parsed.config, ...manifest.parsed.layers].map((descriptor) => ({ descriptor, content: () => source.getBlob(descriptor.digest), mountFrom: source }));
  const digest = await publish(target, { mediaType: manifest.mediaType, manifest: manifest.bytes, blobs }, undefined);
  return { mediaType: manifest.mediaType, digest, size: manifest.bytes.length };
}

type ManifestOf = FetchedManifest & { kind: 'manifest'; parsed: ImageManifest };

/** A manifest ready to push and the blobs it names (on local disk, or in a store to mount or copy them from). */
export interface PushableManifest {
  mediaType: string;
  manifest: Buffer;
  blobs: { descriptor: Descriptor; content: BlobContent; mountFrom?: ImageStore }[];
}

/** A converted manifest ready to push. */
interface Built extends PushableManifest {
  report: Omit<ManifestReport, 'digest'>;
  /** Its index entry's platform, else its config's. */
  platform: Platform;
}

const elapsed = (since: number): number => Math.round(performance.now() - since) / 1000;

/** The index entries to convert: every image's (allPlatforms), or one per platform asked for, each once. */
function chosenEntries(index: ImageIndex, opts: ConvertOptions): Descriptor[] {
  // attestation entries, and Nydus manifests of an index merged before (their sources are beside them)
  const images = index.manifests.filter((m) => m.platform?.os !== 'unknown' && !m.platform?.['os.features']?.includes(NYDUS_OS_FEATURE));
  if (opts.allPlatforms) return images;
  const chosen = (opts.platforms?.length ? opts.platforms : ['linux/amd64']).map((p) => {
    const want = parsePlatform(p);
    const entry = images.find((m) => m.platform && platformMatches(want, m.platform));
    if (!entry) {
      const have = images.map((m) => (m.platform ? formatPlatform(m.platform) : '?')).join(', ');
      throw new ConvertError(`${opts.source.name}: no image for platform ${formatPlatform(want)} (the index has ${have})`);
    }
    return entry;
  });
  return [...new Set(chosen)];
}

async function convertManifest(opts: ConvertOptions, src: ManifestOf, dir: string, entryPlatform?: Platform): Promise<Built> {
  const docker = !opts.oci && src.mediaType === MediaType.dockerManifest;
  const manifest = src.parsed;
  const config = JSON.parse((await readBlob(opts.source, manifest.config, MAX_CONFIG_BYTES)).toString('utf8')) as Record<string, unknown>;
  const blobDir = join(dir, 'blobs');
  await mkdir(blobDir, { recursive: true });
  const sourceDiffIds = opts.keepStargz ? diffIdsOf(config, manifest.layers.length) : [];
  const layers: BuiltLayer[] = new Array(manifest.layers.length);
  await forEachLimited([...manifest.layers.entries()], opts.layerConcurrency ?? 2, async ([i, layer]) => {
    layers[i] = opts.keepStargz && isStargzLayer(layer)
      ? await keepLayer(opts.source, layer, i, sourceDiffIds[i]!)
      : await cachedLayer(opts, layer, i) ?? await convertLayer(opts, layer, i, dir, blobDir);
  });
  const merged = mergeLayers(layers.map((l) => l.model), { prefetch: opts.prefetch });
  const dictLayers = await chunkDictLayers(opts, new Set(merged.blobs.map((b) => b.blobId)));
  const bootstrap = writeBootstrap(merged);
  const bootLayer = await bootstrapLayer(bootstrap, docker);
  const dataLayers = [...layers.map((l) => l.blob), ...dictLayers];
  // a kept layer keeps its own diff_id; a Nydus blob's is its digest
  const newConfig = Buffer.from(JSON.stringify(nydusConfig(config, [...layers.map((l) => l.diffId), ...dictLayers.map((l) => l.descriptor.digest), bootLayer.diffId])));
  const configType = opts.oci && manifest.config.mediaType === MediaType.dockerConfig ? MediaType.ociConfig : manifest.config.mediaType;
  const configDescriptor: Descriptor = { mediaType: configType, digest: sha256Digest(newConfig), size: newConfig.length };
  const mediaType = docker ? MediaType.dockerManifest : MediaType.ociManifest;
  const out: ImageManifest = { schemaVersion: 2, mediaType, config: configDescriptor, layers: [...dataLayers.map((l) => l.descriptor), bootLayer.descriptor] };
  if (opts.withReferrer) out.subject = { mediaType: src.mediaType, digest: src.digest, size: src.bytes.length };
  if (manifest.annotations) out.annotations = manifest.annotations;
  return {
    mediaType,
    platform: entryPlatform ?? configPlatform(config),
    manifest: Buffer.from(JSON.stringify(out)),
    // a dictionary blob already in the target (a bootstrap file's) is not pushed
    blobs: [...dataLayers.filter((l) => l.content !== undefined) as Built['blobs'], { descriptor: bootLayer.descriptor, content: bootLayer.blob }, { descriptor: configDescriptor, content: newConfig }],
    report: { layers: layers.map((l) => l.report), bootstrapSize: bootstrap.length },
  };
}

/**
 * The chunk dictionary's blobs among `used` (the merged bootstrap's), as data layers: an image
 * dictionary's layers (mounted or copied from it), or the target's own blobs for a bootstrap file's
 * dictionary (which must be there: nothing else has them).
 */
async function chunkDictLayers(opts: ConvertOptions, used: ReadonlySet<string>): Promise<{ descriptor: Descriptor; content?: BlobContent; mountFrom?: ImageStore }[]> {
  const dict = opts.chunkDict;
  if (!dict) return [];
  return Promise.all(dict.blobs.filter((b) => used.has(b.blobId)).map(async ({ blobId }) => {
    const digest = `sha256:${blobId}`;
    if (dict.image) {
      const descriptor = dict.image.layers.get(digest);
      if (!descriptor) throw new ConvertError(`the chunk dictionary's blob ${blobId} is not a layer of its image`);
      const { store } = dict.image;
      return { descriptor, content: () => store.getBlob(digest), mountFrom: store };
    }
    const size = await opts.target.blobSize(digest).catch((err: unknown) => {
      throw new ConvertError(`the chunk dictionary's blob ${blobId} is not in ${opts.target.name} (${(err as Error).message}): push the dictionary image there, or give it as bootstrap:registry:REF`);
    });
    return { descriptor: blobLayerDescriptor(blobId, size) };
  }));
}

/** The platform an image config declares (os, architecture, variant). */
function configPlatform(config: Record<string, unknown>): Platform {
  const field = (k: string): string | undefined => (typeof config[k] === 'string' && config[k] !== '' ? config[k] as string : undefined);
  const variant = field('variant');
  return { os: field('os') ?? 'linux', architecture: field('architecture') ?? 'amd64', ...(variant ? { variant } : {}) };
}

/** One layer of the target: its model for the merge, its blob to push, its diff_id and report. */
interface BuiltLayer {
  model: Bootstrap;
  blob: Built['blobs'][number];
  diffId: string;
  report: LayerReport;
}

/** The source config's diff_ids, one per layer: a kept layer keeps its own. */
function diffIdsOf(config: Record<string, unknown>, layers: number): string[] {
  const diffIds = (config.rootfs as { diff_ids?: unknown } | undefined)?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== layers || !diffIds.every((d) => typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d))) {
    throw new ConvertError(`the source config's rootfs.diff_ids are not ${layers} sha256 digests, one per layer`);
  }
  return diffIds as string[];
}

/** A stargz-family layer kept as it is: the same blob (mounted or copied to the target), its TOC as its model. */
async function keepLayer(source: ImageStore, layer: Descriptor, i: number, diffId: string): Promise<BuiltLayer> {
  const started = performance.now();
  try {
    const kept = await keptStargzLayer(source, layer);
    const report: LayerReport = {
      sourceDigest: layer.digest, sourceSize: layer.size, blobDigest: layer.digest, blobSize: layer.size, seconds: elapsed(started),
      kept: kept.kind, stats: { entries: kept.entries, chunks: kept.model.blobs[0]?.chunkCount ?? 0 },
    };
    log.info('layer kept', { layer: i + 1, source: layer.digest, kind: kept.kind, ...report.stats, seconds: report.seconds });
    return { model: kept.model, blob: { descriptor: layer, content: () => source.getBlob(layer.digest), mountFrom: source }, diffId, report };
  } catch (err) {
    throw new ConvertError(`layer ${i + 1} (${layer.digest}): ${(err as Error).message}`, { cause: err });
  }
}

async function convertLayer(opts: ConvertOptions, layer: Descriptor, i: number, dir: string, blobDir: string): Promise<BuiltLayer> {
  const started = performance.now();
  const progress = opts.progressFor?.(`layer ${i + 1} ${layer.digest.slice(7, 19)}`, layer.size) ?? noProgress;
  progress.setTotal(layer.size);
  const bootstrapPath = join(dir, `layer-${i}.boot`);
  try {
    const result = await createLayer({
      source: counted(await opts.source.getBlob(layer.digest), progress), bootstrapPath, blobDir, compressor: opts.compressor, digester: opts.digester, chunkSize: opts.chunkSize,
      chunkDict: opts.chunkDict,
    });
    const report = {
      sourceDigest: layer.digest, sourceSize: layer.size, blobDigest: `sha256:${result.blobId}`, blobSize: result.blobSize,
      seconds: elapsed(started), stats: result.stats,
    };
    log.info('layer converted', { layer: i + 1, source: layer.digest, blob: report.blobDigest, ...result.stats, seconds: report.seconds });
    const descriptor = blobLayerDescriptor(result.blobId, result.blobSize);
    const bootstrap = await readFile(bootstrapPath);
    const model = RafsImage.open(bootstrap).toBootstrap();
    opts.buildCache?.put(layer.digest, descriptor, { path: result.blobPath }, bootstrap, opts.target);
    return { model, blob: { descriptor, content: { path: result.blobPath } }, diffId: descriptor.digest, report };
  } catch (err) {
    throw new ConvertError(`layer ${i + 1} (${layer.digest}): ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The layer as the build cache has it, if it does: its blob (mounted or copied from the cache's
 * repository) and its layer bootstrap, which may name no blob but that one and the chunk
 * dictionary's (a record that does is left, and the layer converted).
 */
async function cachedLayer(opts: ConvertOptions, layer: Descriptor, i: number): Promise<BuiltLayer | undefined> {
  const started = performance.now();
  const cached = await opts.buildCache?.get(layer.digest);
  if (!cached) return undefined;
  const blobId = cached.blob.digest.slice('sha256:'.length);
  let model: Bootstrap;
  try {
    model = RafsImage.open(cached.bootstrap).toBootstrap();
  } catch (err) {
    log.warn('a build cache record holds no layer bootstrap: the layer is converted again', { layer: i + 1, error: (err as Error).message });
    return undefined;
  }
  const allowed = new Set([blobId, ...(opts.chunkDict?.blobs.map((b) => b.blobId) ?? [])]);
  const own = model.blobs.find((b) => b.blobId === blobId);
  if (model.blobs.some((b) => !allowed.has(b.blobId)) || model.chunkSize !== opts.chunkSize || model.digester !== opts.digester) {
    log.warn('a build cache record does not fit this conversion: the layer is converted again', { layer: i + 1, blob: cached.blob.digest });
    return undefined;
  }
  const descriptor = blobLayerDescriptor(blobId, cached.blob.size);
  const report: LayerReport = {
    sourceDigest: layer.digest, sourceSize: layer.size, blobDigest: descriptor.digest, blobSize: descriptor.size, seconds: elapsed(started),
    cached: true, stats: { entries: countEntries(model.root), chunks: own?.chunkCount ?? 0 },
  };
  log.info('layer taken from the build cache', { layer: i + 1, source: layer.digest, blob: descriptor.digest });
  const { store } = cached;
  return { model, blob: { descriptor, content: () => store.getBlob(descriptor.digest), mountFrom: store }, diffId: descriptor.digest, report };
}

function countEntries(node: TreeNode): number {
  let n = 1;
  for (const child of node.children?.values() ?? []) n += countEntries(child);
  return n;
}

/** The same bytes, reported to `progress` as they pass. */
async function* counted(source: AsyncIterable<Buffer>, progress: ProgressSink): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    progress.advance(chunk.length);
    yield chunk;
  }
}

/** Pushes blobs, then the manifest (last): until it lands the target reference is unchanged. */
export async function publish(target: ImageStore, built: PushableManifest, tag: string | undefined): Promise<string> {
  await forEachLimited(built.blobs, 3, async ({ descriptor, content, mountFrom }) => {
    const how = await target.putBlob(descriptor, content, { mountFrom });
    log.debug('blob pushed', { digest: descriptor.digest, size: descriptor.size, how });
  });
  return target.putManifest(built.manifest, built.mediaType, tag);
}
