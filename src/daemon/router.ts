// Which filesystem answers a FUSE request. A dedicated mount serves one image at its root. A shared
// mount serves a small read-only directory at its root whose entries are the images mounted through
// the API (`/api/v1/mount?mountpoint=/ID` shows up as MOUNT/ID); each image owns a span of node
// ids, so a request's node id alone says which image it is about. A slot is never reused, so a node
// id the kernel still holds for an unmounted image is ESTALE, never another image's inode.
import { S_IFDIR } from '../rafs/tree.js';
import {
  type Attr, decodeRequest, encodeAttrOut, encodeEntryOut, encodeInitOut, encodeOpenOut, encodeStatfsOut, type Entry, Errno,
  errorReply, expectsReply, FUSE_ROOT_ID, FuseProtocolError, type InitReply, MAX_NAME_LENGTH, negativeEntry, negotiateInit,
  packDirents, packDirentsPlus, replyParts, type RequestBody, W_OK, noXattrsReply,
} from './fuse/protocol.js';

/** Node ids per image slot of a shared mount: RAFS nids are 32-bit, so nid + 2 always fits. */
export const SLOT_SPAN = 2 ** 34;
/** The highest slot whose node ids stay exact in a double. */
export const MAX_SLOT = 2 ** 19 - 1;

export type DaemonMode = 'dedicated' | 'shared';

export interface RouterEvents {
  /** INIT was answered (the kernel has applied it once the reply is written). */
  onInit?(reply: InitReply): void;
  /** Caps the readahead INIT lets the kernel apply (bytes). */
  readaheadLimit?: number;
  /** A request could not be served because of a bug or corrupt metadata (EIO to the caller). */
  onError?(opcode: number, err: Error): void;
}

/** What serves one image's node ids: its filesystem tree (fs.ts), or its flat block image as one file (flat-file-fs.ts). */
export interface ImageFs {
  /** The entry of the image's root directory (a shared mount's MOUNT/NAME). */
  rootEntry(): Entry;
  /** Reply payload, or an errno, for a request about one of this image's node ids. */
  dispatch(nodeid: number, body: RequestBody): Buffer[] | number;
  /** Notify messages to write once the reply is written (each one writev), if any. */
  takeNotifications?(): Buffer[][];
}

/** Where an image of a shared mount lives: its slot's node ids start at the returned base. */
export const slotBase = (slot: number): number => slot * SLOT_SPAN;


export class FuseRouter {
  private readonly bySlot = new Map<number, { name: string; fs: ImageFs }>();
  private readonly byName = new Map<string, number>();
  private readonly started = Math.floor(Date.now() / 1000);

  constructor(readonly mode: DaemonMode, private readonly events: RouterEvents = {}) {}

  /** Serves `fs` (built with base slotBase(slot), or owning the root when dedicated) as `name`. */
  add(slot: number, name: string, fs: ImageFs): void {
    if (this.mode === 'dedicated' && this.bySlot.size > 0) throw new Error('a dedicated mount serves one image');
    this.remove(slot);
    this.bySlot.set(slot, { name, fs });
    this.byName.set(name, slot);
  }

  remove(slot: number): ImageFs | undefined {
    const found = this.bySlot.get(slot);
    if (!found) return undefined;
    this.bySlot.delete(slot);
    if (this.byName.get(found.name) === slot) this.byName.delete(found.name);
    return found.fs;
  }

  /** What the images want to tell the kernel now that the last reply is written (see ImageFs). */
  takeNotifications(): Buffer[][] {
    const out: Buffer[][] = [];
    for (const { fs } of this.bySlot.values()) if (fs.takeNotifications) out.push(...fs.takeNotifications());
    return out;
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

  private dispatch(nodeid: number, body: RequestBody): Buffer[] | number {
    switch (body.op) {
      case 'INIT': {
        const reply = negotiateInit(body, this.events.readaheadLimit);
        const out = encodeInitOut(reply);
        this.events.onInit?.(reply);
        return [out];
      }
      case 'DESTROY':
        return [];
      case 'UNKNOWN':
        return Errno.ENOSYS;
    }
    if (this.mode === 'shared' && nodeid === FUSE_ROOT_ID) return this.rootOp(body);
    const image = this.bySlot.get(this.mode === 'shared' ? Math.floor(nodeid / SLOT_SPAN) : 0);
    // a dedicated mount has its image from the start; a shared image may have been unmounted
    if (!image) return this.mode === 'shared' ? Errno.ESTALE : Errno.EIO;
    return image.fs.dispatch(nodeid, body);
  }

  /** The shared mount's root: a directory of the mounted images. */
  private rootOp(body: RequestBody): Buffer[] | number {
    switch (body.op) {
      case 'LOOKUP': {
        const slot = this.byName.get(body.name.toString('latin1'));
        const fs = slot === undefined ? undefined : this.bySlot.get(slot)?.fs;
        // never cached: an image may be unmounted and another mounted under the same name
        return [encodeEntryOut(fs ? { ...fs.rootEntry(), entryValid: 0 } : negativeEntry(0))];
      }
      case 'GETATTR':
        return [encodeAttrOut(0, this.rootAttr())];
      case 'OPENDIR':
        return [encodeOpenOut(0n, 0)];
      case 'OPEN':
        return Errno.EISDIR;
      case 'READ':
        return Errno.EISDIR;
      case 'READDIR':
      case 'READDIRPLUS':
        return this.rootReaddir(body.offset, body.size, body.op === 'READDIRPLUS');
      case 'READLINK':
        return Errno.EINVAL;
      case 'GETXATTR':
        return Errno.ENODATA;
      case 'LISTXATTR':
        return noXattrsReply(body.size);
      case 'STATFS':
        return [encodeStatfsOut({ blocks: 0, bfree: 0, bavail: 0, files: this.bySlot.size, ffree: 0, bsize: 4096, namelen: MAX_NAME_LENGTH, frsize: 4096 })];
      case 'ACCESS':
        return (body.mask & W_OK) !== 0 ? Errno.EROFS : [];
      case 'RELEASE':
      case 'RELEASEDIR':
        return [];
      case 'FLUSH':
        return Errno.ENOSYS;
      default:
        return Errno.ENOSYS;
    }
  }

  private rootAttr(): Attr {
    const t = this.started;
    return { ino: FUSE_ROOT_ID, size: 4096, blocks: 8, atime: t, mtime: t, ctime: t, atimensec: 0, mtimensec: 0, ctimensec: 0, mode: S_IFDIR | 0o755, nlink: 2 + this.bySlot.size, uid: 0, gid: 0, rdev: 0, blksize: 4096 };
  }

  private rootReaddir(offset: number, size: number, plus: boolean): Buffer[] {
    const DT_DIR = 4;
    const all: { ino: number; off: number; type: number; name: Buffer; entry: Entry }[] = [
      { ino: FUSE_ROOT_ID, off: 1, type: DT_DIR, name: Buffer.from('.'), entry: negativeEntry(0) },
      { ino: FUSE_ROOT_ID, off: 2, type: DT_DIR, name: Buffer.from('..'), entry: negativeEntry(0) },
    ];
    for (const { name, fs } of this.bySlot.values()) {
      const entry = { ...fs.rootEntry(), entryValid: 0 };
      all.push({ ino: entry.attr.ino, off: all.length + 1, type: DT_DIR, name: Buffer.from(name, 'latin1'), entry });
    }
    const rest = all.slice(offset);
    return [plus ? packDirentsPlus(rest, size).buf : packDirents(rest, size).buf];
  }
}
