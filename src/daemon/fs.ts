// The read-only filesystem of one image a FUSE worker serves: requests over a RafsImage, file data from a
// synchronous chunk source (blocking reads are what a worker thread wants: it has nothing else to
// do meanwhile and never touches the libuv pool). Every chunk is verified before a byte of it is
// returned; a chunk that fails is EIO for that read only, and serving goes on.
import { ChunkIntegrityError } from '../blobcache/chunk-decoder.js';
import { FileType } from '../rafs/dirent.js';
import { RafsFormatError } from '../rafs/errors.js';
import type { RafsImage, RafsInode } from '../rafs/reader.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../rafs/tree.js';
import type { SyncChunkSource } from '../blobcache/sync-chunks.js';
import type { ImageFs } from './router.js';
import {
  type Attr, encodeAttrOut, encodeDev, encodeEntryOut, encodeOpenOut, encodeStatfsOut, type Entry, Errno, FMODE_EXEC, FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE,
  FUSE_ROOT_ID, FuseProtocolError, MAX_NAME_LENGTH, MAX_WRITE, negativeEntry, DirentPacker, type RequestBody,
  type StatFs, W_OK, xattrNameList, xattrReply,
} from './fuse/protocol.js';

/** The image never changes under a mount: let the kernel cache names and attributes for a day. */
export const CACHE_TIMEOUT = 86_400;


const DT_BY_FILE_TYPE = new Map<number, number>([
  [FileType.FIFO, 1],
  [FileType.CHR, 2],
  [FileType.DIR, 4],
  [FileType.BLK, 6],
  [FileType.REG, 8],
  [FileType.SYMLINK, 10],
  [FileType.SOCK, 12],
]);

export interface FsEvents {
  /** A read failed (EIO to the caller); the daemon keeps serving. */
  onReadError?(nid: number, err: Error): void;
  /** A request could not be served because of a bug or corrupt metadata (EIO to the caller). */
  onError?(opcode: number, err: Error): void;
  /** A read of file `nid` was served; `miss` when it waited for a chunk to be fetched. */
  onRead?(nid: number, offset: number, length: number, miss: boolean): void;
  /** The kernel is given file `nid` as node `nodeid` (a LOOKUP or READDIRPLUS entry), once the reply is written. */
  onEntry?(nid: number, nodeid: number): void;
  /** File `nid` is read by execve, or by the program it started mapping itself (FMODE_EXEC). */
  onExec?(nid: number): void;
}

/**
 * FUSE requests about one RAFS image's nodes → reply payloads (the FuseRouter decodes requests and
 * picks the image). Node ids: every inode is `base + nid + 2` (so neither nid 0 nor nid 1 can
 * collide with the FUSE root or the "no entry" id 0), except that the image root is the FUSE root
 * when the image owns the mount (a dedicated mount). st_ino is the nid itself (plus `base`, so the
 * images of a shared mount never share an inode number). Hardlinked paths share a nid, hence a
 * node id and an inode.
 */
export class RafsFuseFs implements ImageFs {
  readonly base: number;
  private readonly ownsRoot: boolean;

  constructor(readonly image: RafsImage, readonly chunks: SyncChunkSource | undefined, private readonly events: FsEvents = {}, place: { base?: number; ownsRoot?: boolean } = {}) {
    this.base = place.base ?? 0;
    this.ownsRoot = place.ownsRoot ?? true;
  }

  nodeidOf(nid: number): number {
    return this.ownsRoot && nid === this.image.root ? FUSE_ROOT_ID : this.base + nid + 2;
  }

  nidOf(nodeid: number): number {
    if (this.ownsRoot && nodeid === FUSE_ROOT_ID) return this.image.root;
    if (nodeid < this.base + 2) throw new FuseProtocolError(Errno.ENOENT, `node id ${nodeid}`);
    return nodeid - this.base - 2;
  }

  statfs(): StatFs {
    const sb = this.image.superblock;
    return { blocks: sb.blocks, bfree: 0, bavail: 0, files: sb.inodeCount, ffree: 0, bsize: this.image.blockSize, namelen: MAX_NAME_LENGTH, frsize: this.image.blockSize };
  }

  attrOf(inode: RafsInode): Attr {
    return {
      ino: this.base + inode.nid,
      size: inode.size,
      blocks: Math.ceil(inode.size / 512),
      atime: inode.mtime,
      mtime: inode.mtime,
      ctime: inode.mtime,
      atimensec: inode.mtimeNsec,
      mtimensec: inode.mtimeNsec,
      ctimensec: inode.mtimeNsec,
      mode: inode.mode,
      nlink: inode.nlink,
      uid: inode.uid,
      gid: inode.gid,
      rdev: encodeDev(inode.rdevMajor, inode.rdevMinor),
      blksize: 4096,
    };
  }

  rootEntry(): Entry {
    return this.entryOf(this.image.root);
  }

  entryOf(nid: number): Entry {
    return { nodeid: this.nodeidOf(nid), generation: 1, entryValid: CACHE_TIMEOUT, attrValid: CACHE_TIMEOUT, attr: this.attrOf(this.image.inode(nid)) };
  }

  /** Reply payload, or an errno, for a request about one of this image's node ids (see FuseRouter). */
  dispatch(nodeid: number, body: RequestBody): Buffer[] | number {
    switch (body.op) {
      case 'RELEASE':
      case 'RELEASEDIR':
        return [];
      case 'FLUSH':
        // read-only: ENOSYS makes the kernel stop sending FLUSH on close
        return Errno.ENOSYS;
      case 'LOOKUP':
        return this.lookup(this.nidOf(nodeid), body.name);
      case 'GETATTR':
        return [encodeAttrOut(CACHE_TIMEOUT, this.attrOf(this.image.inode(this.nidOf(nodeid))))];
      case 'READLINK': {
        const nid = this.nidOf(nodeid);
        if ((this.image.inode(nid).mode & S_IFMT) !== S_IFLNK) return Errno.EINVAL;
        return [Buffer.from(this.image.readlink(nid), 'latin1')];
      }
      case 'OPEN':
        // the kernel then stops sending OPEN and RELEASE and keeps file pages cached; a write open
        // never gets here: the mount is read-only
        return Errno.ENOSYS;
      case 'OPENDIR': {
        const inode = this.image.inode(this.nidOf(nodeid));
        if ((inode.mode & S_IFMT) !== S_IFDIR) return Errno.ENOTDIR;
        // a dedicated mount saves OPENDIR/RELEASEDIR the same way (the kernel then caches entries);
        // a shared one cannot: that is for the whole connection, and its root directory changes
        return this.ownsRoot ? Errno.ENOSYS : [encodeOpenOut(0n, FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR)];
      }
      case 'READ':
        return this.read(this.nidOf(nodeid), body.offset, body.size, (body.flags & FMODE_EXEC) !== 0);
      case 'READDIR':
      case 'READDIRPLUS':
        return this.readdir(this.nidOf(nodeid), body.offset, body.size, body.op === 'READDIRPLUS');
      case 'GETXATTR': {
        const value = this.image.xattrs(this.nidOf(nodeid)).get(body.name.toString('latin1'));
        if (value === undefined) return Errno.ENODATA;
        const r = xattrReply(body.size, value);
        return typeof r === 'number' ? r : [r];
      }
      case 'LISTXATTR': {
        const names = [...this.image.xattrs(this.nidOf(nodeid)).keys()].map((n) => Buffer.from(n, 'latin1'));
        const r = xattrReply(body.size, xattrNameList(names));
        return typeof r === 'number' ? r : [r];
      }
      case 'STATFS':
        return [encodeStatfsOut(this.statfs())];
      case 'ACCESS':
        this.image.inode(this.nidOf(nodeid));
        return (body.mask & W_OK) !== 0 ? Errno.EROFS : [];
      default:
        return Errno.ENOSYS;
    }
  }

  private lookup(dirNid: number, name: Buffer): Buffer[] | number {
    if ((this.image.inode(dirNid).mode & S_IFMT) !== S_IFDIR) return Errno.ENOTDIR;
    const nid = name.length === 0 ? undefined : this.image.lookup(dirNid, name);
    // a missing name is an entry with node id 0: the kernel caches the negative dentry
    if (nid === undefined) return [encodeEntryOut(negativeEntry(CACHE_TIMEOUT))];
    const entry = this.entryOf(nid);
    this.events.onEntry?.(nid, entry.nodeid);
    return [encodeEntryOut(entry)];
  }

  /** `exec`: the reader is execve or a program's mapping of itself (FMODE_EXEC). */
  private read(nid: number, offset: number, size: number, exec: boolean): Buffer[] | number {
    const inode = this.image.inode(nid);
    const type = inode.mode & S_IFMT;
    if (type === S_IFDIR) return Errno.EISDIR;
    if (type !== S_IFREG) return Errno.EINVAL;
    if (exec) this.events.onExec?.(nid);
    const length = Math.min(size, MAX_WRITE);
    const slices = this.image.chunksForRange(nid, offset, length);
    if (slices.length === 0) return [];
    if (!this.chunks) return Errno.EIO;
    const parts: Buffer[] = [];
    const fetched = this.chunks.fetched;
    if (slices.length > 1) this.chunks.want?.(slices.map((s) => s.chunk), nid, chunkStarts(offset, slices));
    // where in the file the slice being read starts (so where its chunk starts: at - s.start)
    let at = offset;
    try {
      for (const s of slices) {
        parts.push(this.chunks.readPart?.(s.chunk, s.start, s.length) ?? this.chunks.read(s.chunk, nid, at - s.start).subarray(s.start, s.start + s.length));
        at += s.length;
      }
    } catch (err) {
      if (!(err instanceof ChunkIntegrityError) && !isSystemError(err)) throw err;
      this.events.onReadError?.(nid, err as Error);
      return Errno.EIO;
    }
    this.events.onRead?.(nid, offset, at - offset, this.chunks.fetched !== fetched);
    return parts;
  }

  private readdir(nid: number, offset: number, size: number, plus: boolean): Buffer[] | number {
    if ((this.image.inode(nid).mode & S_IFMT) !== S_IFDIR) return Errno.ENOTDIR;
    const packer = new DirentPacker(size, plus);
    this.image.forEachDirent(nid, offset, (e, _at, off) => {
      const name = e.nameBytes ?? Buffer.from(e.name, 'latin1');
      const d = { ino: this.base + e.nid, off, type: DT_BY_FILE_TYPE.get(e.fileType) ?? 0, name };
      if (!plus) return packer.add(d);
      // `.` and `..` carry no entry: the kernel skips them (and node id 0) in READDIRPLUS
      const dot = name.equals(DOT) || name.equals(DOTDOT);
      if (dot) return packer.add(d, negativeEntry(0));
      const entry = this.entryOf(e.nid);
      // an entry that did not fit is not given: the next READDIRPLUS gives it
      const added = packer.add(d, entry);
      if (added) this.events.onEntry?.(e.nid, entry.nodeid);
      return added;
    });
    return [packer.finish()];
  }
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

/** An error of the chunk source's I/O (EIO to the reader), not a bug or a format error. */
export function isSystemError(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && !(err instanceof RafsFormatError);
}

/** Where in the file each slice's chunk starts, the first slice starting at `offset`. */
function chunkStarts(offset: number, slices: readonly { start: number; length: number }[]): number[] {
  let at = offset;
  return slices.map((s) => {
    const start = at - s.start;
    at += s.length;
    return start;
  });
}
