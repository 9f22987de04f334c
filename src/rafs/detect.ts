// Telling RAFS v5 from v6 bootstraps by their first bytes (docs/rafs-v6.md §2), as nydus-snapshotter does
// with the first 8 KiB of image.boot.
import { EROFS_MAGIC, EROFS_SUPER_OFFSET } from './superblock.js';

export type RafsVersion = 'v5' | 'v6' | 'unknown';

/** How much of a bootstrap detection needs to see. */
export const DETECT_HEAD_SIZE = 8192;
const RAFS_V5_MAGIC = 0x52414653;
const RAFS_V5_VERSION = 0x500;
/** The v6 superblock must be complete up to the device table. */
const MIN_V6_SIZE = 1408;

/** `head` is the start of the file (at least the first 8 KiB, or all of a smaller file). */
export function detectRafsVersion(head: Buffer): RafsVersion {
  if (head.length >= 8 && head.readUInt32LE(0) === RAFS_V5_MAGIC && head.readUInt32LE(4) === RAFS_V5_VERSION) return 'v5';
  if (head.length >= MIN_V6_SIZE && head.readUInt32LE(EROFS_SUPER_OFFSET) === EROFS_MAGIC) return 'v6';
  return 'unknown';
}

