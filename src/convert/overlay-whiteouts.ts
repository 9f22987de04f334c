// One layer's tree made an overlayfs lower layer, as containerd's overlay applier leaves one: an OCI
// whiteout `.wh.NAME` becomes a 0/0 character device NAME, `.wh..wh..opq` the opaque mark
// (trusted.overlay.opaque=y) on its directory. overlayfs's own attributes are never taken from
// the archive (they would steer how the layers merge): trusted.overlay.* and user.overlay.* go.
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX } from './merge.js';
import { S_IFCHR, type Inode, type TreeNode } from '../rafs/tree.js';

const OVERLAY_XATTR = /^(trusted|user)\.overlay\./;

/** Rewrites `root`'s whiteouts (in place) as overlayfs's. */
export function toOverlayWhiteouts(root: TreeNode): void {
  const dirs: TreeNode[] = [root];
  for (let dir = dirs.pop(); dir; dir = dirs.pop()) {
    stripOverlayXattrs(dir.inode);
    for (const [name, child] of [...dir.children!]) {
      stripOverlayXattrs(child.inode);
      if (child.children) dirs.push(child);
      if (!name.startsWith(WHITEOUT_PREFIX)) continue;
      dir.children!.delete(name);
      if (name === OPAQUE_WHITEOUT) {
        dir.inode.xattrs.set('trusted.overlay.opaque', Buffer.from('y'));
        continue;
      }
      const hidden = name.slice(WHITEOUT_PREFIX.length);
      // other `.wh..wh.` names are aufs bookkeeping, nothing to overlayfs
      if (hidden === '' || hidden.startsWith(WHITEOUT_PREFIX)) continue;
      dir.children!.set(hidden, { name: hidden, inode: whiteout(child.inode) });
    }
  }
}

function stripOverlayXattrs(inode: Inode): void {
  for (const name of [...inode.xattrs.keys()]) if (OVERLAY_XATTR.test(name)) inode.xattrs.delete(name);
}

/** A whiteout device with the whiteout entry's owner and times. */
const whiteout = (from: Inode): Inode => ({ ...from, mode: S_IFCHR, size: 0, rdevMajor: 0, rdevMinor: 0, symlinkTarget: undefined, xattrs: new Map(), chunks: [], contentDigest: undefined });
