import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BlobFeature } from '../../src/rafs/blob-table.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { S_IFDIR, S_IFREG, type ChunkRef } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { stargzBootstrap } from '../../src/stargz/bootstrap.js';
import { StargzFormatError } from '../../src/stargz/errors.js';
import { readStargzToc } from '../../src/stargz/toc.js';
import { bufferReader, estargzLayer, sha256, synthEstargz, type SynthFile } from './helpers.js';

const bytes = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

async function model(blob: Buffer) {
  const toc = await readStargzToc(bufferReader(blob), blob.length);
  return stargzBootstrap(toc, { blobId: sha256(blob), blobSize: blob.length });
}

/** A chunk's bytes per the MEMBERS contract: first member of its stored range, skip innerOffset, take its size. */
function chunkBytes(blob: Buffer, c: ChunkRef): Buffer {
  const out = gunzipSync(blob.subarray(c.compressedOffset, c.compressedOffset + c.compressedSize));
  return out.subarray(c.innerOffset ?? 0, (c.innerOffset ?? 0) + c.uncompressedSize);
}

describe('stargzBootstrap', () => {
  const big = bytes(10000, 7);
  const files: SynthFile[] = [
    { name: 'etc/prio.conf', content: Buffer.from('prio') },
    { name: '.prefetch.landmark', content: Buffer.from([0x0f]) },
    { name: './etc/', type: 'dir', fields: { mode: 0o40750, uid: 5, modtime: '2021-03-04T05:06:07.5Z' } },
    { name: 'usr/lib/big.so', content: big, fields: { mode: 0o100755 } },
    { name: 'usr/lib/copy.so', type: 'hardlink', fields: { linkName: '/usr/lib/big.so' } },
    { name: 'dev/sda', type: 'block', fields: { mode: 0o660, devMajor: 8, devMinor: 0 } },
  ];

  it('maps each piece to a chunk of one blob that is the layer, 4 KiB-aligned in its uncompressed space', async () => {
    const { blob } = synthEstargz(files, { chunkSize: 4096 });
    const m = await model(blob);
    expect(m.chunkSize).toBe(4096);
    expect(m.blobs).toHaveLength(1);
    expect(m.blobs[0]).toMatchObject({
      blobId: sha256(blob), compressor: 'gzip', digester: 'sha256', features: BlobFeature.ALIGNED | BlobFeature.MEMBERS,
      compressedSize: blob.length, chunkCount: 4, uncompressedSize: 4 * 4096, chunkSize: 4096, ciOffset: 0, tocSize: 0,
    });
    const lib = m.root.children!.get('usr')!.children!.get('lib')!.children!;
    const so = lib.get('big.so')!.inode;
    expect(lib.get('copy.so')!.inode).toBe(so);
    expect(so.mode).toBe(S_IFREG | 0o755);
    expect(so.chunks.map((c) => [c.ciIndex, c.fileOffset, c.uncompressedSize, c.uncompressedOffset])).toEqual([[1, 0, 4096, 4096], [2, 4096, 4096, 8192], [3, 8192, 1808, 12288]]);
    expect(Buffer.concat(so.chunks.map((c) => chunkBytes(blob, c)))).toEqual(big);
    for (const c of so.chunks) expect(sha256(chunkBytes(blob, c))).toBe(c.digest.toString('hex'));
    // each stored range ends where the next piece's member begins
    expect(so.chunks[0]!.compressedOffset + so.chunks[0]!.compressedSize).toBe(so.chunks[1]!.compressedOffset);
    const etc = m.root.children!.get('etc')!.inode;
    expect(etc).toMatchObject({ mode: S_IFDIR | 0o750, uid: 5, mtime: Date.UTC(2021, 2, 4, 5, 6, 7) / 1000, mtimeNsec: 500000000 });
    expect(m.root.children!.get('dev')!.children!.get('sda')!.inode).toMatchObject({ mode: 0o060660, rdevMajor: 8, rdevMinor: 0 });
    expect(m.root.children!.get('usr')!.inode.mode).toBe(S_IFDIR | 0o755);
    expect(m.root.children!.has('.prefetch.landmark')).toBe(false);
    expect(m.prefetch).toEqual(['/etc/prio.conf']);
  });

  it('round-trips through writeBootstrap and RafsImage', async () => {
    const { blob } = synthEstargz(files, { chunkSize: 4096 });
    const m = await model(blob);
    const image = RafsImage.open(writeBootstrap(m));
    const back = image.toBootstrap();
    expect(back.blobs).toEqual(m.blobs);
    expect(back.prefetch).toEqual(m.prefetch);
    const so = back.root.children!.get('usr')!.children!.get('lib')!.children!.get('big.so')!.inode;
    expect(Buffer.concat(so.chunks.map((c) => chunkBytes(blob, c)))).toEqual(big);
    expect(back.root.children!.get('etc')!.inode.mtime).toBe(Date.UTC(2021, 2, 4, 5, 6, 7) / 1000);
  });

  it('keeps innerOffset pieces that share a member, and one chunk for the same stored piece twice', async () => {
    const small = [Buffer.from('alpha'), Buffer.from('beta!'), bytes(3000, 1)];
    const { data, toc } = synthEstargz([
      { name: 'a', content: small[0] }, { name: 'b', content: small[1] }, { name: 'c', content: small[2] },
    ], { chunkSize: 4096, minChunkSize: 8192 });
    // a second entry naming the very bytes of 'b' (a writer's dedup): the same chunk
    const twin = estargzLayer(data, { version: 1, entries: [...toc.entries, { ...toc.entries[1], name: 'b2' }] });
    expect(new Set(toc.entries.map((e) => (e as { offset: number }).offset)).size).toBe(1);
    const m = await model(twin);
    const [a, bb, c, b2] = ['a', 'b', 'c', 'b2'].map((n) => m.root.children!.get(n)!.inode.chunks);
    expect([a, bb, c].map((x) => x![0]!.innerOffset)).toEqual([512, 1029, 1546]);
    expect(b2![0]).toBe(bb![0]);
    expect(m.blobs[0]!.chunkCount).toBe(3);
    [a, bb, c].forEach((x, i) => expect(chunkBytes(twin, x![0]!)).toEqual(small[i]));
  });

  it('uses the file digest for a one-piece file without chunkDigest, refuses a multi-piece one', async () => {
    const content = bytes(5000, 3);
    const noChunkDigest = (entries: object[]): object => ({ version: 1, entries: entries.map((e) => ({ ...e, chunkDigest: undefined })) });
    const two = synthEstargz([{ name: 'f', content }], { chunkSize: 4096 });
    await expect(model(estargzLayer(two.data, noChunkDigest(two.toc.entries)))).rejects.toThrow(/no chunkDigest.*could not be verified/);
    const one = synthEstargz([{ name: 'g', content: content.subarray(0, 4000) }], { chunkSize: 4096 });
    const m = await model(estargzLayer(one.data, noChunkDigest(one.toc.entries)));
    expect(m.root.children!.get('g')!.inode.chunks[0]!.digest.toString('hex')).toBe(sha256(content.subarray(0, 4000)));
  });

  it('puts entries after one that replaced their directory in a new directory, not the replaced one', async () => {
    const { blob } = synthEstargz([
      { name: 'a/', type: 'dir', fields: { mode: 0o40700 } },
      { name: 'a/b/', type: 'dir' },
      { name: 'a/b/old', content: Buffer.from('old') },
      { name: 'a', type: 'symlink', fields: { linkName: 'elsewhere' } },
      { name: 'a/b/new', content: Buffer.from('new') },
      { name: 'c/', type: 'dir' },
      { name: 'c/d/', type: 'dir' },
      { name: 'c/d', content: Buffer.from('d') },
      { name: 'c/d/e', content: Buffer.from('e') },
    ], { chunkSize: 4096 });
    const m = await model(blob);
    const a = m.root.children!.get('a')!;
    expect(a.inode.mode).toBe(S_IFDIR | 0o755);
    expect([...a.children!.get('b')!.children!.keys()]).toEqual(['new']);
    expect([...m.root.children!.get('c')!.children!.get('d')!.children!.keys()]).toEqual(['e']);
  });

  it('refuses pieces that fit no RAFS chunk grid, and a hardlink to nothing', async () => {
    const { blob } = synthEstargz([{ name: 'f', content: bytes(5000, 1) }], { chunkSize: 3000 });
    await expect(model(blob)).rejects.toThrow(StargzFormatError);
    const { blob: dangling } = synthEstargz([{ name: 'h', type: 'hardlink', fields: { linkName: 'nope' } }], { chunkSize: 4096 });
    await expect(model(dangling)).rejects.toThrow(/hardlink target "nope" is not an earlier entry/);
  });
});
