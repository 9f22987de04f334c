// Compares directory trees as the kernel shows them: see tree-manifest.py for what is recorded.
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Manifest = Record<string, Record<string, unknown>>;

const script = join(dirname(fileURLToPath(import.meta.url)), 'tree-manifest.py');

export function treeManifest(root: string, opts: { xattrs?: boolean } = {}): Manifest {
  const args = [script, root];
  if (opts.xattrs === false) args.push('--no-xattrs');
  return JSON.parse(execFileSync('python3', args, { maxBuffer: 1 << 30 }).toString()) as Manifest;
}

/** Human-readable differences between two manifests (empty when equal); `ignore` drops fields. */
export function diffManifests(want: Manifest, got: Manifest, ignore: (path: string, field: string) => boolean = () => false): string[] {
  const out: string[] = [];
  for (const path of Object.keys(want)) if (!(path in got)) out.push(`missing: ${path}`);
  for (const path of Object.keys(got)) if (!(path in want)) out.push(`unexpected: ${path}`);
  for (const path of Object.keys(want)) {
    const a = want[path]!;
    const b = got[path];
    if (!b) continue;
    for (const field of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (ignore(path, field)) continue;
      const x = JSON.stringify(a[field]);
      const y = JSON.stringify(b[field]);
      if (x !== y) out.push(`${path}: ${field} ${x} != ${y}`);
    }
  }
  return out;
}

/**
 * `manifest` of `root` with each mtime rounded to the nearest second, as the converted image has it:
 * ctr-remote rewrites each tar with Go's archive/tar, which rounds debian-ml's sub-second PAX mtimes.
 */
export function roundedMtimes(root: string, manifest: Manifest): Manifest {
  const out: Manifest = {};
  for (const [path, fields] of Object.entries(manifest)) {
    const ns = lstatSync(join(root, path), { bigint: true }).mtimeNs;
    out[path] = 'mtime' in fields ? { ...fields, mtime: Number((ns + 500_000_000n) / 1_000_000_000n) } : fields;
  }
  return out;
}

/** Mounts with the kernel (`mount ARGS... MNT`), runs `fn` on the mount point, always unmounts. */
export function withMount<T>(args: string[], fn: (mnt: string) => T): T {
  const mnt = mkdtempSync(join(tmpdir(), 'nydusify-mnt-'));
  execFileSync('mount', [...args, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    return fn(mnt);
  } finally {
    execFileSync('umount', [mnt]);
    rmdirSync(mnt);
  }
}

/** The manifest of an EROFS image file as the kernel shows it through a loop mount. */
export function erofsImageManifest(image: string): Manifest {
  return withMount(['-t', 'erofs', '-o', 'loop,ro', image], (mnt) => treeManifest(mnt));
}
