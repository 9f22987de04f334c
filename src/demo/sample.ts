// The demo's sample: a small but realistic tree (text, nested directories, a symlink, a 5 MiB binary
// and a vendored copy of it) and its tar, made the way image builders make layers.
import { execFile } from 'node:child_process';
import { mkdir, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { MiB } from '../util/bytes.js';

/** Bytes that look random to dedup (no two chunks repeat) yet compress about 2:1 (4 bits of entropy a byte). */
export function compressibleNoise(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let state = seed;
  for (let i = 0; i < size; i++) {
    // xorshift32: deterministic, so every run reports the same numbers
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = 0x40 | (state & 0x0f);
  }
  return out;
}

function readmeText(): string {
  const line = 'Nydus splits every file into chunks, names each chunk by its digest and stores it once.\n';
  return Array.from({ length: 400 }, (_, i) => `${i + 1}. ${line}`).join('');
}

/** Writes the sample tree under `root`; returns its regular files, relative to `root`, sorted. */
export async function writeSampleTree(root: string): Promise<string[]> {
  const library = compressibleNoise(5 * MiB, 0x9e3779b9);
  const files: Record<string, string | Buffer> = {
    'etc/hostname': 'nydus-demo\n',
    'etc/os-release': 'NAME="Nydus demo"\nID=nydus-demo\nVERSION_ID=0.1\n',
    'usr/share/doc/demo/README': readmeText(),
    'usr/share/demo/a/b/c/deep.txt': 'a file three directories down\n',
    'usr/lib/libdemo.so.1.0': library,
    // images often vendor the same library twice; chunk dedup stores it once
    'opt/app/lib/libdemo.so.1.0': library,
  };
  for (const [path, contents] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), contents);
  }
  await symlink('libdemo.so.1.0', join(root, 'usr/lib/libdemo.so.1'));
  await mkdir(join(root, 'var/empty'), { recursive: true });
  return Object.keys(files).sort();
}

/** Tars `root` the way image builders do: sorted, owned by root, fixed mtime. Returns the tar's size. */
export async function tarLayer(root: string, tarPath: string): Promise<number> {
  const args = ['--create', '--file', tarPath, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', root, '.'];
  await promisify(execFile)('tar', args);
  return (await stat(tarPath)).size;
}
