// Overlay merge of per-layer trees (lowest first) into one image tree, with OCI whiteouts:
// `.wh.NAME` removes NAME from the layers below, `.wh..wh..opq` empties the directory below,
// a non-directory replaces whatever was there, directories merge recursively. Whiteout entries
// never reach the result. Chunks keep pointing at their original blobs, and so keep their blobs' chunk
// sizes: layers of different chunk sizes (eStargz layers kept as they are beside Nydus ones) merge into
// a bootstrap whose chunk size is the largest, each file keeping its own (rafs/writer.ts).
import type { BlobInfo, Bootstrap, ChunkRef, Inode, TreeNode } from '../rafs/tree.js';
import { isDir, newDir } from '../rafs/tree.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

/** BlobFeatures bit for a bootstrap inlined in its blob: meaningless once merged. */
const INLINED_FS_META = 0x2;

export class MergeError extends Error {}

export interface MergeOptions {
  /** Absolute paths (byte strings) for the prefetch table. */
  prefetch?: string[];
}

export function mergeLayers(layers: Bootstrap[], opts: MergeOptions = {}): Bootstrap {
  if (layers.length === 0) throw new MergeError('merge needs at least one layer bootstrap');
  const top = layers[layers.length - 1]!;
  checkCompatible(layers);
  const { blobs, toGlobal } = collectBlobs(layers);
  const root = newDir('/');
  layers.forEach((layer, li) => {
    // applyLayer only reads the upper tree: a layer whose blobs keep their indexes goes in as it is
    const toBlob = toGlobal[li]!;
    applyLayer(root, isIdentity(toBlob) ? layer.root : rebaseChunks(layer.root, (ref) => toBlob[ref.blobIndex]!));
  });
  const finalBlobs = renumberBlobs(root, blobs);
  return {
    root,
    blobs: finalBlobs,
    chunkSize: Math.max(...layers.map((l) => l.chunkSize)),
    compressor: top.compressor,
    digester: top.digester,
    prefetch: opts.prefetch ?? top.prefetch,
  };
}

function checkCompatible(layers: Bootstrap[]): void {
  const first = layers[0]!;
  layers.forEach((l, i) => {
    if (l.digester !== first.digester) {
      throw new MergeError(`layer ${i} uses digester ${l.digester}, layer 0 uses ${first.digester}`);
    }
  });
}

/** All blobs of all layers, one entry per blob id, and each layer's local → global index map. */
function collectBlobs(layers: Bootstrap[]): { blobs: BlobInfo[]; toGlobal: number[][] } {
  const blobs: BlobInfo[] = [];
  const byId = new Map<string, number>();
  const toGlobal = layers.map((layer) =>
    layer.blobs.map((b) => {
      let g = byId.get(b.blobId);
      if (g === undefined) {
        g = blobs.length;
        byId.set(b.blobId, g);
        blobs.push({ ...b, features: b.features & ~INLINED_FS_META });
      }
      return g;
    }),
  );
  return { blobs, toGlobal };
}

const isIdentity = (indexes: readonly number[]): boolean => indexes.every((to, from) => to === from);

/** A copy of a tree whose chunks carry new blob indexes; hardlinked inodes stay shared, files without chunks are the tree's own. */
function rebaseChunks(root: TreeNode, blobIndexOf: (ref: ChunkRef) => number): TreeNode {
  const rebase = chunkRebaser(blobIndexOf);
  const copy = (n: TreeNode): TreeNode => {
    if (!n.children) return n.inode.chunks.length === 0 ? n : { name: n.name, inode: rebase(n.inode) };
    const children = new Map<string, TreeNode>();
    for (const [name, child] of n.children) children.set(name, copy(child));
    return { name: n.name, inode: n.inode, children };
  };
  return copy(root);
}

/** Copies of files whose chunks carry new blob indexes: one per inode and per chunk, so what was shared stays shared. */
function chunkRebaser(blobIndexOf: (ref: ChunkRef) => number): (inode: Inode) => Inode {
  const inodes = new Map<Inode, Inode>();
  const refs = new Map<ChunkRef, ChunkRef>();
  const copyRef = (r: ChunkRef): ChunkRef => {
    let c = refs.get(r);
    if (!c) refs.set(r, (c = { ...r, blobIndex: blobIndexOf(r) }));
    return c;
  };
  return (inode) => {
    let c = inodes.get(inode);
    if (!c) inodes.set(inode, (c = { ...inode, chunks: inode.chunks.map(copyRef) }));
    return c;
  };
}

/** Applies an upper directory onto a lower one in place (the upper's attributes win). */
function applyLayer(lower: TreeNode, upper: TreeNode): void {
  lower.inode = upper.inode;
  const below = lower.children!;
  let whiteouts = false;
  for (const child of upper.children!.values()) {
    if (!child.name.startsWith(WHITEOUT_PREFIX)) continue;
    whiteouts = true;
    if (child.name === OPAQUE_WHITEOUT) below.clear();
    else below.delete(child.name.slice(WHITEOUT_PREFIX.length));
  }
  for (const child of upper.children!.values()) {
    if (whiteouts && child.name.startsWith(WHITEOUT_PREFIX)) continue;
    const existing = below.get(child.name);
    if (isDir(child)) {
      // a directory over a non-directory replaces it; over a directory it merges
      const target = existing && isDir(existing) ? existing : newDir(child.name);
      applyLayer(target, child);
      below.set(child.name, target);
    } else {
      below.set(child.name, child);
    }
  }
}

/**
 * Keeps only referenced blobs, indexed in order of first reference in a sorted tree walk. The tree
 * shares files with the layers: a file whose chunks change index is replaced by a copy.
 */
function renumberBlobs(root: TreeNode, blobs: BlobInfo[]): BlobInfo[] {
  const order = firstReferences(root, blobs.length);
  const result: BlobInfo[] = [];
  for (const [global, local] of order) result[local] = blobs[global]!;
  if (order.size === blobs.length && [...order].every(([global, local]) => global === local)) return result;
  const toLocal = (ref: ChunkRef): number => order.get(ref.blobIndex)!;
  const rebase = chunkRebaser(toLocal);
  const visit = (dir: TreeNode): void => {
    for (const [name, child] of dir.children!) {
      if (child.children) visit(child);
      else if (child.inode.chunks.some((c) => toLocal(c) !== c.blobIndex)) dir.children!.set(name, { name: child.name, inode: rebase(child.inode) });
    }
  };
  visit(root);
  return result;
}

/** Blob index → its rank by first reference in a sorted tree walk, which stops once all `count` are met. */
function firstReferences(root: TreeNode, count: number): Map<number, number> {
  const order = new Map<number, number>();
  const seenInodes = new Set<Inode>();
  const visit = (n: TreeNode): void => {
    if (!seenInodes.has(n.inode)) {
      seenInodes.add(n.inode);
      for (const c of n.inode.chunks) if (!order.has(c.blobIndex)) order.set(c.blobIndex, order.size);
    }
    if (!n.children) return;
    for (const k of [...n.children.keys()].sort()) {
      if (order.size === count) return;
      visit(n.children.get(k)!);
    }
  };
  visit(root);
  return order;
}
