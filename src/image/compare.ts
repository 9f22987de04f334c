// `check --source --target`: the source image's file tree (its layers applied with whiteouts) and
// the Nydus image's tree, compared entry by entry — metadata, and with data the file contents
// (read through the Nydus blobs, so every chunk is also verified against its digest).
import { createHash } from 'node:crypto';
import { LayerTree } from '../convert/layer-tree.js';
import { mergeLayers } from '../convert/merge.js';
import { openLayerStream } from '../convert/tar/decompress.js';
import { parseTar } from '../convert/tar/parse.js';
import { S_IFMT, S_IFREG, type Bootstrap, type Inode, type TreeNode } from '../rafs/tree.js';
import { resolveImage, type ImageStore } from '../registry/image-store.js';
import { NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK } from '../stargz/bootstrap.js';
import { TOC_TAR_NAME } from '../stargz/toc-bytes.js';
import { show } from './check.js';
import { forEachLimited } from '../util/concurrency.js';
import type { RemoteNydusImage } from './remote.js';

/** Root entries of a stargz-family layer that are the format's (TOC, landmarks): a kept layer never shows them. */
const STARGZ_FORMAT_ENTRIES = new Set([TOC_TAR_NAME, PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK]);

/**
 * The merged tree of an OCI image; with `withData`, each file's inode carries its sha256. Layers
 * in `keptLayers` (digests: stargz-family layers the target kept as they are) lose their format's
 * own entries, as serving them does.
 */
export async function sourceTree(
  store: ImageStore, reference: string | undefined, platform: string | undefined, withData: boolean, keptLayers: ReadonlySet<string> = new Set(),
): Promise<TreeNode> {
  const { manifest } = await resolveImage(store, reference, platform);
  const layers: Bootstrap[] = [];
  for (const layer of manifest.parsed.layers) {
    const tree = new LayerTree();
    const kept = keptLayers.has(layer.digest);
    for await (const entry of parseTar(openLayerStream(await store.getBlob(layer.digest)))) {
      if (kept && STARGZ_FORMAT_ENTRIES.has(entry.path.replace(/^(\.?\/)+/, ''))) continue;
      const inode = tree.add(entry);
      if (inode && withData) inode.contentDigest = await sha256Of(entry.body);
    }
    layers.push({ root: tree.root, blobs: [], chunkSize: 1 << 20, compressor: 'none', digester: 'sha256', prefetch: [] });
  }
  return mergeLayers(layers).root;
}

/** The Nydus image's tree; with `withData`, every file is read through its blobs and hashed. */
export async function targetTree(image: RemoteNydusImage, withData: boolean): Promise<TreeNode> {
  const root = image.rafs.toBootstrap().root;
  if (!withData) return root;
  const files: Inode[] = [];
  const seen = new Set<Inode>();
  const visit = (n: TreeNode): void => {
    if ((n.inode.mode & S_IFMT) === S_IFREG && !seen.has(n.inode)) {
      seen.add(n.inode);
      files.push(n.inode);
    }
    n.children?.forEach(visit);
  };
  visit(root);
  await forEachLimited(files, 8, async (inode) => {
    const h = createHash('sha256');
    for (const ref of inode.chunks) h.update(await image.chunks.read(ref));
    inode.contentDigest = h.digest('hex');
  });
  return root;
}

async function sha256Of(body: AsyncIterable<Buffer>): Promise<string> {
  const h = createHash('sha256');
  for await (const piece of body) h.update(piece);
  return h.digest('hex');
}

/** Differences between two trees, one line each, paths as text (empty when they match). */
export function diffTrees(want: TreeNode, got: TreeNode, path = ''): string[] {
  const out = diffEntry(want.inode, got.inode, path || '/');
  const a = want.children ?? new Map<string, TreeNode>();
  const b = got.children ?? new Map<string, TreeNode>();
  for (const name of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const p = `${path}/${name}`;
    const x = a.get(name);
    const y = b.get(name);
    if (!y) out.push(`${show(p)}: missing from the target`);
    else if (!x) out.push(`${show(p)}: only in the target`);
    else for (const d of diffTrees(x, y, p)) out.push(d);
  }
  return out;
}

function diffEntry(a: Inode, b: Inode, path: string): string[] {
  const fields: [string, unknown, unknown][] = [
    ['mode', a.mode.toString(8), b.mode.toString(8)],
    ['uid', a.uid, b.uid],
    ['gid', a.gid, b.gid],
    ['mtime', a.mtime, b.mtime],
    ['size', (a.mode & S_IFMT) === S_IFREG ? a.size : 0, (b.mode & S_IFMT) === S_IFREG ? b.size : 0],
    ['symlink', a.symlinkTarget, b.symlinkTarget],
    ['rdev', `${a.rdevMajor}:${a.rdevMinor}`, `${b.rdevMajor}:${b.rdevMinor}`],
    ['xattrs', xattrText(a), xattrText(b)],
    ['content', a.contentDigest, b.contentDigest],
  ];
  return fields.filter(([, x, y]) => x !== y).map(([name, x, y]) => `${show(path)}: ${name} ${String(x)} != ${String(y)}`);
}

function xattrText(i: Inode): string {
  return [...i.xattrs].sort(([x], [y]) => (x < y ? -1 : 1)).map(([k, v]) => `${k}=${v.toString('hex')}`).join(',');
}
