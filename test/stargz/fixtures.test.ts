// The research fixtures (test/stargz/fixtures/README.md) decode to the values their notes give, and
// the layer trees equal what GNU tar extracts from the source tar.
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { zstdDecompress } from '../../src/native/index.js';
import { type Bootstrap, type Inode, S_IFMT, S_IFREG, type TreeNode } from '../../src/rafs/tree.js';
import { prefetchList, stargzBootstrap } from '../../src/stargz/bootstrap.js';
import { parseStargzFooter } from '../../src/stargz/footer.js';
import { readStargzToc, type StargzToc } from '../../src/stargz/toc.js';
import { bufferReader, sha256, synthEstargz, type SynthFile } from './helpers.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`fixtures/${name}`, import.meta.url));
const NOPRIO_TOC = 'sha256:726529391d2ad3f9fa166593577d32b0fd547d58d6220a2a9625947d1fd1b8c3';
const PRIO_TOC = 'sha256:e97035387a9904ac3e4db0c33d31a24e8b2156583e8982ac626503403c749dc5';

async function toc(name: string, annotations?: Record<string, string>): Promise<{ blob: Buffer; toc: StargzToc }> {
  const blob = fixture(name);
  return { blob, toc: await readStargzToc(bufferReader(blob), blob.length, { annotations }) };
}

/** Bytes [from, to) of a file, each piece decoded from its own member / frame as the chunk contract says. */
function fileBytes(blob: Buffer, t: StargzToc, name: string, from: number, to: number): Buffer {
  const pieces = t.entries.filter((e) => e.name === name && (e.type === 'reg' || e.type === 'chunk'));
  const decoded = pieces.map((p) => {
    const stored = blob.subarray(p.offset, p.offset + p.compressedSize);
    const out = t.footer.kind === 'zstd:chunked' ? zstdDecompress(stored) : gunzipSync(stored);
    const piece = out.subarray(p.innerOffset, p.innerOffset + p.chunkSize);
    expect(sha256(piece)).toBe(p.chunkDigest || p.digest);
    return piece;
  });
  return Buffer.concat(decoded).subarray(from, to);
}

describe('estargz-noprio.esgz', () => {
  it('has a 51-byte eStargz footer with the TOC at 823', () => {
    const blob = fixture('estargz-noprio.esgz');
    expect(blob.subarray(-51).toString('hex')).toBe('1f8b08040000000000ff1a00534716003030303030303030303030303033333753544152475a010000ffff0000000000000000');
    expect(parseStargzFooter(blob.subarray(-72), blob.length)).toEqual({ kind: 'estargz', footerSize: 51, tocOffset: 823, tocSize: 1750 - 51 - 823, dataEnd: 823 });
  });

  it('has its TOC digest, data members at the noted offsets and the footer at 1699', async () => {
    const { blob, toc: t } = await toc('estargz-noprio.esgz', { 'containerd.io/snapshot/stargz/toc.digest': NOPRIO_TOC });
    expect(t.tocDigest).toBe(NOPRIO_TOC);
    expect(t.verifiedBy).toBe('containerd.io/snapshot/stargz/toc.digest');
    const pieces = t.entries.filter((e) => e.compressedSize > 0);
    expect(pieces.map((e) => e.offset)).toEqual([85, 303, 429, 488, 547, 791]);
    expect(pieces.map((e) => e.offset + e.compressedSize)).toEqual([303, 429, 488, 547, 791, 823]);
    expect(blob.length - t.footer.footerSize).toBe(1699);
    // every member boundary of the notes: each of them starts a gzip member
    for (const at of [0, 85, 303, 429, 488, 547, 605, 791, 823, 1699]) expect(blob.subarray(at, at + 3).toString('hex')).toBe('1f8b08');
  });

  it('reads a/big.bin bytes 1995..2004 from the chunks at 488 (file offset 1000) and 547', async () => {
    const { blob, toc: t } = await toc('estargz-noprio.esgz');
    const covering = t.entries.find((e) => e.name === 'a/big.bin' && e.chunkOffset <= 1500 && 1500 < e.chunkOffset + e.chunkSize);
    expect(covering).toMatchObject({ type: 'chunk', offset: 488, chunkOffset: 1000, chunkSize: 1000, compressedSize: 547 - 488 });
    expect(fileBytes(blob, t, 'a/big.bin', 1995, 2005).toString()).toBe('TUVWXYZABC');
  });

  it('has no prefetch list (.no.prefetch.landmark)', async () => {
    const { toc: t } = await toc('estargz-noprio.esgz');
    expect(t.entries[0]!.name).toBe('.no.prefetch.landmark');
    expect(prefetchList(t)).toEqual([]);
  });

  it('is refused as a bootstrap, clearly: its 1000-byte pieces fit no RAFS chunk grid', async () => {
    const { toc: t } = await toc('estargz-noprio.esgz');
    expect(() => stargzBootstrap(t, { blobId: 'a'.repeat(64), blobSize: 1750 })).toThrow(/a\/big\.bin.*1000-byte piece at file offset 0 is not chunk 0 of a 4096-byte RAFS chunk grid/);
  });
});

describe('estargz-prio-bigbin.esgz', () => {
  it('prefetches a/big.bin, the file before .prefetch.landmark (at 393)', async () => {
    const { toc: t } = await toc('estargz-prio-bigbin.esgz', { 'containerd.io/snapshot/stargz/toc.digest': PRIO_TOC });
    expect(t.tocDigest).toBe(PRIO_TOC);
    expect(t.entries.find((e) => e.name === '.prefetch.landmark')).toMatchObject({ type: 'reg', size: 1, offset: 393 });
    expect(prefetchList(t)).toEqual(['/a/big.bin']);
  });
});

describe('stargz-legacy-footer-synthetic.stargz', () => {
  it('has a 47-byte legacy footer at the same TOC', async () => {
    const { toc: t } = await toc('stargz-legacy-footer-synthetic.stargz', { 'containerd.io/snapshot/stargz/toc.digest': NOPRIO_TOC });
    expect(t.footer).toEqual({ kind: 'stargz', footerSize: 47, tocOffset: 823, tocSize: 1746 - 47 - 823, dataEnd: 823 });
    expect(t.tocDigest).toBe(NOPRIO_TOC);
  });
});

describe('zstdchunked-skopeo-1.9.3.tar.zst', () => {
  const manifest = JSON.parse(fixture('zstdchunked-skopeo-1.9.3.manifest.json').toString()) as { layers: { digest: string; annotations: Record<string, string> }[] };
  const layer = manifest.layers[0]!;

  it('has its TOC at 630:509:1873 (the manifest position) and the manifest checksum', async () => {
    const { blob, toc: t } = await toc('zstdchunked-skopeo-1.9.3.tar.zst', layer.annotations);
    expect(layer.annotations['io.containers.zstd-chunked.manifest-position']).toBe('630:509:1873:1');
    expect(t.footer).toEqual({ kind: 'zstd:chunked', footerSize: 48, tocOffset: 630, tocSize: 509, tocUncompressedSize: 1873, dataEnd: 622 });
    expect(t.storedTocDigest).toBe(layer.annotations['io.containers.zstd-chunked.manifest-checksum']);
    expect(t.verifiedBy).toBe('io.containers.zstd-chunked.manifest-checksum');
    expect(`sha256:${sha256(blob)}`).toBe(layer.digest);
    expect(fileBytes(blob, t, 'a/big.bin', 1995, 2005).toString()).toBe('TUVWXYZABC');
  });

  it('as a bootstrap is the tree GNU tar extracts from source.tar', async () => {
    const { blob, toc: t } = await toc('zstdchunked-skopeo-1.9.3.tar.zst', layer.annotations);
    const model = stargzBootstrap(t, { blobId: layer.digest.slice(7), blobSize: blob.length });
    expect(model.compressor).toBe('zstd');
    expect(model.chunkSize).toBe(4096);
    expectTreeEqualsSourceTar(model, (chunk) => zstdDecompress(blob.subarray(chunk.compressedOffset, chunk.compressedOffset + chunk.compressedSize)));
  });
});

describe('a synthetic eStargz layer of source.tar with 4 KiB pieces', () => {
  const modtime = '2020-01-02T03:04:05Z';
  const big = Buffer.from(Array.from({ length: 2500 }, (_, i) => 65 + (i % 26)));
  const files: SynthFile[] = [
    { name: '.no.prefetch.landmark', content: Buffer.from([0x0f]) },
    { name: 'a/', type: 'dir', fields: { mode: 0o755, uid: 1000, gid: 1000, userName: 'alice', groupName: 'staff', modtime } },
    { name: 'a/small.txt', content: Buffer.from('hello'), fields: { mode: 0o644, uid: 1000, gid: 1000, modtime, xattrs: { 'user.foo': Buffer.from('bar\0baz').toString('base64') } } },
    { name: 'a/empty', fields: { mode: 0o600, modtime } },
    { name: 'a/big.bin', content: big, fields: { mode: 0o755, modtime } },
    { name: 'a/link', type: 'symlink', fields: { linkName: 'small.txt', mode: 0o777, modtime } },
    { name: 'a/hard', type: 'hardlink', fields: { linkName: 'a/small.txt', modtime } },
    { name: 'a/null', type: 'char', fields: { mode: 0o666, devMajor: 1, devMinor: 3, modtime } },
    { name: 'a/fifo', type: 'fifo', fields: { mode: 0o644, modtime } },
    { name: 'b.txt', content: Buffer.from('bye'), fields: { mode: 0o644, modtime } },
  ];

  it('as a bootstrap is the tree GNU tar extracts from source.tar', async () => {
    const { blob } = synthEstargz(files, { chunkSize: 4096 });
    const t = await readStargzToc(bufferReader(blob), blob.length);
    const model = stargzBootstrap(t, { blobId: sha256(blob), blobSize: blob.length });
    expect(model.compressor).toBe('gzip');
    expectTreeEqualsSourceTar(model, (chunk) => gunzipSync(blob.subarray(chunk.compressedOffset, chunk.compressedOffset + chunk.compressedSize)));
  });
});

/** Compares the model with GNU tar's extraction of source.tar (as root: owners, devices and xattrs kept). */
function expectTreeEqualsSourceTar(model: Bootstrap, decode: (chunk: Inode['chunks'][number]) => Buffer): void {
  const dir = mkdtempSync(join(tmpdir(), 'stargz-tar-'));
  try {
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--same-owner', '--numeric-owner', '-xpf', fileURLToPathSafe('fixtures/source.tar'), '-C', dir]);
    const extracted = walkDir(dir);
    const modelled = walkModel(model.root, decode);
    expect(modelled).toEqual(extracted);
    // the hardlink shares its target's inode
    const a = model.root.children!.get('a')!.children!;
    expect(a.get('hard')!.inode).toBe(a.get('small.txt')!.inode);
    expect(a.get('small.txt')!.inode.xattrs.get('user.foo')).toEqual(Buffer.from('bar\0baz'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function fileURLToPathSafe(rel: string): string {
  return new URL(rel, import.meta.url).pathname;
}

interface Seen { mode: string; uid: number; gid: number; mtime: number; rdev?: string; link?: string; data?: string; xattrs: string; hardlinkGroup?: string }

function walkDir(root: string): Record<string, Seen> {
  const out: Record<string, Seen> = {};
  const inodes = new Map<number, string>();
  const visit = (rel: string): void => {
    const path = join(root, rel);
    const st = lstatSync(path);
    const xattrs = execFileSync('getfattr', ['--absolute-names', '-h', '-d', '-m', '-', '-e', 'hex', path]).toString().split('\n').filter((l) => l.includes('=')).sort().join(',');
    const seen: Seen = { mode: st.mode.toString(8), uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000), xattrs };
    if (st.isCharacterDevice() || st.isBlockDevice()) seen.rdev = `${Math.floor(st.rdev / 256)}:${st.rdev % 256}`;
    if (st.isSymbolicLink()) seen.link = readlinkSync(path);
    if (st.isFile()) {
      seen.data = sha256(readFileSync(path));
      if (st.nlink > 1) seen.hardlinkGroup = inodes.get(st.ino) ?? (inodes.set(st.ino, rel), rel);
    }
    if (rel !== '') out[rel] = seen;
    if (st.isDirectory()) for (const name of readdirSync(path).sort()) visit(rel === '' ? name : `${rel}/${name}`);
  };
  visit('');
  return out;
}

function walkModel(root: TreeNode, decode: (chunk: Inode['chunks'][number]) => Buffer): Record<string, Seen> {
  const out: Record<string, Seen> = {};
  const groups = new Map<Inode, string>();
  const counts = new Map<Inode, number>();
  const count = (n: TreeNode): void => {
    counts.set(n.inode, (counts.get(n.inode) ?? 0) + 1);
    n.children?.forEach(count);
  };
  count(root);
  const visit = (node: TreeNode, rel: string): void => {
    const { inode } = node;
    const hex = (b: Buffer): string => `0x${b.toString('hex')}`;
    const seen: Seen = {
      mode: inode.mode.toString(8), uid: inode.uid, gid: inode.gid, mtime: inode.mtime,
      xattrs: [...inode.xattrs].map(([k, v]) => `${k}=${hex(v)}`).sort().join(','),
    };
    const type = inode.mode & S_IFMT;
    if (type === 0o020000 || type === 0o060000) seen.rdev = `${inode.rdevMajor}:${inode.rdevMinor}`;
    if (inode.symlinkTarget !== undefined) seen.link = inode.symlinkTarget;
    if (type === S_IFREG) {
      seen.data = sha256(Buffer.concat(inode.chunks.map((c) => decode(c).subarray(c.innerOffset ?? 0, (c.innerOffset ?? 0) + c.uncompressedSize))));
      if (counts.get(inode)! > 1) seen.hardlinkGroup = groups.get(inode) ?? (groups.set(inode, rel), rel);
    }
    if (rel !== '') out[rel] = seen;
    for (const name of [...(node.children?.keys() ?? [])].sort()) visit(node.children!.get(name)!, rel === '' ? name : `${rel}/${name}`);
  };
  visit(root, '');
  return out;
}
