// Bootstraps the daemon builds rather than pulls (an eStargz image's TOCs, each turned into a layer
// model and merged), kept in the cache directory under a key that names everything they were built
// from: a mount that finds one skips reading every TOC and merging, and the snapshotter builds them
// while containerd is still pulling. A file is written whole (temp + rename) or not at all; the
// cache directory is ours, but a file that does not open as RAFS is simply built again.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** File names of built bootstraps (cache GC removes them with their images' blobs). */
export const BUILT_BOOTSTRAP = /^built-[0-9a-f]{64}\.boot$/;

export class BuiltBootstraps {
  constructor(readonly dir: string) {}

  private path(key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`built bootstrap key ${JSON.stringify(key)} is not 64 lowercase hex`);
    return join(this.dir, `built-${key}.boot`);
  }

  /** The bootstrap built under `key`, if one was kept. */
  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async put(key: string, bootstrap: Buffer): Promise<void> {
    const path = this.path(key);
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await mkdir(this.dir, { recursive: true });
    try {
      await writeFile(tmp, bootstrap);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
}
