// Block mode's kernel side: the kernel's own EROFS mounted on a flat image file (file-backed EROFS,
// Linux ≥ 6.12), the file being the one a block-mode daemon serves over FUSE (flat-file-fs.ts). The
// kernel then answers metadata from its page cache; only blocks it lacks reach the daemon.
import { join } from 'node:path';
import { mountReadOnly } from '../native/index.js';
import { FLAT_IMAGE_NAME } from './flat-file-fs.js';
import { lazyUnmount, mountsAt } from './fuse/session.js';

/** The flat image file of an image a block-mode daemon serves at `dir`. */
export const flatImageFile = (dir: string): string => join(dir, FLAT_IMAGE_NAME);

/** Mounts EROFS read-only at `target` from the flat image in `dir`, replacing an EROFS mount already there. */
export async function mountErofs(dir: string, target: string): Promise<void> {
  if (erofsMountedAt(target)) await lazyUnmount(target);
  // the syscall, not mount(8): given a regular file, mount(8) would put a loop device under EROFS
  mountReadOnly('erofs', flatImageFile(dir), target);
}

export const erofsMountedAt = (target: string): boolean => mountsAt(target, 'erofs').length > 0;

/** Mounts the EROFS image file `image` read-only at `target`, its chunk data read from the file `device` when given (`-o device=`). */
export function mountErofsFile(image: string, target: string, device?: string): void {
  // a comma would end the option and start another
  if (device?.includes(',')) throw new Error(`an EROFS device path cannot hold a comma: ${device}`);
  mountReadOnly('erofs', image, target, device === undefined ? '' : `device=${device}`);
}

/** Detaches the EROFS mount at `target`, if there is one (open files keep it until closed). */
export async function unmountErofs(target: string): Promise<void> {
  if (erofsMountedAt(target)) await lazyUnmount(target);
}

/**
 * A kernel EROFS mount at `target` on the image file a block-mode daemon serves in `imageDir`, through
 * the FUSE mount at `fuseMountpoint`. It remembers which FUSE connection it reads through: after a
 * daemon restart, a failover kept that connection (the EROFS mount goes on working, readers only
 * waited), while a fresh FUSE mount means the EROFS mount must be made again.
 */
export class ErofsMount {
  private fuseDev: string | undefined;

  constructor(readonly imageDir: string, readonly fuseMountpoint: string, readonly target: string) {}

  private currentDev(): string | undefined {
    return mountsAt(this.fuseMountpoint)[0]?.dev;
  }

  async mount(): Promise<void> {
    this.fuseDev = this.currentDev();
    await mountErofs(this.imageDir, this.target);
  }

  /** Takes an EROFS mount already at the target (made by an earlier process) as reading through today's FUSE mount. */
  adopt(): void {
    this.fuseDev = this.currentDev();
  }

  /** Mounts again unless the EROFS mount still reads through the FUSE connection it was made on; true when it did. */
  async refresh(): Promise<boolean> {
    if (this.fuseDev !== undefined && this.currentDev() === this.fuseDev && erofsMountedAt(this.target)) return false;
    await this.mount();
    return true;
  }

  unmount(): Promise<void> {
    return unmountErofs(this.target);
  }
}
