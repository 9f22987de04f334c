// Shared by the tar tests: byte sources, header crafting, GNU tar trees and snapshots.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BLOCK_SIZE, FIELD, encodeHeader, headerChecksums, type HeaderFields } from '../../../src/convert/tar/header.js';
import { encodePaxRecords, type PaxRecord } from '../../../src/convert/tar/pax.js';
import { parseTar, type TarEntry } from '../../../src/convert/tar/parse.js';

export const isRoot = process.getuid?.() === 0;

/** Yields `buf` in slices of `chunk` bytes (or random sizes up to `chunk` with `random`). */
export async function* chunked(buf: Buffer, chunk = buf.length || 1, random = false): AsyncGenerator<Buffer> {
  let seed = 12345;
  for (let off = 0; off < buf.length; ) {
    let n = chunk;
    if (random) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      n = 1 + (seed % chunk);
    }
    yield buf.subarray(off, off + n);
    off += n;
  }
}

export type ReadEntry = Omit<TarEntry, 'body' | 'readAll' | 'skip'> & { data: Buffer };

/** Parses a whole archive, reading every body. */
export async function parseAll(src: Buffer | AsyncIterable<Buffer>, chunk?: number): Promise<ReadEntry[]> {
  const out: ReadEntry[] = [];
  for await (const e of parseTar(Buffer.isBuffer(src) ? chunked(src, chunk) : src)) {
    const { body: _b, readAll: _r, skip: _s, ...rest } = e;
    out.push({ ...rest, data: await e.readAll() });
  }
  return out;
}

/** Recomputes a header block's checksum after it was tampered with. */
export function fixChecksum(block: Buffer): Buffer {
  const sum = headerChecksums(block).unsigned;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', FIELD.chksum[0], 8, 'latin1');
  return block;
}

export function header(fields: Partial<HeaderFields> & { name: string }): Buffer {
  return encodeHeader({ typeflag: '0', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, ...fields });
}

export function pad(data: Buffer): Buffer {
  const rem = (BLOCK_SIZE - (data.length % BLOCK_SIZE)) % BLOCK_SIZE;
  return Buffer.concat([data, Buffer.alloc(rem)]);
}

/** A file entry: header + padded data. */
export function fileEntry(name: string, data: Buffer | string, extra: Partial<HeaderFields> = {}): Buffer {
  const d = Buffer.isBuffer(data) ? data : Buffer.from(data);
  return Buffer.concat([header({ name, size: d.length, ...extra }), pad(d)]);
}

/** A meta entry ('x', 'g', 'L', 'K') with its data. */
export function metaEntry(typeflag: string, data: Buffer, name = 'meta'): Buffer {
  return Buffer.concat([header({ name, typeflag, size: data.length }), pad(data)]);
}

export const paxEntry = (records: PaxRecord[], typeflag = 'x'): Buffer => metaEntry(typeflag, encodePaxRecords(records));

export const EOA = Buffer.alloc(BLOCK_SIZE * 2);

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export function sh(cmd: string, args: string[], opts: { cwd?: string; input?: Buffer } = {}): string {
  return execFileSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: 'latin1', maxBuffer: 256 * 1024 * 1024 });
}

/** Linux dev_t split as glibc does. */
export function devSplit(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

/** All xattrs of a path (not following symlinks): name → hex value. */
export function xattrsOf(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  let text: string;
  try {
    text = sh('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', path]);
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const m = /^([^#=][^=]*)=(?:0x)?(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export interface NodeSnapshot {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs?: string;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: { major: number; minor: number };
  xattrs: Record<string, string>;
  /** Paths (relative) sharing this inode, sorted. */
  links: string[];
}

/** Everything about a tree that a tar round trip must keep. Paths are byte strings, relative, without '.'. */
export function snapshotTree(root: string, opts: { mtimeOf?: (type: string) => boolean } = {}): Map<string, NodeSnapshot> {
  const byIno = new Map<bigint, string[]>();
  const out = new Map<string, NodeSnapshot>();
  const walk = (rel: string): void => {
    const dirAbs = rel === '' ? root : join(root, rel);
    for (const name of readdirSync(Buffer.from(dirAbs), { encoding: 'buffer' })) {
      const relPath = rel === '' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`;
      const abs = Buffer.from(join(root, relPath), 'latin1');
      const st = lstatSync(abs, { bigint: true });
      const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'other';
      const snap: NodeSnapshot = {
        type,
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        xattrs: xattrsOf(abs.toString('utf8')), // the tree's names are UTF-8
        links: [],
      };
      if (opts.mtimeOf?.(type) ?? type !== 'dir') snap.mtimeNs = String(st.mtimeNs);
      if (type === 'file') {
        snap.size = Number(st.size);
        snap.sha256 = sha256(readFileSync(abs));
      }
      if (type === 'symlink') snap.target = readlinkSync(abs, { encoding: 'buffer' }).toString('latin1');
      if (type === 'char' || type === 'block') snap.rdev = devSplit(st.rdev);
      if (type !== 'dir') {
        const l = byIno.get(st.ino) ?? [];
        l.push(relPath);
        byIno.set(st.ino, l);
        snap.links = l;
      }
      out.set(relPath, snap);
      if (type === 'dir') walk(relPath);
    }
  };
  walk('');
  for (const l of byIno.values()) l.sort();
  return out;
}

export const latin1 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
