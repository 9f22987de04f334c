import { beforeAll, describe, expect, it } from 'vitest';
import { blake3Raw, gzipCompress, lz4BlockCompress, sha256, sha256Raw, zstdCompress, zstdDecompress } from '../../src/native/index.js';
import { BLOB_ID_PLACEHOLDER, type BlobTailFields, BlobTail, encodeBlobTail, readBlobMeta } from '../../src/rafs/blob.js';
import { type CiEntry, encodeCiHeader, encodeCiV1 } from '../../src/rafs/blob-meta.js';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { walkReverseTar } from '../../src/rafs/reverse-tar.js';
import { bufferSource, type ByteSource } from '../../src/rafs/source.js';
import { type BlobInfo, type Bootstrap, newDir, newInode, S_IFREG } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { DIGEST_BLOB, pseudoRandom, TOC_BLOB } from './helpers.js';
import { describeFixtures, lazyFixture } from '../helpers/fixtures.js';

const tocBlob = lazyFixture('toc', TOC_BLOB);
const digestBlob = lazyFixture('blobs', DIGEST_BLOB);
const boot22 = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');

/** An async ranged source that records what was read, like a registry client would serve it. */
function recordingSource(buf: Buffer): ByteSource & { reads: [number, number][] } {
  const reads: [number, number][] = [];
  return { size: buf.length, reads, read: async (offset, length) => (reads.push([offset, length]), Buffer.from(buf.subarray(offset, offset + length))) };
}

/** Every chunk's data, decompressed through the CI array. */
function chunkData(blob: Buffer, chunks: CiEntry[]): Buffer[] {
  return chunks.map((c) => {
    const stored = blob.subarray(c.compressedOffset, c.compressedOffset + c.compressedSize);
    return c.compressed ? zstdDecompress(stored, c.uncompressedSize) : stored;
  });
}

describeFixtures('BlobTail on the TOC fixture (variant c without digests)', () => {
  it('is named after its own sha256', () => {
    expect(sha256(tocBlob())).toBe(TOC_BLOB);
  });

  it('finds the 4 TOC entries, 3 v1 CI entries and the inline bootstrap', async () => {
    const tail = await BlobTail.open(tocBlob());
    expect(tail.toc!.map((e) => e.name)).toEqual(['image.blob', 'blob.meta', 'blob.meta.header', 'image.boot']);
    const meta = (await tail.chunkInfo())!;
    expect(meta.header).toMatchObject({ entries: 3, ciOffset: 3341, ciCompressedSize: 48, ciCompressor: 'none' });
    expect(meta.chunks[0]).toEqual({ compressedOffset: 0, compressedSize: 1211, uncompressedOffset: 0, uncompressedSize: 2816, compressed: true });
    const bootstrap = (await tail.bootstrap())!;
    expect(bootstrap.length).toBe(20480);
    const image = RafsImage.open(bootstrap);
    expect([...image.walk()]).toHaveLength(4);
    expect(await tail.chunkDigests()).toBeUndefined();
    // the chunks decompress to data whose blake3 is the digest the bootstrap records
    const digests = [...image.walk()].slice(1).map((e) => image.chunks(e.nid)[0]!);
    const data = chunkData(tocBlob(), meta.chunks);
    for (const chunk of digests) expect(blake3Raw(data[chunk.ciIndex]!)).toEqual(chunk.digest);
  });

  it('falls back to walking the tar headers when there is no TOC', async () => {
    const withoutToc = tocBlob().subarray(0, 9010);
    const tail = await BlobTail.open(withoutToc);
    expect(tail.toc).toBeUndefined();
    expect([...tail.sections.keys()]).toEqual(['image.boot', 'blob.meta', 'blob.meta.header', 'image.blob']);
    expect(await tail.bootstrap()).toEqual(await (await BlobTail.open(tocBlob())).bootstrap());
    expect((await tail.chunkInfo())!.chunks).toHaveLength(3);
  });

  it('reads only the tail through a ranged async source', async () => {
    const src = recordingSource(tocBlob());
    const tail = await BlobTail.open(src);
    await tail.bootstrap();
    await tail.chunkInfo();
    expect(Math.min(...src.reads.map(([offset]) => offset))).toBeGreaterThanOrEqual(3341);
  });
});

describeFixtures('BlobTail on the blob.digest fixture', () => {
  let image: RafsImage;
  let info: BlobInfo;
  beforeAll(() => {
    image = RafsImage.open(boot22());
    info = image.blobs[0]!;
  });

  it('verifies the TOC against the blob table and reads 2 chunk digests', async () => {
    const tail = await BlobTail.open(digestBlob(), { tocSize: info.tocSize, tocDigest: info.tocDigest });
    expect(tail.toc!.map((e) => e.name)).toEqual(['image.blob', 'blob.meta', 'blob.meta.header', 'blob.digest']);
    const digests = (await tail.chunkDigests())!;
    expect(digests).toHaveLength(2);
    const byCi = [...image.walk()].slice(1).flatMap((e) => image.chunks(e.nid)).sort((a, b) => a.ciIndex - b.ciIndex);
    expect(digests).toEqual(byCi.map((c) => c.digest));
    const meta = (await tail.chunkInfo())!;
    expect(chunkData(digestBlob(), meta.chunks).map((d) => blake3Raw(d))).toEqual(digests);
    expect(await tail.bootstrap()).toBeUndefined();
  });

  it('reads the CI the way nydusd does, from the blob table fields', async () => {
    const meta = await readBlobMeta(recordingSource(digestBlob()), info);
    expect(meta.chunks.map((c) => c.uncompressedOffset)).toEqual([0, 0x5000]);
    await expect(readBlobMeta(digestBlob(), { ...info, chunkCount: 3 })).rejects.toThrow(/does not match the blob table entry/);
  });

  it('reads gzip and lz4 compressed CI arrays (nydus compresses the CI with the blob compressor)', async () => {
    const entries: CiEntry[] = Array.from({ length: 50 }, (_, i) => ({ compressedOffset: i * 10, compressedSize: 10, uncompressedOffset: i * 4096, uncompressedSize: 100, compressed: true }));
    const ci = encodeCiV1(entries);
    for (const [ciCompressor, packed] of [['gzip', gzipCompress(ci)], ['lz4_block', lz4BlockCompress(ci)]] as const) {
      const fields = { ciCompressor, ciOffset: 100, ciCompressedSize: packed.length, ciUncompressedSize: ci.length, chunkCount: 50 };
      const header = encodeCiHeader({ ...fields, features: 0x1, entries: 50, zranOffset: 0, zranSize: 0, zranCount: 0 });
      const blob = Buffer.concat([Buffer.alloc(100), packed, header]);
      expect((await readBlobMeta(blob, { ...info, ...fields })).chunks).toEqual(entries);
    }
  });

  it('rejects a TOC whose digest or size disagrees with the blob table', async () => {
    await expect(BlobTail.open(digestBlob(), { tocDigest: Buffer.alloc(32, 1) })).rejects.toThrow(/sha256 does not match the blob table/);
    await expect(BlobTail.open(digestBlob(), { tocSize: 640 })).rejects.toThrow(/differs from the blob table's 640/);
  });
});

/** A layer blob built like the converter builds one: chunks, then encodeBlobTail with an inline bootstrap. */
function buildLayer(opts: { files: number; digests: boolean; bootstrap: boolean; compressor: 'zstd' | 'lz4_block' }): {
  blob: Buffer; fields: BlobTailFields; seen: BlobTailFields | undefined; bootstrap: Buffer | undefined; datas: Buffer[]; chunks: CiEntry[];
} {
  const datas = Array.from({ length: opts.files }, (_, i) => (i % 2 ? pseudoRandom(3000 + i, i + 1) : Buffer.alloc(5000 + i, i)));
  const stored = datas.map((d) => (opts.compressor === 'zstd' ? zstdCompress(d) : d));
  const chunks: CiEntry[] = [];
  let [coff, uoff] = [0, 0];
  for (const [i, s] of stored.entries()) {
    const compressed = s.length < datas[i]!.length;
    const raw = compressed ? s : datas[i]!;
    chunks.push({ compressedOffset: coff, compressedSize: raw.length, uncompressedOffset: uoff, uncompressedSize: datas[i]!.length, compressed });
    stored[i] = raw;
    coff += raw.length;
    uoff += Math.ceil(datas[i]!.length / 4096) * 4096;
  }
  const chunkBytes = Buffer.concat(stored);
  let seen: BlobTailFields | undefined;
  let bootstrap: Buffer | undefined;
  const layerBootstrap = (fields: BlobTailFields): Buffer => {
    seen = fields;
    const blobInfo: BlobInfo = { blobId: BLOB_ID_PLACEHOLDER, chunkSize: 0x100000, compressor: opts.compressor, digester: 'blake3', ...fields };
    const root = newDir('');
    chunks.forEach((c, i) => {
      const chunk = { blobIndex: 0, ciIndex: i, digest: blake3Raw(datas[i]!), ...c, fileOffset: 0 };
      root.children!.set(`f${i}`, { name: `f${i}`, inode: newInode(S_IFREG | 0o644, { size: c.uncompressedSize, chunks: [chunk] }) });
    });
    const b: Bootstrap = { root, blobs: [blobInfo], chunkSize: 0x100000, compressor: opts.compressor, digester: 'blake3', prefetch: ['/'] };
    bootstrap = writeBootstrap(b);
    return bootstrap;
  };
  const { sections, fields } = encodeBlobTail({
    chunkDataSize: chunkBytes.length, chunkDataDigest: sha256Raw(chunkBytes), chunks, compressor: opts.compressor,
    digests: opts.digests ? datas.map((d) => blake3Raw(d)) : undefined, bootstrap: opts.bootstrap ? layerBootstrap : undefined,
  });
  return { blob: Buffer.concat([chunkBytes, ...sections]), fields, seen, bootstrap, datas, chunks };
}

describe('encodeBlobTail', () => {
  it('writes variant (c): sections, TOC and blob-table values', async () => {
    const layer = buildLayer({ files: 40, digests: true, bootstrap: true, compressor: 'zstd' });
    const { blob, fields } = layer;
    const chunkDataSize = layer.chunks.reduce((n, c) => n + c.compressedSize, 0);
    expect(fields).toMatchObject({ features: 0x70000023, chunkCount: 40, ciOffset: chunkDataSize + 512, ciUncompressedSize: 40 * 16, ciCompressor: 'zstd', tocSize: 5 * 128 + 512, compressedSize: blob.length });
    expect(fields.ciCompressedSize).toBeLessThan(fields.ciUncompressedSize);
    expect(fields.tocDigest).toEqual(sha256Raw(blob.subarray(blob.length - fields.tocSize)));
    const last = layer.chunks.at(-1)!;
    expect(fields.uncompressedSize).toBe(last.uncompressedOffset + Math.ceil(last.uncompressedSize / 4096) * 4096);
    const names: string[] = [];
    for await (const s of walkReverseTar(bufferSource(blob))) names.push(s.name);
    expect(names).toEqual(['rafs.blob.toc', 'image.boot', 'blob.digest', 'blob.meta', 'image.blob']);

    const tail = await BlobTail.open(blob, { tocSize: fields.tocSize, tocDigest: fields.tocDigest });
    expect(tail.toc!.map((e) => [e.name, e.compressor])).toEqual([
      ['image.blob', 'none'], ['blob.meta', 'zstd'], ['blob.meta.header', 'none'], ['blob.digest', 'none'], ['image.boot', 'zstd'],
    ]);
    expect(tail.toc![0]!.digest).toEqual(sha256Raw(blob.subarray(0, chunkDataSize)));
    expect(await tail.bootstrap()).toEqual(layer.bootstrap);
    const meta = (await tail.chunkInfo())!;
    expect(meta.chunks).toEqual(layer.chunks);
    expect(meta.header.features).toBe(0x70000023);
    expect(await tail.chunkDigests()).toEqual(layer.datas.map((d) => blake3Raw(d)));
    expect(chunkData(blob, meta.chunks)).toEqual(layer.datas);
    expect((await readBlobMeta(blob, { ...fields, blobId: sha256(blob), chunkSize: 0x100000, compressor: 'zstd', digester: 'blake3' })).chunks).toEqual(layer.chunks);
  });

  it('hands the bootstrap builder the values known before image.boot (placeholder id, no TOC yet)', () => {
    const { blob, fields, seen, bootstrap } = buildLayer({ files: 3, digests: true, bootstrap: true, compressor: 'zstd' });
    expect(seen).toMatchObject({ features: 0x70000023, ciOffset: fields.ciOffset, ciCompressedSize: fields.ciCompressedSize, tocSize: 0 });
    expect(seen!.compressedSize).toBeLessThan(blob.length);
    const inner = RafsImage.open(bootstrap!);
    expect(inner.blobs[0]).toMatchObject({ blobId: BLOB_ID_PLACEHOLDER, features: 0x70000023, ciOffset: fields.ciOffset, compressedSize: seen!.compressedSize, tocSize: 0 });
    expect(inner.flags.inlinedChunkDigest).toBe(true);
    // what the merged bootstrap refers to: INLINED_FS_META dropped
    expect(fields.features & ~0x2).toBe(0x70000021);
  });

  it('sets features by content and keeps the CI uncompressed for non-zstd blobs', () => {
    expect(buildLayer({ files: 3, digests: false, bootstrap: false, compressor: 'zstd' }).fields.features).toBe(0x70000001);
    expect(buildLayer({ files: 3, digests: true, bootstrap: false, compressor: 'zstd' }).fields.features).toBe(0x70000021);
    const lz4 = buildLayer({ files: 40, digests: true, bootstrap: true, compressor: 'lz4_block' }).fields;
    expect([lz4.ciCompressor, lz4.ciCompressedSize]).toEqual(['none', 640]);
  });

  it('writes a metadata-only layer: no CI, no digests, just bootstrap and TOC', async () => {
    const bootstrap = writeBootstrap({ root: newDir(''), blobs: [], chunkSize: 0x100000, compressor: 'zstd', digester: 'blake3', prefetch: [] });
    const { sections, fields } = encodeBlobTail({ chunkDataSize: 0, chunks: [], digests: [], bootstrap, compressor: 'zstd' });
    const blob = Buffer.concat(sections);
    const tail = await BlobTail.open(blob);
    expect(tail.toc!.map((e) => e.name)).toEqual(['image.blob', 'image.boot']);
    expect(await tail.bootstrap()).toEqual(bootstrap);
    expect(await tail.chunkInfo()).toBeUndefined();
    expect([fields.chunkCount, fields.ciOffset, fields.features]).toEqual([0, 0, 0x70000003]);
  });

  it('turns corruption into RafsFormatError', async () => {
    const { blob } = buildLayer({ files: 3, digests: true, bootstrap: true, compressor: 'zstd' });
    const tail = await BlobTail.open(blob);
    const boot = tail.sections.get('image.boot')!;
    const bad = Buffer.from(blob);
    bad[boot.offset + Math.floor(boot.size / 2)]! ^= 0xff;
    await expect((await BlobTail.open(bad)).bootstrap()).rejects.toThrow(RafsFormatError);
    const badMeta = Buffer.from(blob);
    badMeta[tail.sections.get('blob.meta.header')!.offset + 100]! ^= 1;
    await expect((await BlobTail.open(badMeta)).chunkInfo()).rejects.toThrow(/sha256 does not match the TOC/);
    await expect(BlobTail.open(blob.subarray(0, blob.length - 1))).rejects.toThrow(RafsFormatError);
    await expect(BlobTail.open(Buffer.alloc(100))).rejects.toThrow(/cannot hold a tail section/);
    await expect(BlobTail.open(Buffer.alloc(4096))).rejects.toThrow(/ustar magic/);
  });
});
