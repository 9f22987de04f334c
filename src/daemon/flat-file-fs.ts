// Block mode over FUSE: one image served as a directory holding a single read-only file, the flat
// EROFS disk image (rafs/flat-image.ts), for the kernel to mount with its own EROFS
// (`mount -t erofs -o ro DIR/image.erofs MNT`, file-backed, Linux ≥ 6.12). The kernel then answers
// every metadata request from its page cache; only reads of blocks it has not cached come here, and
// each is bootstrap bytes, zeros, or parts of chunks read (and verified) through the worker's chunk
// source, exactly as a file read of the FUSE filesystem is.
import { ChunkIntegrityError } from '../blobcache/chunk-decoder.js';
import type { SyncChunkSource } from '../blobcache/sync-chunks.js';
import type { FlatImageMap } from '../rafs/flat-image.js';
import { S_IFDIR, S_IFREG } from '../rafs/tree.js';
import {
  type Attr, DirentPacker, encodeAttrOut, encodeEntryOut, encodeStatfsOut, type Entry, Errno, FUSE_ROOT_ID, FuseProtocolError, MAX_NAME_LENGTH,
  MAX_WRITE, negativeEntry, notifyStore, type RequestBody, W_OK, noXattrsReply,
} from './fuse/protocol.js';
import { CACHE_TIMEOUT, type FsEvents, isSystemError } from './fs.js';
import type { ImageFs } from './router.js';

/** The name of the flat image file in its directory. */
export const FLAT_IMAGE_NAME = 'image.erofs';

const NAME = Buffer.from(FLAT_IMAGE_NAME);
const DT_DIR = 4;
const DT_REG = 8;

export class FlatFileFs implements ImageFs {
  private readonly base: number;
  private readonly ownsRoot: boolean;
  private readonly mtime: number;
  /**
   * The reply of the READ being served (this filesystem belongs to one worker thread, which writes a
   * reply before it reads the next request). Chunk bytes are copied here and the chunk source's
   * buffers recycled at once: a read of the flat image can span dozens of small chunks, and holding
   * each one's chunk-sized buffer until the reply is written made a worker allocate (and V8 keep)
   * hundreds of megabytes.
   */
  private readonly reply = Buffer.allocUnsafeSlow(MAX_WRITE);
  /** The file was looked up and its metadata not yet pushed into the kernel's page cache (see takeNotifications). */
  private storeMeta: 'no' | 'due' | 'done' = 'no';

  /** `bootstrap` is the image's bootstrap, the first `map.metaLength` bytes of the flat image. */
  constructor(readonly map: FlatImageMap, private readonly bootstrap: Buffer, private readonly chunks: SyncChunkSource | undefined, private readonly events: FsEvents = {}, place: { base?: number; ownsRoot?: boolean; mtime?: number } = {}) {
    this.base = place.base ?? 0;
    this.ownsRoot = place.ownsRoot ?? true;
    this.mtime = place.mtime ?? 0;
  }

  private get dirId(): number {
    return this.ownsRoot ? FUSE_ROOT_ID : this.base + 2;
  }

  private get fileId(): number {
    return this.base + 3;
  }

  rootEntry(): Entry {
    return this.entry(this.dirId);
  }

  private entry(nodeid: number): Entry {
    return { nodeid, generation: 1, entryValid: CACHE_TIMEOUT, attrValid: CACHE_TIMEOUT, attr: this.attr(nodeid) };
  }

  private attr(nodeid: number): Attr {
    const isFile = nodeid === this.fileId;
    const size = isFile ? this.map.size : 4096;
    const t = this.mtime;
    return {
      ino: this.base + (isFile ? 2 : 1), size, blocks: Math.ceil(size / 512), atime: t, mtime: t, ctime: t, atimensec: 0, mtimensec: 0, ctimensec: 0,
      mode: isFile ? S_IFREG | 0o444 : S_IFDIR | 0o555, nlink: isFile ? 1 : 2, uid: 0, gid: 0, rdev: 0, blksize: 4096,
    };
  }

  private node(nodeid: number): 'dir' | 'file' {
    if (nodeid === this.dirId) return 'dir';
    if (nodeid === this.fileId) return 'file';
    throw new FuseProtocolError(Errno.ENOENT, `node id ${nodeid}`);
  }

  dispatch(nodeid: number, body: RequestBody): Buffer[] | number {
    const node = this.node(nodeid);
    switch (body.op) {
      case 'LOOKUP': {
        if (node !== 'dir') return Errno.ENOTDIR;
        const found = body.name.equals(NAME);
        if (found && this.storeMeta === 'no') this.storeMeta = 'due';
        return [encodeEntryOut(found ? this.entry(this.fileId) : negativeEntry(CACHE_TIMEOUT))];
      }
      case 'GETATTR':
        return [encodeAttrOut(CACHE_TIMEOUT, this.attr(nodeid))];
      case 'OPEN':
      case 'OPENDIR':
        // no-open: the kernel keeps the file's pages cached and sends no RELEASE
        return node === 'dir' && body.op === 'OPEN' ? Errno.EISDIR : Errno.ENOSYS;
      case 'READ':
        return node === 'dir' ? Errno.EISDIR : this.read(body.offset, body.size);
      case 'READDIR':
      case 'READDIRPLUS':
        return node === 'dir' ? this.readdir(body.offset, body.size, body.op === 'READDIRPLUS') : Errno.ENOTDIR;
      case 'STATFS':
        return [encodeStatfsOut({ blocks: Math.ceil(this.map.size / 4096), bfree: 0, bavail: 0, files: 2, ffree: 0, bsize: 4096, namelen: MAX_NAME_LENGTH, frsize: 4096 })];
      case 'ACCESS':
        return (body.mask & W_OK) !== 0 ? Errno.EROFS : [];
      case 'GETXATTR':
        return Errno.ENODATA;
      case 'LISTXATTR':
        return noXattrsReply(body.size);
      case 'READLINK':
        return Errno.EINVAL;
      case 'RELEASE':
      case 'RELEASEDIR':
        return [];
      default:
        // FLUSH among them: read-only, so the kernel stops sending it
        return Errno.ENOSYS;
    }
  }

  /**
   * Once the kernel knows the file (after its first LOOKUP): the bootstrap, the metadata region of the
   * flat image, pushed into the file's page cache (FUSE_NOTIFY_STORE). The kernel's EROFS reads its
   * metadata one 4 KiB folio at a time, each a FUSE round trip when not cached; stored, a cold walk
   * of the tree makes none.
   */
  takeNotifications(): Buffer[][] {
    if (this.storeMeta !== 'due') return [];
    this.storeMeta = 'done';
    const out: Buffer[][] = [];
    for (let at = 0; at < this.map.metaLength; at += MAX_WRITE) {
      out.push(notifyStore(this.fileId, at, this.bootstrap.subarray(at, Math.min(this.map.metaLength, at + MAX_WRITE))));
    }
    return out;
  }

  private read(offset: number, size: number): Buffer[] | number {
    if (offset >= this.map.size) return [];
    const length = Math.min(size, MAX_WRITE, this.map.size - offset);
    let at = 0;
    try {
      for (const p of this.map.pieces(offset, length)) {
        if (p.kind === 'meta') this.bootstrap.copy(this.reply, at, p.offset, p.offset + p.length);
        else if (p.kind === 'hole') this.reply.fill(0, at, at + p.length);
        else if (!this.chunks) return Errno.EIO;
        else {
          this.chunks.read(p.chunk).copy(this.reply, at, p.start, p.start + p.length);
          this.chunks.recycle();
        }
        at += p.length;
      }
    } catch (err) {
      if (!(err instanceof ChunkIntegrityError) && !isSystemError(err)) throw err;
      this.events.onReadError?.(this.fileId, err as Error);
      return Errno.EIO;
    }
    return [this.reply.subarray(0, length)];
  }

  private readdir(offset: number, size: number, plus: boolean): Buffer[] {
    const packer = new DirentPacker(size, plus);
    const all = [
      { ino: this.base + 1, type: DT_DIR, name: Buffer.from('.'), entry: negativeEntry(0) },
      { ino: this.base + 1, type: DT_DIR, name: Buffer.from('..'), entry: negativeEntry(0) },
      { ino: this.base + 2, type: DT_REG, name: NAME, entry: this.entry(this.fileId) },
    ];
    for (let i = offset; i < all.length; i++) {
      const { entry, ...d } = all[i]!;
      if (!packer.add({ ...d, off: i + 1 }, plus ? entry : undefined)) break;
    }
    return [packer.finish()];
  }
}
