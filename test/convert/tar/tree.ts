// A directory tree with every kind of entry tar can hold, built with the real tools (root needed
// for mknod, chown and trusted.*/security.* xattrs).
import { chmodSync, mkdirSync, symlinkSync, linkSync, writeFileSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from './helpers.js';

export const LONG_DIR = 'd'.repeat(120);
export const LONG_FILE = 'f'.repeat(150);
/** 120 + 1 + 150 = 271 bytes */
export const LONG_PATH = `${LONG_DIR}/${LONG_FILE}`;
export const LONG_TARGET = `${LONG_DIR}/../${'t'.repeat(130)}`;
export const UTF8_NAME = 'ünïcödé-名前.txt';
export const BIG_UID = 3000000000;
export const BIG_GID = 3000000001;

/** xattrs of 'xattr.txt': name → hex value (as getfattr -e hex prints them). */
export const XATTRS: Record<string, string> = {
  'user.foo': Buffer.from('bar').toString('hex'),
  'user.binary': '00010aff3d00',
  'user.empty': '',
  'trusted.overlay.opaque': Buffer.from('y').toString('hex'),
  // VFS_CAP_REVISION_2, cap_net_bind_service permitted+effective
  'security.capability': '0100000200040000000000000000000000000000',
};

export function largeData(): Buffer {
  const b = Buffer.alloc(3 * 1024 * 1024 + 123);
  let x = 0x9e3779b9;
  for (let i = 0; i < b.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, Math.min(i, b.length - 4));
  }
  return b;
}

/** Builds the tree under `root` (which must not exist); `withLongTarget` adds a symlink with a 250-byte target. */
export function buildTree(root: string, opts: { longTarget?: boolean } = {}): void {
  const p = (rel: string): string => join(root, rel);
  mkdirSync(root);
  writeFileSync(p('regular.txt'), 'hello, tar\n');
  writeFileSync(p('empty'), '');
  writeFileSync(p('large.bin'), largeData());
  mkdirSync(p('dir'));
  chmodSync(p('dir'), 0o750);
  mkdirSync(p('dir/sub'));
  symlinkSync('../regular.txt', p('dir/symlink'));
  linkSync(p('regular.txt'), p('hardlink'));
  sh('ln', ['-P', p('dir/symlink'), p('symlink-hardlink')]); // a hard link to the symlink itself
  sh('mknod', [p('chardev'), 'c', '1', '3']);
  sh('mknod', [p('blockdev'), 'b', '7', '200']);
  sh('mknod', [p('bigdev'), 'c', '4095', '1048575']);
  sh('mkfifo', [p('fifo')]);
  mkdirSync(p(LONG_DIR));
  writeFileSync(p(LONG_PATH), 'long name\n');
  linkSync(p(LONG_PATH), p('hardlink-to-long'));
  if (opts.longTarget) symlinkSync(LONG_TARGET, p('symlink-long'));
  writeFileSync(p(UTF8_NAME), 'utf-8 name\n');
  writeFileSync(p('xattr.txt'), 'xattrs\n');
  for (const [name, hex] of Object.entries(XATTRS)) {
    sh('setfattr', ['-n', name, ...(hex === '' ? [] : ['-v', `0x${hex}`]), p('xattr.txt')]);
  }
  writeFileSync(p('suid'), '#!/bin/sh\n');
  chmodSync(p('suid'), 0o4755);
  writeFileSync(p('sgid'), '');
  chmodSync(p('sgid'), 0o2711);
  mkdirSync(p('sticky'));
  chmodSync(p('sticky'), 0o1777);
  writeFileSync(p('bigid'), 'big ids\n');
  sh('chown', [`${BIG_UID}:${BIG_GID}`, p('bigid')]);
  writeFileSync(p('nsec'), 'sub-second mtime\n');
  sh('touch', ['-h', '-d', '@1600000000.123456789', p('nsec')]);
  utimesSync(p('regular.txt'), 1500000000, 1500000000);
}
