// Plain layers kept as EROFS images (plain-pulls.ts): a snapshot's `fs` is then the kernel's
// read-only EROFS mount of the layer's bootstrap, its data read from the layer's blob file as the
// image's device (file-backed mounts, Linux ≥ 6.12) — two files per layer on disk, not one per
// entry. The mounts outlive the snapshotter (containers read through them); a restart mounts what
// is missing, Remove and Cleanup unmount before they delete.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { adoptLowerDirs, lowerDirOf } from '../image/apply-layer.js';
import { erofsMountedAt, mountErofsFile } from '../daemon/erofs-mount.js';
import { lazyUnmount } from '../daemon/fuse/session.js';
import type { ErofsFiles } from './plain-pulls.js';

/** Whether this kernel mounts EROFS from a regular file (erofs, Linux ≥ 6.12). */
export function erofsLayersSupported(): boolean {
  const [major = 0, minor = 0] = release().split('.').map(Number);
  if (major < 6 || (major === 6 && minor < 12)) return false;
  return /\berofs\b/.test(readFileSync('/proc/filesystems', 'utf8'));
}

/** Mounts the EROFS layer of snapshot directory `dir` at its `fs`. */
export function mountLayer(dir: string, files: Pick<ErofsFiles, 'bootstrap' | 'blob'>, at = join(dir, 'fs')): void {
  mountErofsFile(join(dir, files.bootstrap), at, files.blob === undefined ? undefined : join(dir, files.blob));
}

export const layerMounted = (dir: string): boolean => erofsMountedAt(join(dir, 'fs'));

/** Detaches the EROFS mount at `dir`'s `fs`, if there is one (open files keep it until closed). */
export async function unmountLayer(dir: string): Promise<void> {
  if (layerMounted(dir)) await lazyUnmount(join(dir, 'fs'));
}

/**
 * Whether a directory the layer made for its contents would show other attributes than the layers
 * below give it (containerd's applier copies theirs; an EROFS image cannot change after the pull).
 */
export function implicitDirsDiffer(implicitDirs: readonly string[][], lowers: readonly string[]): boolean {
  return implicitDirs.some((comps) => {
    const st = lowerDirOf(comps, lowers);
    return st !== undefined && ((st.mode & 0o7777) !== 0o755 || st.uid !== 0 || st.gid !== 0);
  });
}

/**
 * The EROFS layer of snapshot directory `dir` written out as files into its `fs` (cp -a from a
 * mount of it: owners, modes, times, links, devices and attributes kept), its implicit directories
 * then given the attributes of the layers below, and the image files removed.
 */
export async function materialize(dir: string, files: ErofsFiles, lowers: readonly string[]): Promise<void> {
  const image = await mkdtemp(join(dir, 'image-'));
  mountLayer(dir, files, image);
  try {
    await copyAll(image, join(dir, 'fs'));
  } finally {
    await lazyUnmount(image);
    await rmdir(image);
  }
  adoptLowerDirs(join(dir, 'fs'), files.implicitDirs, lowers);
  await rm(join(dir, files.bootstrap), { force: true });
  if (files.blob !== undefined) await rm(join(dir, files.blob), { force: true });
}

function copyAll(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const cp = spawn('cp', ['-a', '--', `${from}/.`, to], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    cp.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    cp.on('error', reject);
    cp.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`cp -a ${from} ${to}: ${stderr.trim() || `exit ${code}`}`))));
  });
}
