// Which bytes of a bootstrap the inodes met so far own. In a well-formed image every byte belongs to
// at most one inode — its record (inode, xattrs, inline data or chunk indexes) or its data blocks —
// so a walk that claims each inode's bytes when it first meets it reads every dirent and chunk index
// at most once: its work is bounded by the bootstrap's size. Directories sharing dirent blocks, or
// inodes overlapping one another, are what a hostile image would need to make a walk quadratic.
import { RafsFormatError } from './errors.js';

/** Records start 32-byte aligned (nid slots) and data blocks block-aligned: claims are kept per 32 bytes. */
const UNIT = 32;

export class ClaimedExtents {
  /** One bit per unit: owned by some inode. */
  private readonly owned: Uint8Array;
  /** One bit per unit: an inode's record starts here. */
  private readonly records: Uint8Array;

  constructor(size: number) {
    const bytes = Math.ceil(size / UNIT / 8);
    this.owned = new Uint8Array(bytes);
    this.records = new Uint8Array(bytes);
  }

  /** Whether the inode at `offset` was claimed before (a further hard link to it, or a cycle). */
  hasRecord(offset: number): boolean {
    return test(this.records, offset / UNIT);
  }

  /** Claims the record of the inode at `offset` (32-byte aligned), `length` bytes long. */
  claimRecord(offset: number, length: number): void {
    this.claim(offset, length, 'inode');
    set(this.records, offset / UNIT);
  }

  /** Claims [offset, offset + length) for the inode whose `structure` it is; throws if another owns any of it. */
  claim(offset: number, length: number, structure: string): void {
    const end = Math.ceil((offset + length) / UNIT);
    for (let unit = Math.floor(offset / UNIT); unit < end; unit++) {
      if (test(this.owned, unit)) throw new RafsFormatError(structure, offset, `bytes [${offset}, ${offset + length}) overlap another inode's (shared with a second directory, file or record)`);
      set(this.owned, unit);
    }
  }
}

const test = (bits: Uint8Array, i: number): boolean => (bits[i >>> 3]! & (1 << (i & 7))) !== 0;

function set(bits: Uint8Array, i: number): void {
  bits[i >>> 3]! |= 1 << (i & 7);
}
