// The mounts a snapshot is used through, as containerd's overlayfs snapshotter returns them: an
// active snapshot without parents is a read-write bind of its directory, with parents an overlay
// whose upper dir is its own; a view of one layer is a read-only bind of it, of several a read-only
// overlay of lower dirs only. Lower dirs come top first; a Nydus image contributes one lower dir,
// the daemon's mount of the whole image.

export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

export interface MountInput {
  kind: 'active' | 'view';
  /** The snapshot's own directory (upper dir when active). */
  fs: string;
  /** overlayfs work dir, next to fs on the same filesystem. */
  work: string;
  /** Parents' directories, nearest first. */
  lowers: string[];
}

/** overlayfs takes lowerdir=a:b:c; a ':' or ',' in a path would split it. */
function checkPath(p: string): string {
  if (/[:,]/.test(p)) throw new Error(`path ${p} cannot be an overlay layer (contains ':' or ',')`);
  return p;
}

export function snapshotMounts(input: MountInput): Mount[] {
  const { kind, fs, work, lowers } = input;
  if (kind === 'active') {
    if (lowers.length === 0) return [{ type: 'bind', source: fs, options: ['rw', 'rbind'] }];
    // index=off: the index would pin lower inodes by file handle, which a FUSE lower (a daemon
    // that may be restarted) cannot promise to keep
    return [{ type: 'overlay', source: 'overlay', options: ['index=off', `workdir=${checkPath(work)}`, `upperdir=${checkPath(fs)}`, `lowerdir=${lowers.map(checkPath).join(':')}`] }];
  }
  if (lowers.length === 0) return [{ type: 'bind', source: fs, options: ['ro', 'rbind'] }];
  if (lowers.length === 1) return [{ type: 'bind', source: lowers[0]!, options: ['ro', 'rbind'] }];
  return [{ type: 'overlay', source: 'overlay', options: ['index=off', `lowerdir=${lowers.map(checkPath).join(':')}`] }];
}
