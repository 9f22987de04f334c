// Reads a RAFS v6 bootstrap held in memory. `open` validates the superblocks and the blob and
// device tables the way nydusd does (docs/rafs-v6.md §1.17); inodes, directories and chunk indexes are decoded
// on demand with every offset checked against the buffer, so a corrupt image only ever yields
// RafsFormatError. A walk claims the bytes of every inode it meets (claimed-extents.ts): directory
// cycles, shared directories and shared dirent blocks are refused, so no walk does more work than
// the bootstrap's size allows.
import { alignUp, checkRange } from './bytes.js';
import { checkpointStart, decodeCheckpointTable, spanEndingAt } from './checkpoints.js';
import { isSpansBlob, spanBlobId } from './span-blob.js';
import { ClaimedExtents } from './claimed-extents.js';
import { BLOB_ENTRY_SIZE, BlobFeature, decodeBlobTable, decodeDeviceSlot, DEVICE_SLOT_SIZE, type DeviceSlot } from './blob-table.js';
import {
  asCheckpointChunk, asMemberChunk, CHUNK_INDEX_SIZE, CHUNK_INFO_SIZE, chunkKey, decodeChunkFormat, decodeChunkIndex, decodeChunkInfo, MAX_BLOBS, MAX_INNER_OFFSET,
  maxStoredChunkSize, maxStoredMemberSize,
} from './chunk.js';
import { DETECT_HEAD_SIZE, detectRafsVersion } from './detect.js';
import { type Dirent, FileType, fileTypeOfMode, parseDirentBlock } from './dirent.js';
import { RafsFormatError } from './errors.js';
import { decodeDev, decodeInode, EXTENDED_INODE_SIZE, COMPACT_INODE_SIZE, INODE_SLOT_SIZE, Layout } from './inode.js';
import {
  decodeErofsSuperblock, decodeExtSuperblock, decodeRafsFlags, DEVICE_TABLE_OFFSET, EROFS_SUPER_OFFSET,
  type ErofsSuperblock, EXT_SUPER_OFFSET, type RafsExtSuperblock, type RafsFlags,
} from './superblock.js';
import {
  type BlobInfo, type Bootstrap, type Checkpoint, type ChunkRef, type Compressor, type Digester, type Inode, MAX_TREE_DEPTH,
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type TreeNode,
} from './tree.js';
import { decodeXattrs, xattrAreaSize } from './xattr.js';

const PREFETCH_ENTRY_SIZE = 4;
const DIRENT_BLOCK_CACHE_SIZE = 512;

/** An inode's attributes as stored. */
export interface RafsInode {
  nid: number;
  /** The builder's inode number (nydusd reports st_ino = nid instead). */
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  mtimeNsec: number;
  nlink: number;
  rdevMajor: number;
  rdevMinor: number;
  layout: Layout;
  /** i_xattr_icount: 0 when the inode has no xattrs. */
  xattrCount: number;
  extended: boolean;
}

export interface DirEntry extends Dirent {
  /** Position of this entry; pass it to readdir to resume here. */
  offset: number;
  /** Position of the entry after this one. */
  nextOffset: number;
}

/** The part of one chunk that a byte range of a file covers. */
export interface ChunkSlice {
  chunk: ChunkRef;
  /** Ordinal of the chunk in the file. */
  index: number;
  /** Offset inside the chunk's uncompressed data. */
  start: number;
  length: number;
}

export interface WalkEntry {
  /** Absolute byte-string path; '/' for the root. */
  path: string;
  name: string;
  nid: number;
  parentNid: number;
  inode: RafsInode;
  /** The walk met this nid before (a further hard link): per-inode work is already done. */
  seen: boolean;
}

/** Where an inode and the bytes after it sit in the image. */
interface Located {
  info: RafsInode;
  u: number;
  offset: number;
  /** First byte after inode + inline xattrs. */
  tailOffset: number;
}

export class RafsImage {
  readonly blockSize: number;
  readonly root: number;
  readonly chunkSize: number;
  readonly compressor: Compressor;
  readonly digester: Digester;
  readonly flags: RafsFlags;
  readonly blobs: readonly BlobInfo[];
  readonly devices: readonly DeviceSlot[];
  readonly prefetchNids: readonly number[];
  readonly superblock: ErofsSuperblock;
  readonly extSuperblock: RafsExtSuperblock;
  private readonly metaStart: number;
  /** Where each chunk info table entry is, by (blob index, CI index): read once, without decoding the entries. */
  private chunkPlaces: Map<number, number> | undefined;
  /** Chunk info table entries decoded (and checked) so far, by (blob index, CI index). */
  private readonly chunkInfos = new Map<number, ChunkRef>();
  /** Parsed directory blocks by position, least recently used first. */
  private readonly direntBlocks = new Map<number, Dirent[]>();

  private constructor(private readonly buf: Buffer) {
    const version = detectRafsVersion(buf.subarray(0, DETECT_HEAD_SIZE));
    if (version === 'v5') throw new RafsFormatError('bootstrap', 0, 'RAFS v5 bootstrap detected: not supported');
    if (version !== 'v6') throw new RafsFormatError('bootstrap', EROFS_SUPER_OFFSET, 'not a RAFS bootstrap (no RAFS v5 or EROFS magic)');
    this.superblock = decodeErofsSuperblock(buf, EROFS_SUPER_OFFSET);
    this.blockSize = 2 ** this.superblock.blockSizeBits;
    if (buf.length < 4096 || buf.length % this.blockSize !== 0) throw new RafsFormatError('bootstrap', buf.length, `size ${buf.length} is not a multiple of the ${this.blockSize}-byte block size`);
    this.extSuperblock = decodeExtSuperblock(buf, EXT_SUPER_OFFSET);
    this.flags = decodeRafsFlags(this.extSuperblock.flags, EXT_SUPER_OFFSET);
    this.chunkSize = this.extSuperblock.chunkSize;
    this.compressor = this.flags.compressor;
    this.digester = this.flags.digester;
    this.blobs = this.readBlobTable();
    this.readCheckpoints();
    this.devices = this.readDeviceTable();
    this.checkTableRanges();
    this.checkSpanBlobIds();
    this.metaStart = this.superblock.metaBlkaddr * this.blockSize;
    this.root = this.superblock.rootNid;
    if ((this.inode(this.root).mode & S_IFMT) !== S_IFDIR) throw new RafsFormatError('superblock', EROFS_SUPER_OFFSET + 14, `root nid ${this.root} is not a directory`);
    this.prefetchNids = this.readPrefetchTable();
  }

  /** Validates `buf` as a RAFS v6 bootstrap; throws RafsFormatError (also for v5 bootstraps). */
  static open(buf: Buffer): RafsImage {
    return new RafsImage(buf);
  }

  private readBlobTable(): BlobInfo[] {
    const { blobTableOffset, blobTableSize } = this.extSuperblock;
    if (blobTableSize / BLOB_ENTRY_SIZE > MAX_BLOBS) throw new RafsFormatError('RAFS extended superblock', EXT_SUPER_OFFSET + 16, `blob table holds more than ${MAX_BLOBS} blobs`);
    return decodeBlobTable(this.buf, blobTableOffset, blobTableSize, { chunkSize: this.chunkSize, tarfs: this.flags.tarfs });
  }

  /** Each CHECKPOINTS blob's checkpoints, from the checkpoint table (checkpoints.ts). */
  private readCheckpoints(): void {
    const { checkpointTableOffset, checkpointTableSize } = this.extSuperblock;
    const perBlob = decodeCheckpointTable(this.buf, checkpointTableOffset, checkpointTableSize, this.blobs);
    this.blobs.forEach((blob, i) => {
      if (!(blob.features & BlobFeature.CHECKPOINTS)) return;
      if (blob.compressor !== 'gzip') throw new RafsFormatError('blob table entry', this.extSuperblock.blobTableOffset + i * BLOB_ENTRY_SIZE, `a CHECKPOINTS blob compressed with ${blob.compressor} (gzip expected)`);
      blob.checkpoints = perBlob[i]!;
    });
  }

  /** Each SPANS blob's id is the digest of what its chunks decode to (span-blob.ts). */
  private checkSpanBlobIds(): void {
    const spans = this.blobs.flatMap((blob, i) => (isSpansBlob(blob) ? [i] : []));
    if (spans.length === 0) return;
    const chunks = new Map<number, ChunkRef[]>(spans.map((i) => [i, []]));
    for (const at of this.chunkTable().values()) chunks.get(this.buf.readUInt32LE(at + 32))?.push(this.checkedChunkInfo(at));
    for (const i of spans) {
      const blob = this.blobs[i]!;
      if (!(blob.features & BlobFeature.CHECKPOINTS)) throw new RafsFormatError('blob table entry', this.extSuperblock.blobTableOffset + i * BLOB_ENTRY_SIZE, 'a SPANS blob without CHECKPOINTS');
      if (spanBlobId(blob, chunks.get(i)!) !== blob.blobId) {
        throw new RafsFormatError('blob table entry', this.extSuperblock.blobTableOffset + i * BLOB_ENTRY_SIZE, `SPANS blob ${blob.blobId} is not named for its layer, checkpoints and chunks`);
      }
    }
  }

  private readDeviceTable(): DeviceSlot[] {
    const count = this.superblock.extraDevices;
    if (count !== this.blobs.length) throw new RafsFormatError('superblock', EROFS_SUPER_OFFSET + 86, `${count} devices for ${this.blobs.length} blobs`);
    const end = DEVICE_TABLE_OFFSET + count * DEVICE_SLOT_SIZE;
    if (count > 0 && end > this.extSuperblock.blobTableOffset) throw new RafsFormatError('device table', DEVICE_TABLE_OFFSET, 'overlaps the blob table');
    const devices = Array.from({ length: count }, (_, i) => decodeDeviceSlot(this.buf, DEVICE_TABLE_OFFSET + i * DEVICE_SLOT_SIZE));
    const ids = new Set(devices.map((d) => d.blobId));
    if (ids.size !== devices.length) throw new RafsFormatError('device table', DEVICE_TABLE_OFFSET, 'duplicate blob ids');
    return devices;
  }

  private checkTableRanges(): void {
    const { chunkTableOffset, chunkTableSize, prefetchTableOffset, prefetchTableSize } = this.extSuperblock;
    checkRange(this.buf.length, chunkTableOffset, chunkTableSize, 'chunk info table');
    checkRange(this.buf.length, prefetchTableOffset, prefetchTableSize, 'prefetch table');
    checkRange(this.buf.length, this.superblock.metaBlkaddr * this.blockSize, 0, 'meta area');
  }

  /** nids up to the first 0 entry. */
  private readPrefetchTable(): number[] {
    const { prefetchTableOffset, prefetchTableSize } = this.extSuperblock;
    const nids: number[] = [];
    for (let at = prefetchTableOffset; at < prefetchTableOffset + prefetchTableSize; at += PREFETCH_ENTRY_SIZE) {
      const nid = this.buf.readUInt32LE(at);
      if (nid === 0) break;
      nids.push(nid);
    }
    return nids;
  }

  private locate(nid: number): Located {
    const offset = this.metaStart + nid * INODE_SLOT_SIZE;
    if (!Number.isSafeInteger(nid) || nid < 0 || offset >= this.buf.length) throw new RafsFormatError('inode', offset, `nid ${nid} lies outside the image`);
    const disk = decodeInode(this.buf, offset);
    const fail = (detail: string): never => {
      throw new RafsFormatError('inode', offset, `nid ${nid}: ${detail}`);
    };
    const type = disk.mode & S_IFMT;
    if (fileTypeOfMode(disk.mode) === FileType.UNKNOWN) fail(`unknown file type in mode 0o${disk.mode.toString(8)}`);
    if (!layoutsFor(type).includes(disk.layout)) fail(`layout ${disk.layout} is not valid for mode 0o${disk.mode.toString(8)}`);
    if (disk.nlink === 0) fail('nlink is 0');
    const tailOffset = offset + (disk.extended ? EXTENDED_INODE_SIZE : COMPACT_INODE_SIZE) + xattrAreaSize(disk.xattrCount);
    checkRange(this.buf.length, offset, tailOffset - offset, 'inode');
    const isDevice = type === S_IFCHR || type === S_IFBLK;
    const { major, minor } = isDevice ? decodeDev(disk.u) : { major: 0, minor: 0 };
    const { extended, layout, xattrCount, mode, size, ino, uid, gid, mtime, mtimeNsec, nlink } = disk;
    const info = { nid, ino, mode, uid, gid, size, mtime, mtimeNsec, nlink, rdevMajor: major, rdevMinor: minor, layout, xattrCount, extended };
    return { info, u: disk.u, offset, tailOffset };
  }

  /** The inode's attributes; throws RafsFormatError for a nid that is not a valid inode. */
  inode(nid: number): RafsInode {
    return this.locate(nid).info;
  }

  private locateType(nid: number, type: number, what: string): Located {
    const located = this.locate(nid);
    if ((located.info.mode & S_IFMT) !== type) throw new RafsFormatError('inode', located.offset, `nid ${nid} is not a ${what}`);
    return located;
  }

  /** Offset and length of data block `index` of a flat (plain or inline) inode. */
  private dataBlock(at: Located, index: number): { offset: number; length: number } {
    const { size, layout } = at.info;
    const length = Math.min(this.blockSize, size - index * this.blockSize);
    const isTail = layout === Layout.FLAT_INLINE && size % this.blockSize !== 0 && index === Math.floor(size / this.blockSize);
    if (!isTail) {
      const offset = (at.u + index) * this.blockSize;
      checkRange(this.buf.length, offset, length, 'data block');
      return { offset, length };
    }
    const blockEnd = (Math.floor(at.offset / this.blockSize) + 1) * this.blockSize;
    if (at.tailOffset + length > blockEnd) throw new RafsFormatError('inode', at.offset, `nid ${at.info.nid}: inline data crosses a block boundary`);
    checkRange(this.buf.length, at.tailOffset, length, 'inline data');
    return { offset: at.tailOffset, length };
  }

  private blockCount(at: Located): number {
    checkRange(this.buf.length, 0, at.info.size, 'inode data');
    return Math.ceil(at.info.size / this.blockSize);
  }

  /** A parsed directory block; recently used ones are kept because lookups bisect the same blocks. */
  private direntBlock(dir: Located, index: number): Dirent[] {
    const { offset, length } = this.dataBlock(dir, index);
    const key = offset * (this.blockSize + 1) + length;
    let entries = this.direntBlocks.get(key);
    if (entries) {
      this.direntBlocks.delete(key);
    } else {
      entries = parseDirentBlock(this.buf, offset, length);
      if (this.direntBlocks.size >= DIRENT_BLOCK_CACHE_SIZE) this.direntBlocks.delete(this.direntBlocks.keys().next().value!);
    }
    this.direntBlocks.set(key, entries);
    return entries;
  }

  /** The nid `name` (byte string or bytes) refers to in directory `dirNid`, if any. */
  lookup(dirNid: number, name: string | Buffer): number | undefined {
    const target = typeof name === 'string' ? name : name.toString('latin1');
    const dir = this.locateType(dirNid, S_IFDIR, 'directory');
    // Entries are globally sorted: find the last block whose first name is <= target, then bisect it.
    let [low, high] = [0, this.blockCount(dir) - 1];
    let candidate: Dirent[] | undefined;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const entries = this.direntBlock(dir, mid);
      if (entries[0]!.name <= target) {
        candidate = entries;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return candidate === undefined ? undefined : bisect(candidate, target)?.nid;
  }

  /** Entries of a directory, `.` and `..` included, in on-disk order, from `offset` on. */
  *readdir(dirNid: number, offset = 0): Generator<DirEntry> {
    const dir = this.locateType(dirNid, S_IFDIR, 'directory');
    const blocks = this.blockCount(dir);
    for (let block = Math.floor(offset / this.blockSize); block < blocks; block++) {
      const batch: DirEntry[] = [];
      this.visitBlock(dir, block, offset, (e, at, nextOffset) => batch.push({ ...e, offset: at, nextOffset }) > 0);
      yield* batch;
    }
  }

  /**
   * As readdir, without an object per entry (what serving READDIR wants): `visit` gets each entry
   * and the offset of the next one, and returns false to stop.
   */
  forEachDirent(dirNid: number, offset: number, visit: (e: Dirent, at: number, nextOffset: number) => boolean): void {
    const dir = this.locateType(dirNid, S_IFDIR, 'directory');
    const blocks = this.blockCount(dir);
    for (let block = Math.floor(offset / this.blockSize); block < blocks; block++) if (!this.visitBlock(dir, block, offset, visit)) return;
  }

  private visitBlock(dir: Located, block: number, offset: number, visit: (e: Dirent, at: number, nextOffset: number) => boolean): boolean {
    const entries = this.direntBlock(dir, block);
    const base = block * this.blockSize;
    for (let i = Math.max(0, Math.ceil((offset - base) / 12)); i < entries.length; i++) {
      const nextOffset = i + 1 < entries.length ? base + (i + 1) * 12 : base + this.blockSize;
      if (!visit(entries[i]!, base + i * 12, nextOffset)) return false;
    }
    return true;
  }

  /** A symlink's target as a byte string. */
  readlink(nid: number): string {
    const link = this.locateType(nid, S_IFLNK, 'symlink');
    const parts = Array.from({ length: this.blockCount(link) }, (_, i) => this.dataBlock(link, i));
    return parts.map(({ offset, length }) => this.buf.toString('latin1', offset, offset + length)).join('');
  }

  xattrs(nid: number): Map<string, Buffer> {
    const at = this.locate(nid);
    return decodeXattrs(this.buf, at.tailOffset - xattrAreaSize(at.info.xattrCount), at.info.xattrCount);
  }

  /** Every chunk of a regular file, in file order. */
  chunks(nid: number): ChunkRef[] {
    const file = this.locateType(nid, S_IFREG, 'regular file');
    const chunkSize = this.inodeChunkSize(file);
    return this.chunkRange(file, chunkSize, 0, Math.ceil(file.info.size / chunkSize));
  }

  /** The chunk size of regular file `nid`: its blobs' (see inodeChunkSize). */
  fileChunkSize(nid: number): number {
    return this.inodeChunkSize(this.locateType(nid, S_IFREG, 'regular file'));
  }

  /** The chunks covering [offset, offset + length) of a regular file, clipped to its size. */
  chunksForRange(nid: number, offset: number, length: number): ChunkSlice[] {
    const file = this.locateType(nid, S_IFREG, 'regular file');
    const end = Math.min(offset + length, file.info.size);
    if (offset < 0 || length <= 0 || offset >= end) return [];
    const chunkSize = this.inodeChunkSize(file);
    const first = Math.floor(offset / chunkSize);
    const chunks = this.chunkRange(file, chunkSize, first, Math.floor((end - 1) / chunkSize) + 1);
    return chunks.map((chunk, i) => {
      const chunkStart = (first + i) * chunkSize;
      const start = Math.max(offset, chunkStart) - chunkStart;
      return { chunk, index: first + i, start, length: Math.min(end, chunkStart + chunk.uncompressedSize) - chunkStart - start };
    });
  }

  /**
   * A file's chunk size, from its chunk format: min(2^chunk bits, superblock chunk size). A file
   * in blobs of a smaller chunk size than the superblock's declares it; bits above the
   * superblock's only ever mean a contiguous file the kernel maps in one piece (writer.ts).
   */
  private inodeChunkSize(file: Located): number {
    const bits = decodeChunkFormat(file.u, file.offset + 16) + this.superblock.blockSizeBits;
    return Math.min(2 ** bits, this.chunkSize);
  }

  /** Chunks [first, last) of a file of `chunkSize` chunks, resolved through the chunk info table. */
  private chunkRange(file: Located, chunkSize: number, first: number, last: number): ChunkRef[] {
    const base = alignUp(file.tailOffset, CHUNK_INDEX_SIZE);
    checkRange(this.buf.length, base, Math.ceil(file.info.size / chunkSize) * CHUNK_INDEX_SIZE, 'chunk index array');
    const chunks: ChunkRef[] = [];
    for (let i = first; i < last; i++) {
      const at = base + i * CHUNK_INDEX_SIZE;
      const index = decodeChunkIndex(this.buf, at);
      const info = this.chunkInfo(chunkKey(index.blobIndex, index.ciIndex));
      if (info === undefined) throw new RafsFormatError('chunk index', at, `blob ${index.blobIndex} chunk ${index.ciIndex} is not in the chunk info table`);
      if (index.blockAddr * this.blockSize !== info.uncompressedOffset) throw new RafsFormatError('chunk index', at, `block address ${index.blockAddr} disagrees with the chunk info table`);
      const blobChunkSize = this.blobs[info.blobIndex]!.chunkSize;
      if (blobChunkSize !== chunkSize) throw new RafsFormatError('chunk index', at, `chunk ${i} lies in a blob of chunk size ${blobChunkSize}, the file's chunk size is ${chunkSize}`);
      const expectedSize = Math.min(chunkSize, file.info.size - i * chunkSize);
      if (info.uncompressedSize !== expectedSize) throw new RafsFormatError('chunk index', at, `chunk ${i} holds ${info.uncompressedSize} bytes, the file needs ${expectedSize}`);
      chunks.push({ ...info });
    }
    return chunks;
  }

  /**
   * Every entry of the chunk info table (checked as chunkRange checks them), in table order, one at
   * a time: a caller may pause between them.
   */
  *chunkInfoTable(): Generator<ChunkRef> {
    for (const [key, at] of this.chunkTable()) yield { ...this.decodedChunkInfo(key, at) };
  }

  /** The table entry of chunk `key` (blob index, CI index), decoded and checked when first asked for. */
  private chunkInfo(key: number): ChunkRef | undefined {
    const info = this.chunkInfos.get(key);
    if (info !== undefined) return info;
    const at = this.chunkTable().get(key);
    return at === undefined ? undefined : this.decodedChunkInfo(key, at);
  }

  private decodedChunkInfo(key: number, at: number): ChunkRef {
    let info = this.chunkInfos.get(key);
    if (info === undefined) this.chunkInfos.set(key, (info = this.checkedChunkInfo(at)));
    return info;
  }

  /**
   * Where each entry of the chunk info table is, keyed by (blob index, CI index), found once: only
   * the two keys of each entry are read here (a file's first read decodes just the entries it needs,
   * not a table of tens of thousands), but a key given twice is refused for the whole table.
   */
  private chunkTable(): Map<number, number> {
    if (this.chunkPlaces) return this.chunkPlaces;
    const { chunkTableOffset, chunkTableSize } = this.extSuperblock;
    const places = new Map<number, number>();
    for (let at = chunkTableOffset; at + CHUNK_INFO_SIZE <= chunkTableOffset + chunkTableSize; at += CHUNK_INFO_SIZE) {
      const blobIndex = this.buf.readUInt32LE(at + 32);
      const ciIndex = this.buf.readUInt32LE(at + 72);
      if (blobIndex >= this.blobs.length) failChunkInfo(at, `blob index ${blobIndex} is not in the blob table`);
      if (ciIndex >= 2 ** 24) failChunkInfo(at, `CI index ${ciIndex} does not fit 24 bits`);
      const key = chunkKey(blobIndex, ciIndex);
      if (places.has(key)) failChunkInfo(at, `duplicate entry for blob ${blobIndex} chunk ${ciIndex}`);
      places.set(key, at);
    }
    this.chunkPlaces = places;
    return places;
  }

  /** One chunk info table entry, checked against its blob and the format's limits. */
  private checkedChunkInfo(at: number): ChunkRef {
    const info = decodeChunkInfo(this.buf, at);
    const blob = this.blobs[info.blobIndex];
    // failChunkInfo, not a closure per entry: a table has thousands, checked cold
    if (blob === undefined) return failChunkInfo(at, `blob index ${info.blobIndex} is not in the blob table`);
    const members = (blob.features & BlobFeature.MEMBERS) !== 0;
    const checkpoints = (blob.features & BlobFeature.CHECKPOINTS) !== 0;
    const chunk = members ? asMemberChunk(info) : checkpoints ? asCheckpointChunk(info) : info;
    if (checkpoints) checkCheckpointChunk(chunk, blob, at);
    if (chunk.ciIndex >= 2 ** 24) failChunkInfo(at, `CI index ${chunk.ciIndex} does not fit 24 bits`);
    if (chunk.uncompressedSize > blob.chunkSize) failChunkInfo(at, `uncompressed size ${chunk.uncompressedSize} exceeds the chunk size ${blob.chunkSize} of its blob`);
    if (chunk.uncompressedOffset + chunk.uncompressedSize > blob.uncompressedSize) failChunkInfo(at, 'chunk lies beyond its blob');
    if (members && blob.compressor !== 'gzip' && blob.compressor !== 'zstd') failChunkInfo(at, `a MEMBERS blob compressed with ${blob.compressor} (gzip or zstd expected)`);
    const innerOffset = chunk.innerOffset ?? 0;
    if (innerOffset > MAX_INNER_OFFSET) failChunkInfo(at, `inner offset ${innerOffset} exceeds ${MAX_INNER_OFFSET}`);
    // a member's (or checkpoint's) stored range spans what decoding its innerOffset + size bytes may need
    // a SPANS chunk's stored bytes are whole spans, which its chunk need not fill: bounded as the most any checkpoint's chunk may take
    const maxStored = isSpansBlob(blob)
      ? maxStoredMemberSize(MAX_INNER_OFFSET, blob.chunkSize, blob.compressor)
      : members || checkpoints
      ? maxStoredMemberSize(innerOffset, chunk.uncompressedSize, blob.compressor)
      : maxStoredChunkSize(chunk.uncompressedSize, blob.compressor, chunk.compressed);
    if (chunk.compressedSize > maxStored) failChunkInfo(at, `compressed size ${chunk.compressedSize} exceeds the ${maxStored} bytes ${chunk.uncompressedSize} can take`);
    // a blob that records no compressed size (0) bounds nothing
    if (blob.compressedSize > 0 && chunk.compressedOffset + chunk.compressedSize > blob.compressedSize) failChunkInfo(at, 'compressed data lies beyond its blob');
    return chunk;
  }

  /**
   * Every entry below the root, depth-first in directory order (the root itself first). Each inode's
   * bytes are claimed when first met, so the walk reads each dirent and chunk index once at most.
   */
  *walk(): Generator<WalkEntry> {
    const claims = new ClaimedExtents(this.buf.length);
    const root = this.locate(this.root);
    this.claim(claims, root);
    yield { path: '/', name: '', nid: this.root, parentNid: this.root, inode: root.info, seen: false };
    const stack = [{ path: '', nid: this.root, entries: this.readdir(this.root) }];
    while (stack.length > 0) {
      const dir = stack[stack.length - 1]!;
      const next = dir.entries.next();
      if (next.done) {
        stack.pop();
        continue;
      }
      const { name, nid } = next.value;
      if (name === '.' || name === '..') continue;
      const path = `${dir.path}/${name}`;
      const at = this.locate(nid);
      const isDir = (at.info.mode & S_IFMT) === S_IFDIR;
      const seen = claims.hasRecord(at.offset);
      if (isDir && seen) throw new RafsFormatError('directory', at.offset, `directory nid ${nid} is reachable twice (at ${JSON.stringify(path)})`);
      if (stack.length > MAX_TREE_DEPTH) throw new RafsFormatError('directory', at.offset, `${JSON.stringify(path.slice(0, 64))}... is deeper than ${MAX_TREE_DEPTH}`);
      if (!seen) this.claim(claims, at);
      yield { path, name, nid, parentNid: dir.nid, inode: at.info, seen };
      if (isDir) stack.push({ path, nid, entries: this.readdir(nid) });
    }
  }

  /**
   * Claims the bytes inode `at` owns: its record (inode, xattrs, then inline data or chunk indexes)
   * and, for directories and symlinks, the data blocks outside it.
   */
  private claim(claims: ClaimedExtents, at: Located): void {
    const { size, layout, mode } = at.info;
    const type = mode & S_IFMT;
    let recordEnd = at.tailOffset;
    if (type === S_IFREG) recordEnd = alignUp(at.tailOffset, CHUNK_INDEX_SIZE) + Math.ceil(size / this.inodeChunkSize(at)) * CHUNK_INDEX_SIZE;
    const hasData = type === S_IFDIR || type === S_IFLNK;
    const tail = hasData && layout === Layout.FLAT_INLINE ? size % this.blockSize : 0;
    recordEnd += tail;
    checkRange(this.buf.length, at.offset, recordEnd - at.offset, 'inode');
    claims.claimRecord(at.offset, recordEnd - at.offset);
    if (!hasData) return;
    const blocksBytes = (this.blockCount(at) - (tail > 0 ? 1 : 0)) * this.blockSize;
    checkRange(this.buf.length, at.u * this.blockSize, blocksBytes, 'data block');
    claims.claim(at.u * this.blockSize, blocksBytes, 'data block');
  }

  /** The whole image as the in-memory model; paths sharing a non-directory nid share an Inode. */
  toBootstrap(): Bootstrap {
    const root: TreeNode = { name: '', inode: this.toInode(this.root), children: new Map() };
    const dirs = new Map<number, TreeNode>([[this.root, root]]);
    const shared = new Map<number, Inode>();
    const pathOf = new Map<number, string>([[this.root, '/']]);
    for (const entry of this.walk()) {
      if (entry.path === '/') continue;
      if (!entry.seen) pathOf.set(entry.nid, entry.path);
      const isDir = (entry.inode.mode & S_IFMT) === S_IFDIR;
      const inode = entry.seen ? shared.get(entry.nid)! : this.toInode(entry.nid);
      if (!isDir) shared.set(entry.nid, inode);
      const node: TreeNode = isDir ? { name: entry.name, inode, children: new Map() } : { name: entry.name, inode };
      dirs.get(entry.parentNid)!.children!.set(entry.name, node);
      if (isDir) dirs.set(entry.nid, node);
    }
    const prefetch = this.prefetchNids.flatMap((nid) => pathOf.get(nid) ?? []);
    return { root, blobs: this.blobs.map((b) => ({ ...b })), chunkSize: this.chunkSize, compressor: this.compressor, digester: this.digester, prefetch };
  }

  private toInode(nid: number): Inode {
    const info = this.inode(nid);
    const type = info.mode & S_IFMT;
    return {
      mode: info.mode,
      uid: info.uid,
      gid: info.gid,
      mtime: info.mtime,
      mtimeNsec: info.mtimeNsec,
      size: type === S_IFREG ? info.size : 0,
      rdevMajor: info.rdevMajor,
      rdevMinor: info.rdevMinor,
      ...(type === S_IFLNK ? { symlinkTarget: this.readlink(nid) } : {}),
      xattrs: this.xattrs(nid),
      chunks: type === S_IFREG ? this.chunks(nid) : [],
    };
  }
}

/** The layouts RAFS uses per file type: chunk-based files, flat everything else. */
function layoutsFor(type: number): readonly Layout[] {
  if (type === S_IFREG) return [Layout.CHUNK_BASED];
  if (type === S_IFDIR || type === S_IFLNK) return [Layout.FLAT_PLAIN, Layout.FLAT_INLINE];
  return [Layout.FLAT_PLAIN];
}

/** Binary search of one sorted dirent block. */
function bisect(entries: readonly Dirent[], name: string): Dirent | undefined {
  let [low, high] = [0, entries.length - 1];
  while (low <= high) {
    const mid = (low + high) >>> 1;
    const entry = entries[mid]!;
    if (entry.name === name) return entry;
    if (entry.name < name) low = mid + 1;
    else high = mid - 1;
  }
  return undefined;
}

/** A chunk info table entry refused. */
/** A CHECKPOINTS blob's chunk names one of its blob's checkpoints and its stored bytes start there. */
function checkCheckpointChunk(chunk: ChunkRef, blob: BlobInfo, at: number): void {
  const c = blob.checkpoints?.[chunk.checkpoint!];
  if (!c) return failChunkInfo(at, `checkpoint ${chunk.checkpoint} is not in its blob's ${blob.checkpoints?.length ?? 0}`);
  if (chunk.compressedOffset !== checkpointStart(c)) failChunkInfo(at, `stored bytes at ${chunk.compressedOffset}, not at checkpoint ${chunk.checkpoint} (${checkpointStart(c)})`);
  if (isSpansBlob(blob)) checkSpansChunk(chunk, blob.checkpoints!, blob.compressedSize, at);
}

/**
 * A SPANS blob's chunk: its stored bytes are whole spans from its checkpoint's (so each can be
 * checked against its digest), and it decodes inside them.
 */
function checkSpansChunk(chunk: ChunkRef, checkpoints: readonly Checkpoint[], blobSize: number, at: number): void {
  const end = chunk.compressedOffset + chunk.compressedSize;
  const last = spanEndingAt(checkpoints, chunk.checkpoint!, end, blobSize);
  if (last === undefined) return failChunkInfo(at, `stored bytes end at ${end}, not at the end of a span`);
  const outputEnd = checkpoints[last + 1]?.output ?? Infinity;
  const from = checkpoints[chunk.checkpoint!]!.output + (chunk.innerOffset ?? 0);
  if (from + chunk.uncompressedSize > outputEnd) failChunkInfo(at, 'decodes past the spans its stored bytes hold');
}

function failChunkInfo(at: number, detail: string): never {
  throw new RafsFormatError('chunk info', at, detail);
}
