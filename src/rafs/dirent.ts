// Directory blocks (docs/rafs-v6.md §1.10): 12-byte dirents then their names (no NULs) per block, every entry
// of the directory — `.` and `..` included — in one global memcmp order so lookups can bisect.
import { putU16, readU64, sliceChecked, writeU64 } from './bytes.js';
import { RafsEncodeError, RafsFormatError } from './errors.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from './tree.js';

export const DIRENT_SIZE = 12;
export const MAX_NAME_LENGTH = 255;

export const FileType = { UNKNOWN: 0, REG: 1, DIR: 2, CHR: 3, BLK: 4, FIFO: 5, SOCK: 6, SYMLINK: 7 } as const;

const FILE_TYPES = new Map<number, number>([
  [S_IFREG, FileType.REG],
  [S_IFDIR, FileType.DIR],
  [S_IFCHR, FileType.CHR],
  [S_IFBLK, FileType.BLK],
  [S_IFIFO, FileType.FIFO],
  [S_IFSOCK, FileType.SOCK],
  [S_IFLNK, FileType.SYMLINK],
]);

export function fileTypeOfMode(mode: number): number {
  return FILE_TYPES.get(mode & S_IFMT) ?? FileType.UNKNOWN;
}

export interface Dirent {
  /** Byte string. */
  name: string;
  nid: number;
  fileType: number;
  /** The name's bytes as stored (parsed entries only: a view of the bootstrap, no copy). */
  nameBytes?: Buffer;
}

/**
 * Sorts `entries` (which must include `.` and `..`) and packs them into directory blocks.
 * Returns the directory's data: full blocks of `blockSize` bytes, then the used bytes of the last
 * block, so its length is the directory's i_size.
 */
export function packDirents(entries: readonly Dirent[], blockSize: number): Buffer {
  return packSortedDirents(sortDirents(entries), blockSize);
}

/** `entries` in the one memcmp order of a directory's blocks; refuses bad and duplicate names. */
export function sortDirents<T extends Dirent>(entries: readonly T[]): T[] {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 0; i < sorted.length; i++) {
    const name = sorted[i]!.name;
    checkName(name);
    if (i > 0 && sorted[i - 1]!.name === name) throw new RafsEncodeError('directory', `duplicate name ${JSON.stringify(name)}`);
  }
  return sorted;
}

/** The data size (i_size) of sorted entries packed into blocks: known before their nids are. */
export function packedDirentsSize(sorted: readonly Dirent[], blockSize: number): number {
  const starts = blockStarts(sorted, blockSize);
  return (starts.length - 1) * blockSize + blockUsed(sorted, starts[starts.length - 1]!, sorted.length);
}

/** Sorted entries (sortDirents) packed into directory blocks, as packDirents. */
export function packSortedDirents(sorted: readonly Dirent[], blockSize: number): Buffer {
  const starts = blockStarts(sorted, blockSize);
  const last = starts.length - 1;
  const data = Buffer.alloc(last * blockSize + blockUsed(sorted, starts[last]!, sorted.length));
  for (let b = 0; b <= last; b++) encodeBlock(data, b * blockSize, sorted, starts[b]!, b < last ? starts[b + 1]! : sorted.length);
  return data;
}

/** Index of the first entry of each block: a block takes entries while their dirents and names fit. */
function blockStarts(sorted: readonly Dirent[], blockSize: number): number[] {
  const starts = [0];
  let used = 0;
  for (let i = 0; i < sorted.length; i++) {
    const need = DIRENT_SIZE + sorted[i]!.name.length;
    if (used + need > blockSize) {
      starts.push(i);
      used = 0;
    }
    used += need;
  }
  return starts;
}

/** Bytes that entries [from, to) take in their block. */
function blockUsed(sorted: readonly Dirent[], from: number, to: number): number {
  let used = 0;
  for (let i = from; i < to; i++) used += DIRENT_SIZE + sorted[i]!.name.length;
  return used;
}

function checkName(name: string): void {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || /[^\x01-\xff]|\//.test(name)) {
    throw new RafsEncodeError('directory', `invalid entry name ${JSON.stringify(name)}: 1..255 bytes without '/' or NUL`);
  }
}

/** Entries [from, to) as one block at `at`: their dirents, then their names. */
function encodeBlock(data: Buffer, at: number, sorted: readonly Dirent[], from: number, to: number): void {
  let nameOffset = (to - from) * DIRENT_SIZE;
  for (let i = from; i < to; i++) {
    const entry = sorted[i]!;
    const dirent = at + (i - from) * DIRENT_SIZE;
    writeU64(data, entry.nid, dirent);
    putU16(data, dirent + 8, nameOffset);
    data[dirent + 10] = entry.fileType;
    nameOffset += data.write(entry.name, at + nameOffset, 'latin1');
  }
}

/** Parses one directory block of `length` valid bytes (bs, or less for the last block). */
export function parseDirentBlock(buf: Buffer, offset: number, length: number): Dirent[] {
  const block = sliceChecked(buf, offset, length, 'directory block');
  const fail = (at: number, detail: string): never => {
    throw new RafsFormatError('directory block', offset + at, detail);
  };
  if (length < DIRENT_SIZE) fail(0, `${length} bytes cannot hold a dirent`);
  const firstNameOffset = block.readUInt16LE(8);
  if (firstNameOffset < DIRENT_SIZE || firstNameOffset % DIRENT_SIZE !== 0 || firstNameOffset >= length) {
    fail(8, `bad first name offset ${firstNameOffset}`);
  }
  const count = firstNameOffset / DIRENT_SIZE;
  const entries: Dirent[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * DIRENT_SIZE;
    const nameOffset = block.readUInt16LE(at + 8);
    const nameEnd = i + 1 < count ? block.readUInt16LE(at + DIRENT_SIZE + 8) : lastNameEnd(block, nameOffset);
    if (nameOffset < firstNameOffset || nameEnd <= nameOffset || nameEnd > length || nameEnd - nameOffset > MAX_NAME_LENGTH) {
      fail(at + 8, `bad name bounds [${nameOffset}, ${nameEnd})`);
    }
    const name = block.toString('latin1', nameOffset, nameEnd);
    if (/[\0/]/.test(name)) fail(nameOffset, `invalid entry name ${JSON.stringify(name)}`);
    const fileType = block.readUInt8(at + 10);
    if (fileType > FileType.SYMLINK) fail(at + 10, `unknown file type ${fileType}`);
    entries.push({ name, nid: readU64(block, at, 'dirent'), fileType, nameBytes: block.subarray(nameOffset, nameEnd) });
  }
  return entries;
}

/** The last name runs to the first NUL or the end of the block's valid bytes. */
function lastNameEnd(block: Buffer, nameOffset: number): number {
  if (nameOffset >= block.length) return nameOffset;
  const nul = block.indexOf(0, nameOffset);
  return nul < 0 ? block.length : nul;
}
