// A build cache (nydusify --build-cache REF): layers converted before, kept in a registry image of
// their own and used again instead of converting the same source layer again. A record is a source
// layer's Nydus blob and its layer bootstrap, both layers of the cache image, annotated with the
// source layer's digest and what the conversion was (chunk size, compressor, digester, chunk
// dictionary, this format's version): a record of another kind of conversion is never used. The
// cache holds at most `maxRecords`, the most recently used first. Its records are not upstream
// nydusify's (whose layer bootstraps each hold the whole chain below them): the same flag, our own
// records. Whoever can write the cache image decides what a cached layer holds, as with upstream's;
// `check` compares an image with its source.
import { createHash } from 'node:crypto';
import { readBlob, type ImageStore } from '../registry/image-store.js';
import { MediaType, type Descriptor, type ImageManifest } from '../registry/media-types.js';
import { log } from '../util/log.js';
import { sha256Digest } from './nydus-image.js';
import type { BlobContent } from '../registry/blob-content.js';

const SOURCE = 'io.nydusify-ts.build-cache.source';
const KIND = 'io.nydusify-ts.build-cache.kind';
const ROLE = 'io.nydusify-ts.build-cache.role';
const CONFIG_TYPE = 'application/vnd.nydusify-ts.build-cache.config.v1+json';
const BOOTSTRAP_TYPE = 'application/vnd.nydusify-ts.layer-bootstrap.v1';
/** Bumped whenever the same source and options would convert to other bytes. */
const FORMAT = 'nydusify-ts build cache 1';
const MAX_CACHE_MANIFEST = 4 << 20;
const MAX_LAYER_BOOTSTRAP = 256 << 20;

export interface BuildCacheOptions {
  store: ImageStore;
  /** The cache image's tag in `store`. */
  tag?: string;
  maxRecords: number;
  /** What the conversion is: records of other conversions are left alone (and kept). */
  conversion: Record<string, string | number>;
}

/** A cached layer: its blob (in the cache's repository) and its layer bootstrap. */
export interface CachedLayer {
  blob: Descriptor;
  bootstrap: Buffer;
  store: ImageStore;
}

interface CacheRecord {
  blob: Descriptor;
  bootstrap: Descriptor;
}

export class BuildCache {
  private readonly kind: string;
  /** Records by source layer digest, least recently used first (Map order); this conversion's kind only. */
  private readonly records = new Map<string, CacheRecord>();
  /** Records of other kinds of conversion, kept as they are. */
  private readonly others: Descriptor[] = [];
  private readonly fresh = new Map<string, { blob: Descriptor; blobContent: BlobContent; mountFrom?: ImageStore; bootstrap: Buffer }>();

  private constructor(private readonly opts: BuildCacheOptions) {
    this.kind = createHash('sha256').update(JSON.stringify([FORMAT, Object.entries(opts.conversion).sort()])).digest('hex');
  }

  /** The cache image as it is now (none yet, or one that is not a cache: an empty cache that replaces it). */
  static async open(opts: BuildCacheOptions): Promise<BuildCache> {
    const cache = new BuildCache(opts);
    let manifest: ImageManifest | undefined;
    try {
      const got = await opts.store.getManifest(opts.tag);
      if (got.kind === 'manifest' && got.bytes.length <= MAX_CACHE_MANIFEST && got.parsed.config.mediaType === CONFIG_TYPE) manifest = got.parsed;
      else log.warn('the build cache image is not one: it is started again', { cache: opts.store.name });
    } catch (err) {
      log.info('no build cache yet', { cache: opts.store.name, reason: (err as Error).message });
    }
    cache.load(manifest?.layers ?? []);
    return cache;
  }

  private load(layers: Descriptor[]): void {
    const pending = new Map<string, Partial<CacheRecord>>();
    for (const layer of layers) {
      const source = layer.annotations?.[SOURCE];
      if (layer.annotations?.[KIND] !== this.kind || source === undefined) {
        this.others.push(layer);
        continue;
      }
      const record = pending.get(source) ?? {};
      if (layer.annotations[ROLE] === 'blob') record.blob = layer;
      else if (layer.annotations[ROLE] === 'bootstrap') record.bootstrap = layer;
      pending.set(source, record);
    }
    for (const [source, r] of pending) if (r.blob && r.bootstrap) this.records.set(source, r as CacheRecord);
  }

  /** The layer converted from `source` before, or undefined (a record that cannot be read is dropped). */
  async get(source: string): Promise<CachedLayer | undefined> {
    const record = this.records.get(source);
    if (!record) return undefined;
    try {
      const bootstrap = await readBlob(this.opts.store, record.bootstrap, MAX_LAYER_BOOTSTRAP);
      // used: first now
      this.records.delete(source);
      this.records.set(source, record);
      return { blob: record.blob, bootstrap, store: this.opts.store };
    } catch (err) {
      log.warn('a build cache record cannot be read: the layer is converted again', { source, error: (err as Error).message });
      this.records.delete(source);
      return undefined;
    }
  }

  /** Records a layer just converted (kept by `save`). */
  put(source: string, blob: Descriptor, blobContent: BlobContent, bootstrap: Buffer, mountFrom?: ImageStore): void {
    this.fresh.set(source, { blob, blobContent, bootstrap, ...(mountFrom ? { mountFrom } : {}) });
  }

  /** Pushes the new records and the cache image: the most recently used `maxRecords` of this kind, and the others. */
  async save(): Promise<void> {
    const { store } = this.opts;
    for (const [source, f] of this.fresh) {
      const bootstrap: Descriptor = { mediaType: BOOTSTRAP_TYPE, digest: sha256Digest(f.bootstrap), size: f.bootstrap.length };
      await store.putBlob(f.blob, f.blobContent, f.mountFrom ? { mountFrom: f.mountFrom } : {});
      await store.putBlob(bootstrap, f.bootstrap);
      this.records.delete(source);
      this.records.set(source, { blob: f.blob, bootstrap });
    }
    const kept = [...this.records].reverse().slice(0, this.opts.maxRecords);
    const annotate = (d: Descriptor, source: string, role: string): Descriptor => ({ ...d, annotations: { ...d.annotations, [SOURCE]: source, [KIND]: this.kind, [ROLE]: role } });
    const layers = [...kept.flatMap(([source, r]) => [annotate(r.blob, source, 'blob'), annotate(r.bootstrap, source, 'bootstrap')]), ...this.others];
    const config = Buffer.from(JSON.stringify({ format: FORMAT }));
    const configDescriptor: Descriptor = { mediaType: CONFIG_TYPE, digest: sha256Digest(config), size: config.length };
    await store.putBlob(configDescriptor, config);
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDescriptor, layers };
    await store.putManifest(Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest, this.opts.tag);
  }
}
