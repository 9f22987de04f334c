// An OCI layer's tar entries written into an empty directory as an overlayfs lower layer, the way
// containerd's overlay applier leaves a snapshot: files, directories, links and device nodes with
// their owners, modes, times and extended attributes; a whiteout `.wh.NAME` becomes a 0/0
// character device NAME and `.wh..wh..opq` marks its directory opaque (trusted.overlay.opaque=y).
//
// The archive is untrusted. Entry paths are checked (tar/path.ts: no `..`, nothing absolute); a
// parent path runs through the layer's own directories and symlinks resolved here, clamped at the
// root as a chroot would, so no entry is ever written outside `root`; a hard link's target is found
// the same way and must be an entry of the layer that is not a directory. overlayfs's own
// attributes (trusted.overlay.*, user.overlay.*) are never taken from an archive: they would steer
// how the layers merge. The system calls are synchronous (one layer is one stream, written in
// order): run this off a thread that others wait on.
import {
  closeSync, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, readlinkSync, rmSync, symlinkSync, writeSync,
  chmodSync, constants, type Stats,
} from 'node:fs';
import { lsetxattr, mknod } from '../native/index.js';
import { entryPathComponents } from '../convert/tar/path.js';
import type { TarEntry } from '../convert/tar/parse.js';
import { quoteBytes } from '../convert/tar/errors.js';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
/** Symlinks followed resolving one parent path (the kernel's limit). */
const MAX_LINKS = 40;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

export class LayerApplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayerApplyError';
  }
}

export interface AppliedLayer {
  /** Tar entries applied (whiteouts included). */
  entries: number;
  /** File data bytes written. */
  bytes: number;
  /**
   * Directories made for entries whose parent the archive did not list, as component lists (byte
   * strings): containerd gives them the metadata of the same directory in the layers below.
   */
  madeDirs: string[][];
}

interface DirMeta {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

/** Applies `entries` (one layer's, in order) under `root`, an existing empty directory. */
export async function applyLayer(entries: AsyncIterable<TarEntry>, root: string): Promise<AppliedLayer> {
  const layer = new LayerWriter(root);
  for await (const entry of entries) await layer.apply(entry);
  return layer.finish();
}

class LayerWriter {
  entries = 0;
  bytes = 0;
  private readonly madeDirs: string[][] = [];
  /** The archive's directories, by their resolved path: their metadata is set last (writing into a directory changes its mtime). */
  private readonly dirs = new Map<string, { comps: string[]; meta: DirMeta }>();
  private readonly root: Buffer;

  constructor(root: string) {
    this.root = Buffer.from(root);
  }

  async apply(e: TarEntry): Promise<void> {
    this.entries++;
    const comps = entryPathComponents(e.path);
    if (comps.length === 0) {
      if (e.type !== 'dir') throw new LayerApplyError(`the layer's root entry ${quoteBytes(e.path)} is not a directory`);
      this.dirs.set('', { comps: [], meta: metaOf(e) });
      return;
    }
    const name = comps.at(-1)!;
    const dir = this.resolveDir(comps.slice(0, -1), e.path);
    if (name === OPAQUE) return lsetxattr(this.abs(dir), Buffer.from('trusted.overlay.opaque'), Buffer.from('y'));
    if (name.startsWith(WHITEOUT)) {
      const hidden = name.slice(WHITEOUT.length);
      // other `.wh..wh.` names are aufs bookkeeping, nothing to overlayfs
      if (hidden === '' || hidden.startsWith(WHITEOUT)) return;
      const at = [...dir, hidden];
      this.clear(at, false);
      return mknod(this.abs(at), S_IFCHR, 0, 0);
    }
    const at = [...dir, name];
    const path = this.abs(at);
    this.clear(at, e.type === 'dir');
    switch (e.type) {
      case 'dir':
        if (!lstatIf(path)) mkdirSync(path, 0o700);
        this.dirs.set(key(at), { comps: at, meta: metaOf(e) });
        break;
      case 'file':
        await this.writeFile(path, e);
        break;
      case 'symlink':
        symlinkSync(Buffer.from(e.linkpath, 'latin1'), path);
        lchownSync(path, e.uid, e.gid);
        lutimesSync(path, seconds(e), seconds(e));
        break;
      case 'hardlink':
        linkSync(this.linkTarget(e), path);
        break;
      case 'char':
      case 'block':
      case 'fifo':
        mknod(path, (e.type === 'char' ? S_IFCHR : e.type === 'block' ? S_IFBLK : S_IFIFO) | (e.mode & 0o777), e.devmajor, e.devminor);
        lchownSync(path, e.uid, e.gid);
        chmodSync(path, e.mode);
        lutimesSync(path, seconds(e), seconds(e));
        break;
    }
    if (e.type !== 'hardlink') this.setXattrs(path, e);
  }

  /** Sets the archive's directories' owners, modes and times, deepest first; what was applied. */
  finish(): AppliedLayer {
    const all = [...this.dirs.values()].sort((a, b) => b.comps.length - a.comps.length);
    for (const { comps, meta } of all) {
      const path = this.abs(comps);
      // gone since: a later entry replaced it or a directory above it
      if (!lstatIf(path)?.isDirectory()) continue;
      lchownSync(path, meta.uid, meta.gid);
      chmodSync(path, meta.mode);
      lutimesSync(path, meta.mtime, meta.mtime);
    }
    const madeDirs = this.madeDirs.filter((c) => !this.dirs.has(key(c)) && lstatIf(this.abs(c))?.isDirectory());
    return { entries: this.entries, bytes: this.bytes, madeDirs };
  }

  private async writeFile(path: Buffer, e: TarEntry): Promise<void> {
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      for await (const piece of e.body) {
        for (let done = 0; done < piece.length;) done += writeSync(fd, piece, done, piece.length - done);
        this.bytes += piece.length;
      }
      // chown first: it clears setuid and setgid bits
      fchownSync(fd, e.uid, e.gid);
      fchmodSync(fd, e.mode);
      futimesSync(fd, seconds(e), seconds(e));
    } finally {
      closeSync(fd);
    }
  }

  private setXattrs(path: Buffer, e: TarEntry): void {
    for (const [name, value] of e.xattrs) {
      if (name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.')) continue;
      lsetxattr(path, Buffer.from(name, 'latin1'), value);
    }
  }

  /**
   * The real path (directories only, no symlink) that parent path `comps` names in the layer,
   * following the layer's symlinks as a chroot at `root` would; missing directories are made.
   */
  private resolveDir(comps: string[], entryPath: string): string[] {
    const done: string[] = [];
    const todo = [...comps].reverse();
    let links = 0;
    while (todo.length > 0) {
      const c = todo.pop()!;
      if (c === '..') {
        done.pop();
        continue;
      }
      const at = [...done, c];
      const st = lstatIf(this.abs(at));
      if (!st) {
        mkdirSync(this.abs(at), 0o755);
        this.madeDirs.push(at);
      } else if (st.isSymbolicLink()) {
        if (++links > MAX_LINKS) throw new LayerApplyError(`entry ${quoteBytes(entryPath)}: more than ${MAX_LINKS} symlinks in its path`);
        const target = readlinkSync(this.abs(at), { encoding: 'buffer' }).toString('latin1');
        if (target.startsWith('/')) done.length = 0;
        todo.push(...target.split('/').filter((p) => p !== '' && p !== '.').reverse());
        continue;
      } else if (!st.isDirectory()) {
        throw new LayerApplyError(`entry ${quoteBytes(entryPath)}: ${quoteBytes(at.join('/'))} is not a directory`);
      }
      done.push(c);
    }
    return done;
  }

  /** A hard link's target: an entry of this layer (found like a parent path), not a directory. */
  private linkTarget(e: TarEntry): Buffer {
    const comps = entryPathComponents(e.linkpath);
    if (comps.length === 0) throw new LayerApplyError(`hard link ${quoteBytes(e.path)} names the root`);
    const target = [...this.resolveDir(comps.slice(0, -1), e.linkpath), comps.at(-1)!];
    const st = lstatIf(this.abs(target));
    if (!st || st.isDirectory()) throw new LayerApplyError(`hard link ${quoteBytes(e.path)} → ${quoteBytes(e.linkpath)}: no such file earlier in the layer`);
    return this.abs(target);
  }

  /** Makes room for a new entry at `at`: whatever is there goes, except a directory another directory entry updates. */
  private clear(at: string[], keepDir: boolean): void {
    const path = this.abs(at);
    const st = lstatIf(path);
    if (!st || (keepDir && st.isDirectory())) return;
    rmSync(path, { recursive: st.isDirectory(), force: true });
    if (st.isDirectory()) this.dirs.delete(key(at));
  }

  private abs(comps: string[]): Buffer {
    return comps.length === 0 ? this.root : Buffer.concat([this.root, Buffer.from(`/${comps.join('/')}`, 'latin1')]);
  }
}

/**
 * Gives the directories a layer made for unlisted parents (AppliedLayer.madeDirs, under `root`)
 * the owner, mode and times of the same directory in the nearest layer below that has it (`lowers`,
 * nearest first), as containerd does; one no layer has keeps what it was made with.
 */
export function adoptLowerDirs(root: string, madeDirs: readonly string[][], lowers: readonly string[]): void {
  for (const comps of madeDirs) {
    const st = lowerDirOf(comps, lowers);
    if (!st) continue;
    const path = Buffer.concat([Buffer.from(root), Buffer.from(`/${comps.join('/')}`, 'latin1')]);
    lchownSync(path, st.uid, st.gid);
    chmodSync(path, st.mode & 0o7777);
    lutimesSync(path, st.atime, st.mtime);
  }
}

/**
 * The directory at `comps` (byte-string components) in the nearest of `lowers` (nearest first)
 * that holds that path; none when none does, or when the nearest one holds something else there.
 */
export function lowerDirOf(comps: readonly string[], lowers: readonly string[]): Stats | undefined {
  const rel = Buffer.from(`/${comps.join('/')}`, 'latin1');
  for (const lower of lowers) {
    const st = lstatIf(Buffer.concat([Buffer.from(lower), rel]));
    if (st) return st.isDirectory() ? st : undefined;
  }
  return undefined;
}

const key = (comps: string[]): string => comps.join('/');
const seconds = (e: TarEntry): number => e.mtime + e.mtimeNsec / 1e9;
const metaOf = (e: TarEntry): DirMeta => ({ mode: e.mode, uid: e.uid, gid: e.gid, mtime: seconds(e) });

/** The entry at `path`, if there is one (none either when a component above it is not a directory). */
function lstatIf(path: Buffer): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}
