// Block mode's kernel side: the kernel's own EROFS mounted on a flat image file (file-backed EROFS,
// Linux ≥ 6.12), the file being the one a block-mode daemon serves over FUSE (flat-file-fs.ts). The
// kernel then answers metadata from its page cache; only blocks it lacks reach the daemon.
import { join } from 'node:path';
import { mustRunCommand } from '../util/command.js';
import { FLAT_IMAGE_NAME } from './flat-file-fs.js';
import { lazyUnmount, mountsAt } from './fuse/session.js';

/** The flat image file of an image a block-mode daemon serves at `dir`. */
export const flatImageFile = (dir: string): string => join(dir, FLAT_IMAGE_NAME);

/** Mounts EROFS read-only at `target` from the flat image in `dir`, replacing an EROFS mount already there. */
export async function mountErofs(dir: string, target: string): Promise<void> {
  if (erofsMountedAt(target)) await lazyUnmount(target);
  await mustRunCommand('mount', ['-t', 'erofs', '-o', 'ro', flatImageFile(dir), target]);
}

export const erofsMountedAt = (target: string): boolean => mountsAt(target, 'erofs').length > 0;

/** Detaches the EROFS mount at `target`, if there is one (open files keep it until closed). */
export async function unmountErofs(target: string): Promise<void> {
  if (erofsMountedAt(target)) await lazyUnmount(target);
}
