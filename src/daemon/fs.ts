// The read-only filesystem a FUSE worker serves: requests over a RafsImage, file data from a
// synchronous chunk source (blocking reads are what a worker thread wants: it has nothing else to
// do meanwhile and never touches the libuv pool). Every chunk is verified before a byte of it is
// returned; a chunk that fails is EIO for that read only, and serving goes on.
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkLru, blobOf, preadExact } from './sync-chunks.js';
import { ChunkIntegrityError, decodeChunk } from '../blobcache/chunk-decoder.js';
import { FileType } from '../rafs/dirent.js';
import { RafsFormatError } from '../rafs/errors.js';
import type { RafsImage, RafsInode } from '../rafs/reader.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type BlobInfo, type ChunkRef } from '../rafs/tree.js';
import {
  type Attr, decodeRequest, encodeAttrOut, encodeDev, encodeEntryOut, encodeInitOut, encodeOpenOut, encodeStatfsOut, type Entry,
  Errno, errorReply, expectsReply, FOPEN_KEEP_CACHE, FUSE_ROOT_ID, FuseProtocolError, type InitReply, MAX_NAME_LENGTH, MAX_WRITE,
  negativeEntry, negotiateInit, packDirents, packDirentsPlus, replyParts, type RequestBody, xattrNameList, xattrReply,
} from './fuse/protocol.js';

/** The image never changes under a mount: let the kernel cache names and attributes for a day. */
export const CACHE_TIMEOUT = 86_400;
const W_OK = 2;
const O_ACCMODE = 3;

/** Verified uncompressed bytes of chunks, synchronously. */
export interface SyncChunkSource {
  read(ref: ChunkRef): Buffer;
  close(): void;
}

/**
 * Chunks from `<dir>/<blobId>` files read with fs.readSync, decoded and verified, with a small LRU
 * of decoded chunks (kernel readahead asks for one chunk's pages in several requests).
 */
export class SyncBlobDirSource implements SyncChunkSource {
  private readonly fds = new Map<number, number>();

  private readonly cache: ChunkLru;

  constructor(private readonly dir: string, private readonly blobs: readonly BlobInfo[], cacheChunks = 8) {
    this.cache = new ChunkLru(cacheChunks);
  }

  read(ref: ChunkRef): Buffer {
    return this.cache.getOrLoad(ref, () => {
      const blob = blobOf(this.blobs, ref);
      const stored = preadExact(this.fd(ref.blobIndex, blob), ref.compressedSize, ref.compressedOffset, blob, ref, 'blob file');
      return decodeChunk(blob, ref, stored);
    });
  }

  private fd(index: number, blob: BlobInfo): number {
    let fd = this.fds.get(index);
    if (fd === undefined) {
      if (!/^[0-9a-f]{64}$/.test(blob.blobId)) throw new ChunkIntegrityError(blob.blobId, 0, 'invalid blob id');
      fd = openSync(join(this.dir, blob.blobId), 'r');
      this.fds.set(index, fd);
    }
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
    this.cache.clear();
  }
}

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
  /** INIT was answered (the kernel has applied it once the reply is written). */
  onInit?(reply: InitReply): void;
  /** A read failed (EIO to the caller); the daemon keeps serving. */
  onReadError?(nid: number, err: Error): void;
  /** A request could not be served because of a bug or corrupt metadata (EIO to the caller). */
  onError?(opcode: number, err: Error): void;
}

/**
 * FUSE requests → replies for one RAFS image. Node ids: the root is FUSE_ROOT_ID, every other
 * inode is its nid + 2 (so neither nid 0 nor nid 1 can collide with the root or the "no entry"
 * id 0); st_ino is the nid itself. Hardlinked paths share a nid, hence a node id and an inode.
 */
export class RafsFuseFs {
  constructor(readonly image: RafsImage, readonly chunks: SyncChunkSource | undefined, private readonly events: FsEvents = {}) {}

  nodeidOf(nid: number): number {
    return nid === this.image.root ? FUSE_ROOT_ID : nid + 2;
  }

  nidOf(nodeid: number): number {
    if (nodeid === FUSE_ROOT_ID) return this.image.root;
    if (nodeid < 2) throw new FuseProtocolError(Errno.ENOENT, `node id ${nodeid}`);
    return nodeid - 2;
  }

  attrOf(inode: RafsInode): Attr {
    return {
      ino: inode.nid,
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

  entryOf(nid: number): Entry {
    return { nodeid: this.nodeidOf(nid), generation: 1, entryValid: CACHE_TIMEOUT, attrValid: CACHE_TIMEOUT, attr: this.attrOf(this.image.inode(nid)) };
  }

  /**
   * One request (exactly the bytes read from /dev/fuse) → the reply parts to write with one
   * writev, or null for requests that get no reply. Never throws.
   */
  handle(buf: Buffer): Buffer[] | null {
    let unique: bigint | undefined;
    let opcode = 0;
    try {
      const req = decodeRequest(buf);
      if (!req) return null;
      ({ unique, opcode } = req.header);
      if (!expectsReply(opcode)) return null;
      const result = this.dispatch(req.header.nodeid, req.body);
      return typeof result === 'number' ? errorReply(unique, result) : replyParts(unique, result);
    } catch (err) {
      if (unique === undefined) {
        if (buf.length < 16) return null;
        unique = buf.readBigUInt64LE(8);
        opcode = buf.readUInt32LE(4);
      }
      if (!expectsReply(opcode)) return null;
      if (err instanceof FuseProtocolError) return errorReply(unique, err.errno);
      this.events.onError?.(opcode, err as Error);
      return errorReply(unique, Errno.EIO);
    }
  }

  /** Reply payload, or an errno. */
  private dispatch(nodeid: number, body: RequestBody): Buffer[] | number {
    switch (body.op) {
      case 'INIT': {
        const reply = negotiateInit(body);
        const out = encodeInitOut(reply);
        this.events.onInit?.(reply);
        return [out];
      }
      case 'DESTROY':
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
      case 'OPEN': {
        const inode = this.image.inode(this.nidOf(nodeid));
        if ((body.flags & O_ACCMODE) !== 0) return Errno.EROFS;
        if ((inode.mode & S_IFMT) === S_IFDIR) return Errno.EISDIR;
        return [encodeOpenOut(0n, FOPEN_KEEP_CACHE)];
      }
      case 'OPENDIR': {
        const inode = this.image.inode(this.nidOf(nodeid));
        if ((inode.mode & S_IFMT) !== S_IFDIR) return Errno.ENOTDIR;
        return [encodeOpenOut(0n, 0)];
      }
      case 'READ':
        return this.read(this.nidOf(nodeid), body.offset, body.size);
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
      case 'STATFS': {
        const sb = this.image.superblock;
        return [encodeStatfsOut({ blocks: sb.blocks, bfree: 0, bavail: 0, files: sb.inodeCount, ffree: 0, bsize: this.image.blockSize, namelen: MAX_NAME_LENGTH, frsize: this.image.blockSize })];
      }
      case 'ACCESS':
        this.image.inode(this.nidOf(nodeid));
        return (body.mask & W_OK) !== 0 ? Errno.EROFS : [];
      case 'FORGET':
      case 'BATCH_FORGET':
      case 'INTERRUPT':
        return [];
      case 'UNKNOWN':
        return Errno.ENOSYS;
    }
  }

  private lookup(dirNid: number, name: Buffer): Buffer[] | number {
    if ((this.image.inode(dirNid).mode & S_IFMT) !== S_IFDIR) return Errno.ENOTDIR;
    const nid = name.length === 0 ? undefined : this.image.lookup(dirNid, name);
    // a missing name is an entry with node id 0: the kernel caches the negative dentry
    if (nid === undefined) return [encodeEntryOut(negativeEntry(CACHE_TIMEOUT))];
    return [encodeEntryOut(this.entryOf(nid))];
  }

  private read(nid: number, offset: number, size: number): Buffer[] | number {
    const inode = this.image.inode(nid);
    const type = inode.mode & S_IFMT;
    if (type === S_IFDIR) return Errno.EISDIR;
    if (type !== S_IFREG) return Errno.EINVAL;
    const length = Math.min(size, MAX_WRITE);
    const slices = this.image.chunksForRange(nid, offset, length);
    if (slices.length === 0) return [];
    if (!this.chunks) return Errno.EIO;
    const parts: Buffer[] = [];
    try {
      for (const s of slices) parts.push(this.chunks.read(s.chunk).subarray(s.start, s.start + s.length));
    } catch (err) {
      if (!(err instanceof ChunkIntegrityError) && !isSystemError(err)) throw err;
      this.events.onReadError?.(nid, err as Error);
      return Errno.EIO;
    }
    return parts;
  }

  private readdir(nid: number, offset: number, size: number, plus: boolean): Buffer[] | number {
    if ((this.image.inode(nid).mode & S_IFMT) !== S_IFDIR) return Errno.ENOTDIR;
    const entries = this.image.readdir(nid, offset);
    const plain = (function* () {
      for (const e of entries) {
        yield { ino: e.nid, off: e.nextOffset, type: DT_BY_FILE_TYPE.get(e.fileType) ?? 0, name: Buffer.from(e.name, 'latin1') };
      }
    })();
    if (!plus) return [packDirents(plain, size).buf];
    const withEntries = (function* (fs: RafsFuseFs) {
      for (const d of plain) {
        // `.` and `..` carry no entry: the kernel skips them (and node id 0) in READDIRPLUS
        const dot = d.name.equals(DOT) || d.name.equals(DOTDOT);
        yield { ...d, entry: dot ? negativeEntry(0) : fs.entryOf(d.ino) };
      }
    })(this);
    return [packDirentsPlus(withEntries, size).buf];
  }
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

function isSystemError(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && !(err instanceof RafsFormatError);
}
