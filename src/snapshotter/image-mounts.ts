// The Nydus images the snapshotter has mounted, through the daemon manager: each image a container
// reads is mounted once (shared mode: under the one shared daemon's mount as mnt/shared/NAME;
// dedicated mode: a daemon of its own at mnt/NAME) and stays mounted while any active snapshot or
// view reads through it. The manager records every daemon durably, so after a snapshotter restart
// `recover` adopts the live daemons, restarts dead ones and drops images nobody uses any more; while
// the snapshotter runs, every daemon is supervised and brought back when it dies. The first
// container start of each image leaves its access trace in ROOT/traces/NAME.json (written when the
// image is unmounted), the input of `optimize` and `report`; later mounts of the image keep it.
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BuiltBootstraps } from '../blobcache/built-bootstraps.js';
import type { DaemonConfig, MountSpec } from '../daemon/config.js';
import { ErofsMount, erofsMountedAt } from '../daemon/erofs-mount.js';
import { DaemonManager, type DaemonRecord } from '../daemon/manager.js';
import type { DaemonMode } from '../daemon/router.js';
import { MAX_TRACE_BYTES, parseAccessTrace } from '../trace/access-trace.js';
import { log } from '../util/log.js';
import { isChainLayer, type RemoteLayer } from './labels.js';
import { StargzWarmup } from './stargz-warmup.js';
import type { PrefetchLists } from './prefetch-lists.js';
import { hostsTomlMirrors } from './hosts-toml.js';
import { parseReference } from '../registry/reference.js';
import type { CriKeychain } from './cri-keychain.js';

/**
 * What containerd (and CRI) read of an image's tree as it makes a container, before anything of the
 * image runs: the user and group lookups of the container's process (its user, additional groups).
 */
const CONTAINER_RUNTIME_FILES = ['/etc/passwd', '/etc/group'];

export type RecoverPolicy = 'restart' | 'failover';
/** fuse: the daemon's FUSE tree is the lower dir; block: the kernel's EROFS on the daemon's flat image file is. */
export type FsDriver = 'fuse' | 'block';

export interface ImageMountsOptions {
  /** Daemon records go to ROOT/daemons, mountpoints under ROOT/mnt. */
  root: string;
  mode: DaemonMode;
  config: DaemonConfig;
  policy: RecoverPolicy;
  fsDriver?: FsDriver;
  /** Dedicated daemons started ahead of need (restart policy only: failover hands a descriptor at spawn). */
  spareDaemons?: number;
  /** Serve eStargz / zstd:chunked layers lazily (default); false: they are pulled like any layer. */
  stargz?: boolean;
  /** Files to fetch first at an image's next mount (the system API's PUT /api/v1/prefetch). */
  prefetchLists?: PrefetchLists;
  /** containerd's hosts.toml directories: each image's registry's mirrors (hosts-toml.ts). */
  mirrorsDir?: string;
  /** Credentials kubelet pulled images with (cri-keychain.ts), for images whose layers carry no pull secret. */
  keychain?: CriKeychain;
}

const SHARED_ID = 'shared';

export class ImageMounts {
  readonly manager: DaemonManager;
  private readonly mnt: string;
  private queue: Promise<unknown> = Promise.resolve();
  /** Block driver: the EROFS mount of each mounted image. */
  private readonly erofs = new Map<string, ErofsMount>();
  /** Builds each eStargz chain's bootstrap while containerd pulls the image. */
  private readonly warmup: StargzWarmup;

  constructor(readonly opts: ImageMountsOptions) {
    // a shared daemon hands out node-id slots as images come and go: a successor could not
    // promise the same ones, so only a dedicated daemon's connection can be taken over
    if (opts.policy === 'failover' && opts.mode !== 'dedicated') throw new Error('the failover recover policy needs --daemon-mode dedicated');
    this.manager = new DaemonManager(join(opts.root, 'daemons'));
    if (opts.mode === 'dedicated' && opts.policy === 'restart') this.manager.keepSpares(opts.spareDaemons ?? 0);
    this.mnt = join(opts.root, 'mnt');
    mkdirSync(this.mnt, { recursive: true, mode: 0o700 });
    this.warmup = new StargzWarmup(opts.config.registry, new BuiltBootstraps(opts.config.cacheDir), (remote) => this.authOf(remote));
  }

  /** Has the eStargz pull path run once over a made-up image, so a first pull does not run it cold. */
  rehearse(): Promise<void> {
    return this.warmup.rehearse();
  }

  /**
   * A remote layer was committed while containerd pulls: an eStargz chain's bootstrap is built now.
   * `onTop` hears of the layer a container of the image will mount: a Nydus bootstrap layer (from
   * the first data layer whose labels name it: containerd commits the bootstrap last), or the top
   * of the image's run of eStargz layers.
   */
  pulled(remote: RemoteLayer, onTop: (remote: RemoteLayer) => void): void {
    if (remote.role === 'stargz') this.warmup.layer(remote, onTop);
    else if (remote.role === 'bootstrap') onTop(remote);
    else if (remote.role === 'blob' && remote.top !== undefined) onTop({ ref: remote.ref, digest: remote.top, role: 'bootstrap', ...(remote.auth ? { auth: remote.auth } : {}) });
  }

  /**
   * Whether an eStargz layer can be served lazily (its TOC read, verified and made a layer model);
   * else it is pulled. `onTop` hears of the layer a container of the image will mount, as with `pulled`.
   */
  async stargzServable(remote: RemoteLayer, onTop: (remote: RemoteLayer) => void): Promise<boolean> {
    if (this.opts.stargz === false) return false;
    try {
      await this.warmup.servable(remote, onTop);
      return true;
    } catch (err) {
      log.warn('eStargz layer cannot be served lazily: it is pulled instead', { ref: remote.ref, layer: remote.digest, error: (err as Error).message });
      return false;
    }
  }

  /** The image's mount name: one per image reference and bootstrap layer. */
  static nameOf(remote: RemoteLayer): string {
    return `i-${createHash('sha256').update(`${remote.ref}\n${remote.digest}`).digest('hex').slice(0, 16)}`;
  }

  private get block(): boolean {
    return this.opts.fsDriver === 'block';
  }

  /** Where the daemon serves the image: its tree, or (block driver) the directory of its flat image file. */
  private served(name: string): string {
    return this.opts.mode === 'shared' ? join(this.mnt, SHARED_ID, name) : join(this.mnt, name);
  }

  /** The directory holding the image's tree (overlay lower dir) once mounted. */
  dir(name: string): string {
    return this.block ? join(this.mnt, 'erofs', name) : this.served(name);
  }

  /** Block driver: the image's EROFS mount, made (or, when `adopt`, taken as it is) once its daemon serves it. */
  private async mountErofs(name: string, fuseMountpoint: string, adopt: boolean): Promise<void> {
    if (!this.block) return;
    let m = this.erofs.get(name);
    if (!m) {
      mkdirSync(this.dir(name), { recursive: true });
      m = new ErofsMount(this.served(name), fuseMountpoint, this.dir(name));
      this.erofs.set(name, m);
      if (adopt && erofsMountedAt(m.target)) return m.adopt();
    }
    await m.refresh();
  }

  /** After a daemon restart: EROFS mounts that read through a FUSE connection that is gone are made again. */
  private async refreshErofs(record: DaemonRecord): Promise<void> {
    const names = record.mode === 'dedicated' ? [record.id] : record.mounts.map((m) => m.name);
    for (const name of names) await this.erofs.get(name)?.refresh();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Whether containerd's hosts.toml gives `ref`'s registry a mirror (or cannot be read for it). */
  hasMirrors(ref: string): boolean {
    if (this.opts.mirrorsDir === undefined) return false;
    try {
      return hostsTomlMirrors(this.opts.mirrorsDir, parseReference(ref).host).length > 0;
    } catch {
      return true;
    }
  }

  /** The image's credentials: its layers' pull secret, else those kubelet pulled it with (if the keychain is on). */
  authOf(remote: Pick<RemoteLayer, 'ref' | 'auth'>): RemoteLayer['auth'] {
    return remote.auth ?? this.opts.keychain?.credentialsFor(remote.ref);
  }

  /**
   * The image from its registry; the files on its prefetch list (if it has one) fetched in the
   * background, and the files containerd reads to make a container at once. An eStargz chain is
   * the image's layers up to the chain's top layer. Its trace is recorded unless one is kept already.
   */
  private async spec(name: string, remote: RemoteLayer): Promise<MountSpec> {
    const trace = this.traceFile(name);
    const auth = this.authOf(remote);
    const prefetchFiles = this.opts.prefetchLists?.take(remote.ref);
    // read at each mount, as containerd reads them: an edited hosts.toml holds from the next image on
    const mirrors = this.opts.mirrorsDir === undefined ? [] : hostsTomlMirrors(this.opts.mirrorsDir, parseReference(remote.ref).host);
    return {
      target: remote.ref, prefetch: true, runtimeFiles: CONTAINER_RUNTIME_FILES, ...(auth ? { auth } : {}), ...(prefetchFiles ? { prefetchFiles } : {}),
      ...(mirrors.length > 0 ? { mirrors } : {}),
      ...(isChainLayer(remote) ? { upToLayer: remote.digest } : {}), ...((await traceKept(trace)) ? {} : { trace }),
    };
  }

  /** Where the image's access trace is kept (`name` is nameOf's: safe as a file name). */
  traceFile(name: string): string {
    return join(this.opts.root, 'traces', `${name}.json`);
  }

  private async recordOf(name: string, remote: RemoteLayer): Promise<DaemonRecord> {
    const { mode, config } = this.opts;
    if (mode === 'dedicated') {
      const record = this.manager.record(name) ?? { id: name, mode, mountpoint: this.served(name), ...this.blockRecord(), config, mounts: [{ name: '/', spec: await this.spec(name, remote) }] };
      record.failover = this.opts.policy === 'failover';
      return record;
    }
    const record = this.manager.record(SHARED_ID) ?? { id: SHARED_ID, mode, mountpoint: join(this.mnt, SHARED_ID), ...this.blockRecord(), config, mounts: [] };
    if (!record.mounts.some((m) => m.name === name)) record.mounts.push({ name, spec: await this.spec(name, remote) });
    return record;
  }

  private blockRecord(): { block?: true } {
    return this.block ? { block: true } : {};
  }

  /** Mounts the image unless it is mounted; returns its directory. */
  acquire(name: string, remote: RemoteLayer): Promise<string> {
    return this.serial(async () => {
      const record = await this.recordOf(name, remote);
      mkdirSync(record.mountpoint, { recursive: true });
      this.manager.save(record);
      try {
        await this.warmup.started(remote);
        const started = await this.manager.ensure(record);
        if (started) log.info('image daemon started', { image: name, ref: remote.ref, daemon: record.id });
        await this.mountErofs(name, record.mountpoint, false);
      } catch (err) {
        await this.drop(name).catch(() => undefined);
        throw new Error(`mounting ${remote.ref}: ${(err as Error).message}`);
      }
      this.supervise(record.id);
      return this.dir(name);
    });
  }

  /** Unmounts an image nobody reads any more (its daemon goes too when it serves nothing else). */
  release(name: string): Promise<void> {
    return this.serial(() => this.drop(name));
  }

  private async drop(name: string): Promise<void> {
    // containers still running keep the detached EROFS mount (and so the daemon's file) until they end
    await this.erofs.get(name)?.unmount();
    this.erofs.delete(name);
    if (this.opts.mode === 'dedicated') {
      if (!this.manager.record(name)) return;
      this.unsupervise(name);
      await this.manager.destroy(name);
      log.info('image unmounted', { image: name });
      return;
    }
    const record = this.manager.record(SHARED_ID);
    if (!record?.mounts.some((m) => m.name === name)) return;
    await this.manager.client(SHARED_ID).umount(name).catch((err: unknown) => log.warn('unmounting from the shared daemon failed', { image: name, error: err }));
    record.mounts = record.mounts.filter((m) => m.name !== name);
    this.manager.save(record);
    log.info('image unmounted', { image: name });
    if (record.mounts.length === 0) {
      this.unsupervise(SHARED_ID);
      await this.manager.destroy(SHARED_ID);
    }
  }

  /** Images mounted now, by name (what the daemon records hold). */
  mounted(): string[] {
    return this.manager.records().flatMap((r) => (r.mode === 'dedicated' ? [r.id] : r.mounts.map((m) => m.name)));
  }

  /**
   * After a (re)start: `inUse` are the images active snapshots read through. Those are adopted or
   * brought back; any other recorded image is unmounted.
   */
  recover(inUse: Map<string, RemoteLayer>): Promise<void> {
    return this.serial(async () => {
      for (const name of this.mounted()) if (!inUse.has(name)) await this.drop(name);
      for (const [name, remote] of inUse) {
        const record = await this.recordOf(name, remote);
        mkdirSync(record.mountpoint, { recursive: true });
        this.manager.save(record);
        const started = await this.manager.ensure(record).catch((err: unknown) => {
          log.error('cannot bring an image back', { image: name, ref: remote.ref, error: err });
          return undefined;
        });
        log.info(started ? 'image daemon restarted' : 'image daemon adopted', { image: name, daemon: record.id });
        await this.mountErofs(name, record.mountpoint, started === false).catch((err: unknown) => log.error('cannot mount the image\'s EROFS', { image: name, error: err }));
        this.supervise(record.id);
      }
    });
  }

  /**
   * Has the manager supervise the daemon: brought back when it stops answering (killed, crashed,
   * unmounted under it). The restart runs in this object's queue, so it never races an acquire or
   * a release of the same daemon.
   */
  private supervise(id: string): void {
    this.manager.attach(id, {
      serialize: (step) => this.serial(step),
      restarted: async () => {
        log.info('image daemon restarted after it died', { daemon: id, pid: this.manager.record(id)?.pid, policy: this.opts.policy });
        const record = this.manager.record(id);
        if (record) await this.refreshErofs(record);
      },
    });
  }

  /** Stops supervising (not waiting: this runs inside the queue a restart step waits for). */
  private unsupervise(id: string): void {
    void this.manager.detach(id);
  }

  /** Stops watching and the spares; the daemons keep serving (running containers read through them). */
  close(): Promise<void> {
    this.manager.closeSpares();
    return this.manager.detachAll();
  }
}

/**
 * Whether a trace of a container start is kept in `file`: one that holds reads. A trace without
 * any (an image mounted at pull and unmounted before a container ran) or a broken one is replaced.
 */
async function traceKept(file: string): Promise<boolean> {
  const size = (await stat(file).catch(() => undefined))?.size;
  if (size === undefined) return false;
  // more than a trace may hold: not one of ours, and not ours to replace
  if (size > MAX_TRACE_BYTES) return true;
  try {
    return parseAccessTrace(await readFile(file)).reads.length > 0;
  } catch {
    return false;
  }
}
