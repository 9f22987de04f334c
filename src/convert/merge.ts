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
    const rebased = rebaseChunks(layer.root, (ref) => toGlobal[li]![ref.blobIndex]!);
    applyLayer(root, rebased);
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

/** A copy of a tree whose chunks carry new blob indexes; hardlinked inodes stay shared. */
function rebaseChunks(root: TreeNode, blobIndexOf: (ref: ChunkRef) => number): TreeNode {
  const inodes = new Map<Inode, Inode>();
  const refs = new Map<ChunkRef, ChunkRef>();
  const copyRef = (r: ChunkRef): ChunkRef => {
    let c = refs.get(r);
    if (!c) {
      c = { ...r };
      c.blobIndex = blobIndexOf(r);
      refs.set(r, c);
    }
    return c;
  };
  const copyInode = (i: Inode): Inode => {
    let c = inodes.get(i);
    if (!c) {
      c = { ...i };
      c.chunks = i.chunks.length === 0 ? [] : i.chunks.map(copyRef);
      inodes.set(i, c);
    }
    return c;
  };
  const copy = (n: TreeNode): TreeNode => {
    const out: TreeNode = { name: n.name, inode: copyInode(n.inode) };
    if (n.children) {
      const children = new Map<string, TreeNode>();
      for (const [k, c] of n.children) children.set(k, copy(c));
      out.children = children;
    }
    return out;
  };
  return copy(root);
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

/** Keeps only referenced blobs, indexed in order of first reference in a sorted tree walk. */
function renumberBlobs(root: TreeNode, blobs: BlobInfo[]): BlobInfo[] {
  const order = firstReferences(root, blobs.length);
  const unchanged = order.size === blobs.length && [...order].every(([global, local]) => global === local);
  if (!unchanged) {
    const renumbered = new Set<ChunkRef>();
    const visit = (n: TreeNode): void => {
      for (const c of n.inode.chunks) {
        if (renumbered.has(c)) continue;
        renumbered.add(c);
        c.blobIndex = order.get(c.blobIndex)!;
      }
      if (n.children) for (const child of n.children.values()) visit(child);
    };
    visit(root);
  }
  const result: BlobInfo[] = [];
  for (const [global, local] of order) result[local] = blobs[global]!;
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
