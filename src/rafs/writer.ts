// Writes a Bootstrap as a RAFS v6 bootstrap, i.e. a valid EROFS image (docs/rafs-v6.md §1.1 layout):
// superblock, extended superblock and device table in block 0, then blob and prefetch tables, one
// unused meta block, the inodes and directory/symlink blocks (meta-layout.ts), and the chunk info
// table. Always extended inodes; regular files are chunk-based with their data in the blobs.
import { encodeCheckpointTable } from './checkpoints.js';
import { alignUp, isPowerOfTwo } from './bytes.js';
import { BLOB_ENTRY_SIZE, BlobFeature, DEVICE_SLOT_SIZE, type DeviceSlot, encodeBlobEntry, encodeDeviceSlot } from './blob-table.js';
import { isSpansBlob, spanBlobId } from './span-blob.js';
import { CHUNK_INDEX_SIZE, CHUNK_INFO_SIZE, chunkKey, encodeChunkFormat, MAX_BLOBS, writeChunkIndex, writeChunkInfo } from './chunk.js';
import { RafsEncodeError } from './errors.js';
import { encodeDev, EXTENDED_INODE_SIZE, Layout, writeInode } from './inode.js';
import { type InodeSlot, layoutMeta } from './meta-layout.js';
import {
  DEVICE_TABLE_OFFSET, decodeExtSuperblock, encodeErofsSuperblock, encodeExtSuperblock, encodeRafsFlags,
  EROFS_SUPER_OFFSET, EXT_SUPER_OFFSET, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
} from './superblock.js';
import { xattrCountForSize } from './xattr.js';
import { type BlobInfo, type Bootstrap, type ChunkRef, type Inode, nodeAt, S_IFDIR, S_IFLNK, S_IFREG, type TreeNode } from './tree.js';

export interface WriteOptions {
  /** Record uid/gid (default). When false, nydusd reports its own euid/egid (nydus `--repeatable`). */
  explicitUidGid?: boolean;
}

const BLOCK_SIZE_BITS = 12;
const BLOCK_SIZE = 1 << BLOCK_SIZE_BITS;
/** nydus-image aligns each blob's place in a flat block image to 512 KiB. */
const MAPPED_BLOB_ALIGNMENT = 0x80000;
const PREFETCH_ENTRY_SIZE = 4;

export function writeBootstrap(b: Bootstrap, opts: WriteOptions = {}): Buffer {
  checkBlobs(b);
  const tables = planTables(b);
  const layout = layoutMeta(b.root, tables.metaBlkaddr, BLOCK_SIZE, new Set(tables.prefetch));
  const chunkTable = chunkTableEntries(layout.slots);
  const chunkTableSize = chunkTable.length * CHUNK_INFO_SIZE;
  const checkpointTable = encodeCheckpointTable(b.blobs);
  const checkpointTableOffset = layout.end + chunkTableSize;
  const image = Buffer.alloc(alignUp(checkpointTableOffset + checkpointTable.length, BLOCK_SIZE));
  checkpointTable.copy(image, checkpointTableOffset);
  for (let i = 0; i < layout.slots.length; i++) writeSlot(image, layout.slots[i]!, b);
  for (let i = 0; i < chunkTable.length; i++) writeChunkInfo(image, layout.end + i * CHUNK_INFO_SIZE, chunkTable[i]!);
  const blobs = namedSpanBlobs(b.blobs, chunkTable);
  const devices = deviceSlots(blobs, image.length);
  encodeErofsSuperblock({
    blockSizeBits: BLOCK_SIZE_BITS,
    rootNid: layout.slots[0]!.nid,
    inodeCount: layout.slots.length,
    blocks: devices.reduce((sum, d) => sum + d.blocks, 0),
    metaBlkaddr: tables.metaBlkaddr,
    extraDevices: devices.length,
  }).copy(image, EROFS_SUPER_OFFSET);
  encodeExtSuperblock({
    flags: rafsFlags(b, layout.slots, opts),
    blobTableOffset: tables.blobTableOffset,
    blobTableSize: b.blobs.length * BLOB_ENTRY_SIZE,
    chunkSize: b.chunkSize,
    chunkTableOffset: layout.end,
    chunkTableSize,
    prefetchTableOffset: tables.prefetch.length > 0 ? tables.prefetchTableOffset : 0,
    prefetchTableSize: tables.prefetch.length * PREFETCH_ENTRY_SIZE,
    checkpointTableOffset: checkpointTable.length > 0 ? checkpointTableOffset : 0,
    checkpointTableSize: checkpointTable.length,
  }).copy(image, EXT_SUPER_OFFSET);
  devices.forEach((d, i) => encodeDeviceSlot(d).copy(image, DEVICE_TABLE_OFFSET + i * DEVICE_SLOT_SIZE));
  blobs.forEach((blob, i) => encodeBlobEntry(blob, i).copy(image, tables.blobTableOffset + i * BLOB_ENTRY_SIZE));
  tables.prefetch.forEach((node, i) => image.writeUInt32LE(layout.slotOf.get(node)!.nid, tables.prefetchTableOffset + i * PREFETCH_ENTRY_SIZE));
  return image;
}

/**
 * `blobs`, each SPANS blob named for its chunks in this bootstrap's `chunkTable` (span-blob.ts): a
 * merged chain keeps only the chunks its tree still reads, so the name is given as it is written.
 */
function namedSpanBlobs(blobs: readonly BlobInfo[], chunkTable: readonly ChunkRef[]): readonly BlobInfo[] {
  if (!blobs.some(isSpansBlob)) return blobs;
  return blobs.map((blob, i) => (isSpansBlob(blob) ? { ...blob, blobId: spanBlobId(blob, chunkTable.filter((c) => c.blobIndex === i)) } : blob));
}

/**
 * A copy of `image` (from writeBootstrap) with new blob-table entries: ids, sizes and TOC fields
 * may change, the blob count and each blob's uncompressed size may not (they shape the layout).
 * A layer build writes its bootstrap once and so names the blob only after hashing it.
 */
export function replaceBlobTable(image: Buffer, blobs: readonly BlobInfo[]): Buffer {
  const ext = decodeExtSuperblock(image, EXT_SUPER_OFFSET);
  if (ext.blobTableSize !== blobs.length * BLOB_ENTRY_SIZE) {
    throw new RafsEncodeError('blob table', `has ${ext.blobTableSize / BLOB_ENTRY_SIZE} entries, ${blobs.length} given`);
  }
  const out = Buffer.from(image);
  deviceSlots(blobs, out.length).forEach((d, i) => {
    const at = DEVICE_TABLE_OFFSET + i * DEVICE_SLOT_SIZE;
    if (out.readUInt32LE(at + 64) !== d.blocks) throw new RafsEncodeError('blob table', `blob ${i} changed its uncompressed size`);
    encodeDeviceSlot(d).copy(out, at);
  });
  blobs.forEach((blob, i) => encodeBlobEntry(blob, i).copy(out, ext.blobTableOffset + i * BLOB_ENTRY_SIZE));
  return out;
}

/** Where the blob and prefetch tables go, and so where the meta area starts. */
function planTables(b: Bootstrap): { blobTableOffset: number; prefetchTableOffset: number; prefetch: TreeNode[]; metaBlkaddr: number } {
  // nydus writes a prefetch table only for images with blobs: without data there is nothing to fetch
  const prefetch = b.blobs.length > 0 ? [...new Set(b.prefetch.map((path) => nodeAt(b.root, path)).filter((n) => n !== undefined))] : [];
  const blobTableOffset = alignUp(DEVICE_TABLE_OFFSET + b.blobs.length * DEVICE_SLOT_SIZE, BLOCK_SIZE);
  const prefetchTableOffset = blobTableOffset + b.blobs.length * BLOB_ENTRY_SIZE;
  const tablesEnd = prefetchTableOffset + prefetch.length * PREFETCH_ENTRY_SIZE;
  // Without tables nydus uses meta_blkaddr 0: block 0 (the superblock) then is the unused meta block.
  const metaBlkaddr = tablesEnd === blobTableOffset ? 0 : alignUp(tablesEnd, BLOCK_SIZE) / BLOCK_SIZE;
  return { blobTableOffset, prefetchTableOffset, prefetch, metaBlkaddr };
}

function rafsFlags(b: Bootstrap, slots: readonly InodeSlot[], opts: WriteOptions): number {
  return encodeRafsFlags({
    compressor: b.compressor,
    digester: b.digester,
    explicitUidGid: opts.explicitUidGid ?? true,
    hasXattr: slots.some((slot) => slot.xattrs.length > 0),
    inlinedChunkDigest: b.blobs.length > 0 && b.blobs.every((blob) => blob.features & BlobFeature.INLINED_CHUNK_DIGEST),
    tarfs: false,
    encrypted: false,
  });
}

function checkBlobs(b: Bootstrap): void {
  if (!isPowerOfTwo(b.chunkSize) || b.chunkSize < MIN_CHUNK_SIZE || b.chunkSize > MAX_CHUNK_SIZE) {
    throw new RafsEncodeError('bootstrap', `chunk size ${b.chunkSize} is not a power of two in [4 KiB, 16 MiB]`);
  }
  if (b.blobs.length > MAX_BLOBS) throw new RafsEncodeError('bootstrap', `${b.blobs.length} blobs, at most ${MAX_BLOBS} fit`);
  b.blobs.forEach((blob, i) => {
    const fail = (detail: string): never => {
      throw new RafsEncodeError('blob table entry', `blob ${i} (${blob.blobId}): ${detail}`);
    };
    if (!isPowerOfTwo(blob.chunkSize) || blob.chunkSize < MIN_CHUNK_SIZE || blob.chunkSize > b.chunkSize) {
      fail(`chunk size ${blob.chunkSize} is not a power of two from 4 KiB to the bootstrap's ${b.chunkSize}`);
    }
    if (!(blob.features & BlobFeature.ALIGNED)) fail('the ALIGNED feature is required');
    if (blob.uncompressedSize <= 0 || blob.uncompressedSize % BLOCK_SIZE !== 0) fail(`uncompressed size ${blob.uncompressedSize} is not a positive multiple of 4 KiB`);
  });
}

/** Each blob's flat-image position: after the bootstrap and the previous blob, 512 KiB-aligned. */
function deviceSlots(blobs: readonly BlobInfo[], bootstrapSize: number): DeviceSlot[] {
  let pos = bootstrapSize;
  return blobs.map((blob) => {
    const blocks = blob.uncompressedSize / BLOCK_SIZE;
    const mappedBlkaddr = alignUp(pos, MAPPED_BLOB_ALIGNMENT) / BLOCK_SIZE;
    pos = (mappedBlkaddr + blocks) * BLOCK_SIZE;
    return { blobId: blob.blobId, blocks, mappedBlkaddr };
  });
}

function writeSlot(image: Buffer, slot: InodeSlot, b: Bootstrap): void {
  const { inode } = slot;
  const chunkSize = slot.type === S_IFREG ? fileChunkSize(slot, b) : b.chunkSize;
  writeInode(image, slot.offset, {
    extended: true,
    layout: slot.layout,
    xattrCount: xattrCountForSize(slot.xattrs.length),
    mode: inode.mode,
    size: slot.type === S_IFREG ? inode.size : slot.data.length,
    u: inodeU(slot, chunkSize, b.chunkSize),
    ino: slot.ino,
    uid: inode.uid,
    gid: inode.gid,
    mtime: inode.mtime,
    mtimeNsec: inode.mtimeNsec,
    nlink: slot.nlink,
  });
  const inlineAt = slot.offset + EXTENDED_INODE_SIZE + slot.xattrs.length;
  // TypedArray set, not Buffer copy (a JS wrapper), and nothing for the many empty ones
  if (slot.xattrs.length > 0) image.set(slot.xattrs, slot.offset + EXTENDED_INODE_SIZE);
  if (slot.type === S_IFREG) {
    writeChunkIndexes(image, alignUp(inlineAt, CHUNK_INDEX_SIZE), slot, b, chunkSize);
    return;
  }
  if (slot.blocks > 0) slot.data.copy(image, slot.rawBlkaddr * BLOCK_SIZE, 0, slot.blocks * BLOCK_SIZE);
  if (slot.layout === Layout.FLAT_INLINE) image.set(slot.blocks > 0 ? slot.data.subarray(slot.blocks * BLOCK_SIZE) : slot.data, inlineAt);
}

/** i_u: the chunk format of files, the first data block of directories and symlinks, else rdev. */
function inodeU(slot: InodeSlot, chunkSize: number, superChunkSize: number): number {
  if (slot.type === S_IFREG) return encodeChunkFormat(chunkBits(slot.inode, chunkSize, superChunkSize));
  if (slot.type === S_IFDIR || slot.type === S_IFLNK) return slot.rawBlkaddr;
  return encodeDev(slot.inode.rdevMajor, slot.inode.rdevMinor);
}

/**
 * A file's chunk size: its blobs' (each file's chunks lie in blobs of one chunk size), the
 * bootstrap's for a file without chunks. Images mixing layers of several chunk sizes (eStargz
 * layers kept as they are beside Nydus ones) have files of several chunk sizes.
 */
function fileChunkSize(slot: InodeSlot, b: Bootstrap): number {
  const { chunks } = slot.inode;
  if (chunks.length === 0) return b.chunkSize;
  const size = blobChunkSize(chunks[0]!, b);
  for (let i = 1; i < chunks.length; i++) {
    if (blobChunkSize(chunks[i]!, b) !== size) {
      throw new RafsEncodeError('chunk index', `${slot.path}: chunks in blobs of chunk sizes ${[...new Set(chunks.map((c) => blobChunkSize(c, b)))].join(', ')}`);
    }
  }
  return size;
}

const blobChunkSize = (c: ChunkRef, b: Bootstrap): number => b.blobs[c.blobIndex]?.chunkSize ?? b.chunkSize;

/**
 * Chunk bits of the inode's chunk format. A file whose chunk size is below the superblock's
 * declares its own (readers take min(2^bits, superblock chunk size)). Otherwise a multi-chunk file
 * stored contiguously in one blob is declared as a single power-of-two chunk so the kernel maps it
 * in one piece (nydus does the same: the bits only ever grow past the superblock's, so readers
 * still see the superblock chunk size), and the index array stays complete.
 */
function chunkBits(inode: Inode, chunkSize: number, superChunkSize: number): number {
  if (chunkSize < superChunkSize) return Math.log2(chunkSize) - BLOCK_SIZE_BITS;
  const chunks = inode.chunks;
  let contiguous = chunks.length > 1;
  for (let i = 1; contiguous && i < chunks.length; i++) {
    contiguous = chunks[i]!.blobIndex === chunks[0]!.blobIndex && chunks[i]!.uncompressedOffset === chunks[i - 1]!.uncompressedOffset + chunkSize;
  }
  let bits = Math.log2(chunkSize);
  while (contiguous && 2 ** bits < inode.size) bits++;
  return bits - BLOCK_SIZE_BITS <= 0x1f ? bits - BLOCK_SIZE_BITS : Math.log2(chunkSize) - BLOCK_SIZE_BITS;
}

/** The file's chunk index array, at `offset` of the image. */
function writeChunkIndexes(image: Buffer, offset: number, slot: InodeSlot, b: Bootstrap, chunkSize: number): void {
  const { chunks, size } = slot.inode;
  if (!Number.isSafeInteger(size) || size < 0) failChunkIndex(slot, `bad size ${size}`);
  if (chunks.length !== Math.ceil(size / chunkSize)) failChunkIndex(slot, `${chunks.length} chunks for ${size} bytes in ${chunkSize}-byte chunks`);
  // an indexed loop without closures: this runs cold, once per chunk
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i]!;
    const blob = b.blobs[c.blobIndex];
    if (blob === undefined) return failChunkIndex(slot, `chunk ${i} refers to blob ${c.blobIndex}, the table has ${b.blobs.length}`);
    if (c.uncompressedSize !== Math.min(chunkSize, size - i * chunkSize)) failChunkIndex(slot, `chunk ${i} holds ${c.uncompressedSize} bytes`);
    if (c.uncompressedOffset % BLOCK_SIZE !== 0 || c.uncompressedOffset + c.uncompressedSize > blob.uncompressedSize) {
      failChunkIndex(slot, `chunk ${i} at uncompressed offset ${c.uncompressedOffset} is unaligned or beyond its blob`);
    }
    if (c.ciIndex >= blob.chunkCount) failChunkIndex(slot, `chunk ${i} has CI index ${c.ciIndex}, its blob has ${blob.chunkCount} chunks`);
    writeChunkIndex(image, offset + i * CHUNK_INDEX_SIZE, { blobIndex: c.blobIndex, ciIndex: c.ciIndex, blockAddr: c.uncompressedOffset / BLOCK_SIZE });
  }
}

function failChunkIndex(slot: InodeSlot, detail: string): never {
  throw new RafsEncodeError('chunk index', `${slot.path}: ${detail}`);
}

/** The chunk info table: one entry per distinct (blob, CI index) any file refers to, in that order. */
function chunkTableEntries(slots: readonly InodeSlot[]): ChunkRef[] {
  // indexed loops and a typed array's native numeric sort: this runs cold, once per chunk
  const byKey = new Map<number, ChunkRef>();
  for (let s = 0; s < slots.length; s++) {
    const slot = slots[s]!;
    if (slot.type !== S_IFREG) continue;
    const chunks = slot.inode.chunks;
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i]!;
      const key = chunkKey(chunk.blobIndex, chunk.ciIndex);
      const known = byKey.get(key);
      if (known === undefined) byKey.set(key, chunk);
      else if (!sameChunk(known, chunk)) throw new RafsEncodeError('chunk info table', `${slot.path}: conflicting chunks for blob ${chunk.blobIndex} CI index ${chunk.ciIndex}`);
    }
  }
  const keys = new Float64Array(byKey.size);
  let n = 0;
  byKey.forEach((_, key) => (keys[n++] = key));
  keys.sort();
  const entries = new Array<ChunkRef>(keys.length);
  for (let i = 0; i < keys.length; i++) entries[i] = byKey.get(keys[i]!)!;
  return entries;
}

function sameChunk(a: ChunkRef, b: ChunkRef): boolean {
  return a.digest.equals(b.digest) && a.compressedOffset === b.compressedOffset && a.compressedSize === b.compressedSize
    && a.uncompressedOffset === b.uncompressedOffset && a.uncompressedSize === b.uncompressedSize && a.compressed === b.compressed
    && a.innerOffset === b.innerOffset && a.checkpoint === b.checkpoint;
}
