// `inspect`: what a bootstrap holds — superblock, blob table, counts, and the tree or one entry.
import type { RafsImage, WalkEntry } from '../rafs/reader.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '../rafs/tree.js';
import { show } from './check.js';

export interface InspectSummary {
  blockSize: number;
  rootNid: number;
  inodeCount: number;
  metaBlkaddr: number;
  chunkSize: number;
  compressor: string;
  digester: string;
  flags: string;
  blobs: { index: number; blobId: string; chunkCount: number; chunkSize: number; compressor: string; features: string; compressedSize: number; uncompressedSize: number; mappedBlkaddr: number }[];
  counts: Record<'entries' | 'dirs' | 'files' | 'symlinks' | 'others' | 'chunkRefs' | 'distinctChunks', number>;
  prefetch: string[];
}

const hex = (n: number): string => `0x${n.toString(16)}`;

export function inspectSummary(rafs: RafsImage): InspectSummary {
  const counts = { entries: 0, dirs: 0, files: 0, symlinks: 0, others: 0, chunkRefs: 0, distinctChunks: 0 };
  const distinct = new Set<string>();
  // a file's chunks are read once, however many paths link to it
  const chunkCounts = new Map<number, number>();
  for (const e of rafs.walk()) {
    counts.entries++;
    const type = e.inode.mode & S_IFMT;
    if (type === S_IFDIR) counts.dirs++;
    else if (type === S_IFLNK) counts.symlinks++;
    else if (type !== S_IFREG) counts.others++;
    else {
      counts.files++;
      if (!e.seen) chunkCounts.set(e.nid, countChunks(rafs, e.nid, distinct));
      counts.chunkRefs += chunkCounts.get(e.nid)!;
    }
  }
  counts.distinctChunks = distinct.size;
  const sb = rafs.superblock;
  return {
    blockSize: rafs.blockSize, rootNid: rafs.root, inodeCount: sb.inodeCount, metaBlkaddr: sb.metaBlkaddr,
    chunkSize: rafs.chunkSize, compressor: rafs.compressor, digester: rafs.digester, flags: hex(rafs.extSuperblock.flags),
    blobs: rafs.blobs.map((b, index) => ({
      index, blobId: b.blobId, chunkCount: b.chunkCount, chunkSize: b.chunkSize, compressor: b.compressor, features: hex(b.features),
      compressedSize: b.compressedSize, uncompressedSize: b.uncompressedSize, mappedBlkaddr: rafs.devices[index]?.mappedBlkaddr ?? 0,
    })),
    counts,
    prefetch: prefetchPaths(rafs),
  };
}

/** The number of chunks of file `nid`, each added to `distinct`. */
function countChunks(rafs: RafsImage, nid: number, distinct: Set<string>): number {
  const chunks = rafs.chunks(nid);
  for (const c of chunks) distinct.add(`${c.blobIndex}:${c.ciIndex}`);
  return chunks.length;
}

function prefetchPaths(rafs: RafsImage): string[] {
  if (rafs.prefetchNids.length === 0) return [];
  const wanted = new Set(rafs.prefetchNids);
  const found = new Map<number, string>();
  for (const e of rafs.walk()) if (wanted.has(e.nid) && !found.has(e.nid)) found.set(e.nid, show(e.path));
  return rafs.prefetchNids.map((nid) => found.get(nid) ?? `<nid ${nid}>`);
}

const TYPE_CHAR: Record<number, string> = { [S_IFDIR]: 'd', [S_IFREG]: '-', [S_IFLNK]: 'l', [S_IFCHR]: 'c', [S_IFBLK]: 'b', [S_IFIFO]: 'p', [S_IFSOCK]: 's' };

function modeString(mode: number): string {
  const bits = 'rwxrwxrwx'.split('').map((ch, i) => (mode & (0o400 >> i) ? ch : '-'));
  if (mode & 0o4000) bits[2] = bits[2] === 'x' ? 's' : 'S';
  if (mode & 0o2000) bits[5] = bits[5] === 'x' ? 's' : 'S';
  if (mode & 0o1000) bits[8] = bits[8] === 'x' ? 't' : 'T';
  return (TYPE_CHAR[mode & S_IFMT] ?? '?') + bits.join('');
}

/** One `ls -l`-like line per entry. */
export function* treeListing(rafs: RafsImage): Generator<string> {
  for (const e of rafs.walk()) yield listingLine(rafs, e);
}

function listingLine(rafs: RafsImage, e: WalkEntry): string {
  const i = e.inode;
  const type = i.mode & S_IFMT;
  const size = type === S_IFCHR || type === S_IFBLK ? `${i.rdevMajor},${i.rdevMinor}` : String(i.size);
  const target = type === S_IFLNK ? ` -> ${show(rafs.readlink(e.nid))}` : '';
  return `${modeString(i.mode)} ${i.nlink} ${i.uid} ${i.gid} ${size} ${new Date(i.mtime * 1000).toISOString()} ${show(e.path)}${target}`;
}

/** Everything about the entry at `path` (a UTF-8 absolute path). */
export function inspectPath(rafs: RafsImage, path: string) {
  let nid = rafs.root;
  for (const part of path.split('/').filter(Boolean)) {
    const next = rafs.lookup(nid, Buffer.from(part, 'utf8'));
    if (next === undefined) throw new Error(`no such entry: ${path}`);
    nid = next;
  }
  const inode = rafs.inode(nid);
  const type = inode.mode & S_IFMT;
  return {
    path, ...inode, modeString: modeString(inode.mode),
    xattrs: Object.fromEntries([...rafs.xattrs(nid)].map(([k, v]) => [show(k), v.toString('hex')])),
    ...(type === S_IFLNK ? { target: show(rafs.readlink(nid)) } : {}),
    ...(type === S_IFREG ? {
      chunks: rafs.chunks(nid).map((c) => ({
        blobIndex: c.blobIndex, ciIndex: c.ciIndex, digest: c.digest.toString('hex'), compressedOffset: c.compressedOffset,
        compressedSize: c.compressedSize, uncompressedOffset: c.uncompressedOffset, uncompressedSize: c.uncompressedSize,
      })),
    } : {}),
  };
}
