// Disk use of a snapshot directory, the way du counts it: allocated blocks (not apparent sizes) and
// inodes, each hard-linked inode once. Asynchronous, so a large layer never stalls the service.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface Usage {
  size: number;
  inodes: number;
}

export async function diskUsage(dir: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  const walk = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path, { bigint: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // removed while counting
      throw err;
    }
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return;
    seen.add(id);
    size += st.blocks * 512;
    inodes++;
    if (!st.isDirectory()) return;
    for (const name of await readdir(path)) await walk(join(path, name));
  };
  await walk(dir);
  return { size, inodes };
}
