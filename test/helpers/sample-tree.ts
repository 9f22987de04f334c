// A source tree with every kind of entry a layer tar can carry, for end-to-end fidelity tests.
// Needs root (devices, ownership, trusted.* xattrs).
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { treeManifest, type Manifest } from './trees.js';

/** Deterministic bytes that compress a little, like real binaries. */
export function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.writeUInt32LE((x & 0x0f0f0f0f) >>> 0, i < size - 3 ? i : size - 4);
  }
  return out;
}

export function makeSampleTree(root: string): void {
  const p = (...parts: string[]) => join(root, ...parts);
  mkdirSync(p('etc/deep/er/still'), { recursive: true });
  mkdirSync(p('bin'));
  mkdirSync(p('dev'));
  mkdirSync(p('tmp'));
  writeFileSync(p('etc/os-release'), 'PRETTY_NAME="nydusify-ts sample"\nID=sample\n');
  writeFileSync(p('etc/empty'), '');
  writeFileSync(p('bin/big'), pseudoRandom(3 * 1024 * 1024 + 12345, 7));
  writeFileSync(p('bin/big-copy'), pseudoRandom(3 * 1024 * 1024 + 12345, 7)); // same chunks: dedup
  const zeros = Buffer.alloc(2 * 1024 * 1024 + 100);
  zeros.write('island', 1_500_000);
  writeFileSync(p('etc/zero-runs'), zeros);
  writeFileSync(p('etc/deep/er/still/leaf'), 'deep\n');
  symlinkSync('../etc/os-release', p('bin/os-link'));
  symlinkSync('/nonexistent/' + 'x'.repeat(300), p('bin/long-target'));
  linkSync(p('etc/os-release'), p('bin/hard'));
  symlinkSync('big', p('bin/sym'));
  linkSync(p('bin/sym'), p('bin/hard-to-sym'));
  execFileSync('mknod', [p('dev/char'), 'c', '1', '3']);
  execFileSync('mknod', [p('dev/block'), 'b', '7', '300']);
  execFileSync('mkfifo', [p('dev/fifo')]);
  const longName = 'n'.repeat(200) + '.txt';
  writeFileSync(p('etc', longName), 'long name\n');
  writeFileSync(p('etc/ünïcødé-名前.txt'), 'utf-8 name\n');
  writeFileSync(p('etc/!bang'), 'sorts before dot\n');
  writeFileSync(p('bin/suid'), '#!/bin/sh\n');
  chmodSync(p('bin/suid'), 0o4755);
  chmodSync(p('tmp'), 0o1777);
  writeFileSync(p('etc/owned'), 'big ids\n');
  chownSync(p('etc/owned'), 3_000_000_000, 4_000_000_000);
  writeFileSync(p('etc/xattrs'), 'xattrs\n');
  execFileSync('setfattr', ['-n', 'user.comment', '-v', 'hello', p('etc/xattrs')]);
  execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', p('etc/deep')]);
  // cap_net_bind_service+ep, as setcap writes it (VFS_CAP_REVISION_2)
  execFileSync('setfattr', ['-n', 'security.capability', '-v', '0x0100000200040000000000000000000000000000', p('bin/suid')]);
  for (const f of ['etc/os-release', 'bin/big', 'etc/owned']) utimesSync(p(f), 1_700_000_000, 1_700_000_000);
  utimesSync(p('etc/empty'), 4_102_444_800, 4_102_444_800); // 2100: past 32-bit signed time
}

/**
 * The sample tree under `<dir>/src`, its PAX tar (xattrs kept) at `<dir>/layer.tar`, and the
 * manifest of what GNU tar extracts from it (into `<dir>/ref`): the reference a converted image
 * must show.
 */
export function makeSampleLayer(dir: string): { tar: string; reference: Manifest } {
  const p = (...parts: string[]) => join(dir, ...parts);
  const tar = (args: string[]) => execFileSync('tar', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  makeSampleTree(p('src'));
  tar(['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-C', p('src'), '-cf', p('layer.tar'), '.']);
  mkdirSync(p('ref'));
  tar(['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', p('layer.tar'), '-C', p('ref')]);
  return { tar: p('layer.tar'), reference: treeManifest(p('ref')) };
}
