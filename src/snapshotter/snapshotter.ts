// The snapshotter itself, independent of gRPC: containerd's snapshot semantics over directories
// under ROOT/snapshots/ID/{fs,work} (like its overlayfs snapshotter) with the metadata in a durable
// store, plus remote Nydus layers: a Prepare whose labels describe a Nydus layer commits it at once
// under the requested name (empty: the daemon serves the data) and answers AlreadyExists, so
// containerd downloads nothing; a snapshot on top of a Nydus image gets the daemon's mount of the
// image as its lower dir. A plain image's layers, when their labels name the image, are pulled here
// whole (plain-pulls.ts) and committed the same way, each an EROFS mount at its `fs`. Every change
// is serialized: each is a read-check-update of the store (a layer's pull waits outside the queue).
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { log } from '../util/log.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from './errors.js';
import { CacheGc } from '../blobcache/cache-gc.js';
import { parseFilters } from './filters.js';
import { ImageMounts } from './image-mounts.js';
import { checkKey, checkLabels, isChainLayer, Label, labelsOf, plainLayer, type RemoteLayer, remoteLayer } from './labels.js';
import { GzipIndexes } from './gzip-indexes.js';
import { NotPlainImageError, PlainPulls, type PulledLayer } from './plain-pulls.js';
import { adoptLowerDirs } from '../image/apply-layer.js';
import { erofsLayersSupported, implicitDirsDiffer, layerMounted, materialize, mountLayer, unmountLayer } from './erofs-layers.js';
import { type Kind, MetadataStore, type SnapshotRecord } from './metadata.js';
import { type Mount, snapshotMounts } from './mounts.js';
import { diskUsage, type Usage } from './usage.js';

const blobIdOf = (digest: string): string => digest.slice('sha256:'.length);
/** How long an image mounted at pull stays mounted without a container. */
const PREMOUNT_TTL_MS = 10 * 60_000;

export interface SnapshotInfo {
  name: string;
  parent?: string;
  kind: Kind;
  createdAt: Date;
  updatedAt: Date;
  labels: Record<string, string>;
}

export interface SnapshotterOptions {
  /** Pull the layers of plain images containerd asks about (their labels name image and layer) itself, all at once (plain-pulls.ts). */
  fastPull?: boolean;
  /** The fast pull's download rate per image, in bytes per second (0 or none: no limit). */
  fastPullBandwidth?: number;
  /** Serve plain gzip images that have a gzip index lazily (their referrers are looked up at pull). */
  gzipIndex?: boolean;
}

/** A plain layer this snapshotter pulled, and its disk use. */
interface Pulled {
  layer: PulledLayer;
  usage: Usage;
}

/** The image an active snapshot or view reads through, and its other lower dirs. */
interface Lowers {
  dirs: string[];
  image?: { name: string; remote: RemoteLayer; index: number };
}

export class Snapshotter {
  readonly store: MetadataStore;
  private readonly dirs: string;
  /** Images being mounted at pull (premount): their pulls are under way. */
  private premounting = 0;
  /** Images mounted at pull, until PREMOUNT_TTL_MS has passed. */
  private readonly premounted = new Map<string, RemoteLayer>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly pulls: PlainPulls | undefined;
  private readonly gzipIndexes: GzipIndexes | undefined;

  /**
   * Without `images`, Nydus labels are ignored and every layer is unpacked (plain overlayfs). With
   * `cache` (the daemons' blob cache), remote layers report their cached bytes as usage and
   * Cleanup removes blobs no remote layer names any more.
   */
  constructor(readonly root: string, private readonly images?: ImageMounts, private readonly cache?: CacheGc, opts: SnapshotterOptions = {}) {
    this.dirs = join(root, 'snapshots');
    mkdirSync(this.dirs, { recursive: true, mode: 0o700 });
    this.store = new MetadataStore(root);
    if (opts.fastPull && images) {
      this.pulls = new PlainPulls(root, images.opts.config.registry, (layer) => images.authOf(layer), (chainId) => this.store.get(chainId)?.kind === 'committed', erofsLayersSupported(), { bandwidth: opts.fastPullBandwidth ?? 0 });
    }
    if (opts.gzipIndex && images) this.gzipIndexes = new GzipIndexes(images.opts.config.registry, (layer) => images.authOf(layer));
  }

  /** Removes what an earlier run left half done (pulls never committed). */
  async start(): Promise<void> {
    await this.pulls?.clearStale();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private fsDir(rec: SnapshotRecord): string {
    return join(this.dirs, rec.id, 'fs');
  }

  private find(key: string): SnapshotRecord {
    const rec = this.store.get(checkKey(key));
    if (!rec) throw new NotFoundError(`snapshot ${key} does not exist`);
    return rec;
  }

  prepare(key: string, parent: string, labels: unknown): Promise<Mount[]> {
    return this.create('active', key, parent, labels);
  }

  view(key: string, parent: string, labels: unknown): Promise<Mount[]> {
    return this.create('view', key, parent, labels);
  }

  /** The request checked, and an eStargz layer's TOC read outside the queue (other snapshots need it meanwhile). */
  private async create(kind: 'active' | 'view', key: string, parentKey: string, rawLabels: unknown): Promise<Mount[]> {
    checkKey(key);
    const labels = checkLabels(rawLabels);
    const remote = this.images ? remoteLayer(labels) ?? (await this.indexedLayer(labels, parentKey)) : undefined;
    const servable = await this.stargzServable(labels, remote);
    const pulled = remote ? undefined : await this.pulledLayer(labels, parentKey);
    return this.serial(() => this.createQueued(kind, key, parentKey, labels, remote, servable, pulled));
  }

  /**
   * A plain gzip layer whose image has a gzip index: served lazily like an eStargz layer (the image
   * is mounted ahead of its containers once the index is found). Undefined for any other layer, one
   * already committed, or one on layers that were pulled.
   */
  private async indexedLayer(labels: Record<string, string>, parentKey: string): Promise<RemoteLayer | undefined> {
    const layer = this.gzipIndexes ? plainLayer(labels) : undefined;
    const target = labels[Label.TARGET];
    if (!layer || target === undefined || this.store.get(target)) return undefined;
    if (parentKey !== '' && this.store.get(parentKey)?.remote?.role !== 'indexed') return undefined;
    const top = await this.gzipIndexes!.top(layer, (top) => this.premount(top));
    return top === undefined ? undefined : { ...layer, role: 'indexed' };
  }

  /**
   * A plain image's layer, pulled here (with fastPull, outside the queue: it takes a while); none for
   * other layers, or when the pull fails (containerd then pulls the layer itself).
   */
  private async pulledLayer(labels: Record<string, string>, parentKey: string): Promise<Pulled | undefined> {
    const layer = this.pulls ? plainLayer(labels) : undefined;
    const target = labels[Label.TARGET];
    if (!layer || target === undefined || this.store.get(target) || this.onRemoteLayers(parentKey)) return undefined;
    // containerd's own pull reads hosts.toml's mirrors; this one reads the registry alone, which a
    // node with mirrors may not reach at all
    if (this.images!.hasMirrors(layer.ref)) return undefined;
    try {
      const pulled = await this.pulls!.layer(layer, target, parentKey === '' ? undefined : parentKey);
      return { layer: pulled, usage: await diskUsage(pulled.dir) };
    } catch (err) {
      if (!(err instanceof NotPlainImageError)) log.warn('pulling a layer failed: containerd pulls it', { ref: layer.ref, layer: layer.digest, error: (err as Error).message });
      return undefined;
    }
  }

  /**
   * Whether a new eStargz layer can be served lazily (its TOC read and checked). Any other layer,
   * or one already committed, is not checked.
   */
  private async stargzServable(labels: Record<string, string>, remote: RemoteLayer | undefined): Promise<boolean> {
    const target = labels[Label.TARGET];
    if (remote?.role !== 'stargz' || target === undefined || this.store.get(target)) return true;
    return this.images!.stargzServable(remote, (top) => this.premount(top));
  }

  private async createQueued(kind: 'active' | 'view', key: string, parentKey: string, labels: Record<string, string>, remote: RemoteLayer | undefined, stargzServable: boolean, pulled: Pulled | undefined): Promise<Mount[]> {
    const parent = parentKey === '' ? undefined : checkKey(parentKey, 'parent');
    if (parent !== undefined) {
      const p = this.find(parent);
      if (p.kind !== 'committed') throw new InvalidArgumentError(`parent ${parent} is not committed`);
    }
    const target = labels[Label.TARGET];
    if (remote && target !== undefined && stargzServable && this.servesRemotely(remote, parent)) return this.commitRemote(target, parent, labels, remote);
    if (pulled && target !== undefined) return this.commitPulled(target, parent, labels, pulled);
    if (this.store.get(key)) throw new AlreadyExistsError(`snapshot ${key} already exists`);
    const lowers = this.lowersOf(parent);
    const id = await this.newDir();
    let image: string | undefined;
    try {
      if (lowers.image) {
        lowers.dirs[lowers.image.index] = await this.images!.acquire(lowers.image.name, lowers.image.remote);
        image = lowers.image.name;
      }
      const now = new Date().toISOString();
      await this.store.update((d) => {
        d.snapshots.set(key, { id, kind, ...(parent !== undefined ? { parent } : {}), labels, createdAt: now, updatedAt: now, ...(image ? { image } : {}) });
      });
    } catch (err) {
      await rm(join(this.dirs, id), { recursive: true, force: true });
      if (image) await this.releaseIfUnused(image);
      throw err;
    }
    return snapshotMounts({ kind, fs: join(this.dirs, id, 'fs'), work: join(this.dirs, id, 'work'), lowers: lowers.dirs });
  }

  /**
   * A Nydus layer: committed as `target` right away, with an empty directory, and reported as
   * existing (containerd then finds it by its target label and skips download and unpack). One
   * metadata write (the id and the record together): each is an fsync, and a pull commits its layers
   * one after another while containerd fsyncs too (two took 30–40 ms a layer).
   */
  private async commitRemote(target: string, parent: string | undefined, labels: Record<string, string>, remote: RemoteLayer): Promise<never> {
    checkKey(target, 'target');
    if (!this.store.get(target)) {
      const now = new Date().toISOString();
      const id = await this.store.update((d) => {
        const id = String(d.nextId++);
        d.snapshots.set(target, { id, kind: 'committed', ...(parent !== undefined ? { parent } : {}), labels, createdAt: now, updatedAt: now, usage: { size: 0, inodes: 1 }, remote });
        return id;
      });
      // nothing reads a remote layer's directory (its files are the image's mount): it only has to be there like any other's
      await this.makeDirs(id);
      log.info('remote layer committed', { target, ref: remote.ref, digest: remote.digest, role: remote.role });
      this.images?.pulled(remote, (top) => this.premount(top));
    }
    throw new AlreadyExistsError(`target snapshot ${target} already exists`);
  }

  /** Whether a layer on `parentKey` would lie over remote layers (an image's merged tree, not directories of its own). */
  private onRemoteLayers(parentKey: string): boolean {
    for (let key: string | undefined = parentKey === '' ? undefined : parentKey; key !== undefined; key = this.store.get(key)?.parent) {
      if (this.store.get(key)?.remote) return true;
    }
    return false;
  }

  /**
   * A plain layer pulled here, committed as `target` (its directory becomes the snapshot's; an EROFS
   * layer is mounted at its `fs`) and reported as existing: containerd downloads and unpacks
   * nothing. Directories the layer's tar did not list take their metadata from the layers below, as
   * containerd's applier gives them (an EROFS layer whose such directories would differ from them is
   * written out as files for that).
   */
  private async commitPulled(target: string, parent: string | undefined, labels: Record<string, string>, pulled: Pulled): Promise<never> {
    checkKey(target, 'target');
    const { layer } = pulled;
    if (this.store.get(target)) {
      await rm(layer.dir, { recursive: true, force: true });
      throw new AlreadyExistsError(`target snapshot ${target} already exists`);
    }
    // the layers below are directories (pulledLayer took none on remote layers)
    const lowers = this.lowersOf(parent).dirs;
    if (layer.applied) adoptLowerDirs(join(layer.dir, 'fs'), layer.applied.madeDirs, lowers);
    // the id first: a directory no record names is an orphan Cleanup removes, never a record without its directory
    const id = await this.store.update((d) => String(d.nextId++));
    const dir = join(this.dirs, id);
    await rename(layer.dir, dir);
    let erofs = layer.erofs;
    if (erofs && implicitDirsDiffer(erofs.implicitDirs, lowers)) {
      log.info('an EROFS layer\'s unlisted directories differ from the layers below: written out as files', { target });
      await materialize(dir, erofs, lowers);
      erofs = undefined;
    }
    if (erofs) mountLayer(dir, erofs);
    await mkdir(join(dir, 'work'), { mode: 0o700 });
    const now = new Date().toISOString();
    await this.store.update((d) => {
      d.snapshots.set(target, {
        id, kind: 'committed', ...(parent !== undefined ? { parent } : {}), labels, createdAt: now, updatedAt: now, usage: pulled.usage,
        ...(erofs ? { erofs: { bootstrap: erofs.bootstrap, ...(erofs.blob === undefined ? {} : { blob: erofs.blob }) } } : {}),
      });
    });
    throw new AlreadyExistsError(`target snapshot ${target} already exists`);
  }

  /**
   * The image a container of the image being pulled will read, mounted now (as stargz-snapshotter
   * mounts at pull): its daemon starts while containerd finishes the pull and creates the
   * container. Unmounted after PREMOUNT_TTL_MS unless a snapshot reads through it by then.
   */
  private premount(remote: RemoteLayer): void {
    const name = ImageMounts.nameOf(remote);
    // its first data layer's commit mounts a Nydus image, and its bootstrap's would again
    if (this.premounted.has(name)) return;
    this.premounting++;
    // a Cleanup meanwhile (containerd's garbage collection runs when it will) keeps it too
    this.premounted.set(name, remote);
    this.images!.acquire(name, remote).finally(() => this.premounting--).then(
      () => setTimeout(() => {
        this.premounted.delete(name);
        void this.serial(() => this.releaseIfUnused(name));
      }, PREMOUNT_TTL_MS).unref(),
      (err: Error) => {
        this.premounted.delete(name);
        log.warn('mounting a pulled image ahead of its containers failed', { image: name, ref: remote.ref, error: err.message });
      },
    );
  }

  /**
   * An eStargz layer is served (with every layer below it, merged) only on a chain of eStargz layers;
   * one on top of an ordinary layer is pulled and unpacked like any other.
   */
  private servesRemotely(remote: RemoteLayer, parent: string | undefined): boolean {
    if (!isChainLayer(remote)) return true;
    for (let key = parent; key !== undefined; key = this.store.get(key)?.parent) {
      if (this.store.get(key)?.remote?.role !== remote.role) return false;
    }
    return true;
  }

  private async newDir(): Promise<string> {
    const id = await this.store.update((d) => String(d.nextId++));
    await this.makeDirs(id);
    return id;
  }

  private async makeDirs(id: string): Promise<void> {
    await mkdir(join(this.dirs, id, 'fs'), { recursive: true, mode: 0o755 });
    await mkdir(join(this.dirs, id, 'work'), { mode: 0o700 });
  }

  /** The lower dirs of a snapshot on `parent`, nearest first; a Nydus image ends the chain. */
  private lowersOf(parent: string | undefined): Lowers {
    const dirs: string[] = [];
    const seen = new Set<string>();
    for (let key = parent; key !== undefined;) {
      if (seen.has(key)) throw new FailedPreconditionError(`snapshot ${key}: parent chain loops`);
      seen.add(key);
      const rec = this.store.get(key);
      if (!rec) throw new FailedPreconditionError(`parent ${key} is missing`);
      if ((rec.remote?.role === 'bootstrap' || isChainLayer(rec.remote)) && this.images) {
        // a Nydus bootstrap, or the image's layers up to an eStargz or indexed one: the merged tree of every layer below
        dirs.push('');
        return { dirs, image: { name: ImageMounts.nameOf(rec.remote), remote: rec.remote, index: dirs.length - 1 } };
      }
      dirs.push(this.fsDir(rec));
      key = rec.parent;
    }
    return { dirs };
  }

  mounts(key: string): Promise<Mount[]> {
    return this.serial(async () => {
      const rec = this.find(key);
      if (rec.kind === 'committed') throw new FailedPreconditionError(`snapshot ${key} is committed: it has no mounts`);
      const lowers = this.lowersOf(rec.parent);
      if (lowers.image) lowers.dirs[lowers.image.index] = await this.images!.acquire(lowers.image.name, lowers.image.remote);
      return snapshotMounts({ kind: rec.kind, fs: this.fsDir(rec), work: join(this.dirs, rec.id, 'work'), lowers: lowers.dirs });
    });
  }

  commit(name: string, key: string, rawLabels: unknown): Promise<void> {
    return this.serial(async () => {
      checkKey(name, 'name');
      const labels = checkLabels(rawLabels);
      const rec = this.find(key);
      if (rec.kind !== 'active') throw new FailedPreconditionError(`snapshot ${key} is a ${rec.kind} snapshot: only active snapshots commit`);
      if (this.store.get(name)) throw new AlreadyExistsError(`snapshot ${name} already exists`);
      const usage = await diskUsage(this.fsDir(rec));
      const now = new Date().toISOString();
      await this.store.update((d) => {
        d.snapshots.delete(key);
        const { image: _image, ...rest } = rec;
        d.snapshots.set(name, { ...rest, kind: 'committed', labels, updatedAt: now, usage });
      });
      if (rec.image) await this.releaseIfUnused(rec.image);
    });
  }

  remove(key: string): Promise<void> {
    return this.serial(async () => {
      const rec = this.find(key);
      const child = this.store.entries().find(([, r]) => r.parent === key);
      if (child) throw new FailedPreconditionError(`snapshot ${key} has children (${child[0]})`);
      await this.store.update((d) => d.snapshots.delete(key));
      if (rec.erofs) await unmountLayer(join(this.dirs, rec.id));
      await rm(join(this.dirs, rec.id), { recursive: true, force: true });
      if (rec.image) await this.releaseIfUnused(rec.image);
      // an image mounted at pull, its layer gone before any container read it
      if (rec.remote && rec.remote.role !== 'blob') await this.releaseIfUnused(ImageMounts.nameOf(rec.remote));
    });
  }

  private async releaseIfUnused(image: string): Promise<void> {
    if (this.store.entries().some(([, r]) => r.image === image)) return;
    // its pull's time is over once a snapshot has read through it, or its TTL has passed
    this.premounted.delete(image);
    await this.images?.release(image).catch((err: unknown) => log.warn('unmounting an unused image failed', { image, error: err }));
  }

  private info(name: string, rec: SnapshotRecord): SnapshotInfo {
    return { name, ...(rec.parent !== undefined ? { parent: rec.parent } : {}), kind: rec.kind, createdAt: new Date(rec.createdAt), updatedAt: new Date(rec.updatedAt), labels: rec.labels };
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return this.info(key, this.find(key));
  }

  /**
   * Only labels change. `paths` as containerd's field mask: none or "labels" replaces them all,
   * "labels.KEY" sets (or, absent from info, deletes) one.
   */
  update(info: { name: string; labels?: unknown }, paths: string[]): Promise<SnapshotInfo> {
    return this.serial(async () => {
      const rec = this.find(info.name);
      const given = checkLabels(info.labels);
      let labels = labelsOf(rec.labels);
      if (paths.length === 0) labels = given;
      for (const path of paths) {
        if (path === 'labels') labels = given;
        else if (path.startsWith('labels.') && path.length > 7) {
          const k = path.slice(7);
          if (Object.hasOwn(given, k)) labels[k] = given[k]!;
          else delete labels[k];
        } else throw new InvalidArgumentError(`cannot update field ${JSON.stringify(path.slice(0, 64))}: only labels change`);
      }
      checkLabels(labels);
      const updatedAt = new Date().toISOString();
      await this.store.update((d) => {
        d.snapshots.set(info.name, { ...rec, labels, updatedAt });
      });
      return this.info(info.name, { ...rec, labels, updatedAt });
    });
  }

  async usage(key: string): Promise<Usage> {
    const rec = this.find(key);
    if ((rec.remote?.role === 'blob' || isChainLayer(rec.remote)) && this.cache) return { size: await this.cache.usage(blobIdOf(rec.remote.digest)), inodes: 1 };
    if (rec.kind === 'committed' && rec.usage) return rec.usage;
    return diskUsage(this.fsDir(rec));
  }

  async list(filters: string[]): Promise<SnapshotInfo[]> {
    const filter = parseFilters(filters);
    return this.store.entries()
      .map(([name, rec]) => this.info(name, rec))
      .filter((i) => filter((path) => {
        const [field, ...rest] = path;
        if (field === 'name' && rest.length === 0) return i.name;
        if (field === 'parent' && rest.length === 0) return i.parent ?? '';
        if (field === 'kind' && rest.length === 0) return i.kind;
        if (field === 'labels' && rest.length > 0) return i.labels[rest.join('.')];
        return undefined;
      }));
  }

  /** Deletes snapshot directories no record names (left by a crash) and unmounts unused images. */
  cleanup(): Promise<void> {
    return this.serial(async () => {
      const known = new Set(this.store.entries().map(([, r]) => r.id));
      for (const id of await readdir(this.dirs)) {
        if (known.has(id)) continue;
        log.info('removing orphan snapshot directory', { id });
        await unmountLayer(join(this.dirs, id));
        await rm(join(this.dirs, id), { recursive: true, force: true });
      }
      // during a pull (containerd's garbage collection runs when it will) its image is not yet what
      // any snapshot reads, nor are its blobs all named: both wait for the next Cleanup. (Unmounting
      // it waited on its mount, which waits on the pull's next calls, which waited on this.)
      if (this.premounting > 0) return;
      if (this.images) await this.images.recover(this.imagesInUse());
      // an image mounted at pull before its top layer is committed (an eStargz chain's daemon starts
      // with the pull's first layer) has made cache files for blobs no record names yet
      if (this.cache && !this.premountedUncommitted()) await this.cache.collect(this.referencedBlobs());
    });
  }

  /** Whether an image mounted at pull is still waiting for the commit of the layer it tops at. */
  private premountedUncommitted(): boolean {
    const committed = new Set(this.store.entries().flatMap(([, r]) => (r.remote ? [ImageMounts.nameOf(r.remote)] : [])));
    return [...this.premounted.keys()].some((name) => !committed.has(name));
  }

  /** Blob ids remote layer snapshots name (what the cache must keep). */
  referencedBlobs(): Set<string> {
    return new Set(this.store.entries().flatMap(([, r]) => (r.remote?.role === 'blob' || isChainLayer(r.remote) ? [blobIdOf(r.remote!.digest)] : [])));
  }

  /** The directory of snapshot `id` (a record's id). */
  dirOf(id: string): string {
    return join(this.dirs, id);
  }

  /** Images active snapshots and views read through, and images mounted at pull until their TTL (what must stay mounted). */
  imagesInUse(): Map<string, RemoteLayer> {
    const out = new Map<string, RemoteLayer>(this.premounted);
    for (const [, rec] of this.store.entries()) {
      if (!rec.image || rec.kind === 'committed') continue;
      const lowers = this.lowersOf(rec.parent);
      if (lowers.image) out.set(lowers.image.name, lowers.image.remote);
    }
    return out;
  }

  /** After a restart: the daemons of images in use adopted or brought back, others unmounted. */
  async recover(): Promise<void> {
    await this.serial(async () => {
      // the EROFS layers' mounts, gone with a reboot
      for (const [, rec] of this.store.entries()) {
        const dir = join(this.dirs, rec.id);
        if (rec.erofs && !layerMounted(dir)) mountLayer(dir, rec.erofs);
      }
    });
    if (this.images) await this.serial(() => this.images!.recover(this.imagesInUse()));
  }
}
