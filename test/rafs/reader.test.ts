import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { Layout } from '../../src/rafs/inode.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { S_IFREG } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { DIGEST_BLOB, sampleImage, TOC_BLOB } from './helpers.js';
import { zstdDecompress } from '../../src/native/index.js';
import { describeFixtures, itFixtures, lazyFixture, nydusFixture, untarFixture } from '../helpers/fixtures.js';

const boot22 = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');

describeFixtures('RafsImage on the nydus 2.2 fixture', () => {
  let image: RafsImage;
  beforeAll(() => {
    image = RafsImage.open(boot22());
  });

  it('exposes the superblock values', () => {
    expect(image.root).toBe(128);
    expect(image.superblock.metaBlkaddr).toBe(2);
    expect(image.extSuperblock.flags).toBe(0x194);
    expect([image.chunkSize, image.compressor, image.digester, image.blockSize]).toEqual([0x100000, 'zstd', 'blake3', 4096]);
    expect(image.blobs.map((b) => [b.blobId, b.features, b.tocSize])).toEqual([[DIGEST_BLOB, 0x70000021, 1024]]);
    expect(image.devices).toEqual([{ blobId: DIGEST_BLOB, blocks: 9, mappedBlkaddr: 512 }]);
    expect(image.prefetchNids).toEqual([]);
  });

  it('walks, looks up and resolves chunks through the chunk info table', () => {
    expect([...image.walk()].map((e) => [e.path, e.nid])).toEqual([['/', 128], ['/lib.rs', 133], ['/sync_io.rs', 136]]);
    expect(image.lookup(128, 'sync_io.rs')).toBe(136);
    expect(image.lookup(128, Buffer.from('lib.rs'))).toBe(133);
    expect(image.lookup(128, 'nope')).toBeUndefined();
    expect(image.lookup(128, '!')).toBeUndefined();
    expect(image.inode(136)).toMatchObject({ mode: 0o100644, size: 13400, nlink: 1, layout: Layout.CHUNK_BASED, ino: 3, xattrCount: 0 });
    const [chunk] = image.chunks(136);
    expect(chunk).toMatchObject({ blobIndex: 0, ciIndex: 1, uncompressedOffset: 0x5000, uncompressedSize: 13400, compressedOffset: 4828, compressedSize: 2974, compressed: true });
    expect(chunk!.digest.toString('hex')).toBe('812465bcc9e8839359 8311dc5fc93abaecce f0185bcd99f9701d17ebdf9adc3f'.replace(/ /g, ''));
    expect(image.chunksForRange(136, 100, 50)).toEqual([{ chunk, index: 0, start: 100, length: 50 }]);
    expect(image.chunksForRange(136, 13000, 1000)).toEqual([{ chunk, index: 0, start: 13000, length: 400 }]);
    expect(image.chunksForRange(136, 13400, 10)).toEqual([]);
  });

  it('reads directories with resumable offsets', () => {
    const all = [...image.readdir(128)];
    expect(all.map((e) => e.name)).toEqual(['.', '..', 'lib.rs', 'sync_io.rs']);
    expect(all.map((e) => e.offset)).toEqual([0, 12, 24, 36]);
    expect([...image.readdir(128, all[2]!.nextOffset)].map((e) => e.name)).toEqual(['sync_io.rs']);
    expect([...image.readdir(128, all[3]!.nextOffset)]).toEqual([]);
  });

  it('converts to the in-memory model', () => {
    const b = image.toBootstrap();
    expect([...b.root.children!.keys()]).toEqual(['lib.rs', 'sync_io.rs']);
    expect(b.root.children!.get('lib.rs')!.inode).toMatchObject({ mode: S_IFREG | 0o644, size: 16931, mtime: 1676819553 });
    expect(b.blobs[0]!.blobId).toBe(DIGEST_BLOB);
    expect([b.chunkSize, b.compressor, b.digester]).toEqual([0x100000, 'zstd', 'blake3']);
  });

  it('reports misuse of nids as typed errors', () => {
    expect(() => image.readdir(133).next()).toThrow(/nid 133 is not a directory/);
    expect(() => image.readlink(133)).toThrow(RafsFormatError);
    expect(() => image.chunks(128)).toThrow(/not a regular file/);
    expect(() => image.inode(2 ** 40)).toThrow(RafsFormatError);
    expect(() => image.inode(129)).toThrow(RafsFormatError);
  });
});

describe('RafsImage on other inputs', () => {
  itFixtures('opens the bootstrap inlined in the TOC fixture blob (4 inodes)', () => {
    const blob = readFileSync(nydusFixture('toc', TOC_BLOB));
    const image = RafsImage.open(zstdDecompress(blob.subarray(7997, 7997 + 501)));
    expect([...image.walk()].map((e) => e.path)).toEqual(['/', '/error.rs', '/lib.rs', '/logger.rs']);
    expect(image.chunks(image.lookup(image.root, 'error.rs')!)[0]).toMatchObject({ compressedOffset: 0, compressedSize: 1211, uncompressedOffset: 0, uncompressedSize: 2816 });
  });

  itFixtures('rejects the v5 snapshotter fixture clearly', () => {
    const v5 = untarFixture('v5-bootstrap-file-size-736032.tar.gz', 'image/image.boot');
    expect(() => RafsImage.open(v5)).toThrow('bootstrap at offset 0: RAFS v5 bootstrap detected: not supported');
  });

  itFixtures('rejects the invalid snapshotter fixtures', () => {
    const notBoot = untarFixture('invalid-bootstrap-file-size-133513.tar.gz', 'image/image.boot');
    expect(() => RafsImage.open(notBoot)).toThrow(/not a RAFS bootstrap/);
    expect(() => RafsImage.open(untarFixture('invalid.tar.gz', 'README.md'))).toThrow(RafsFormatError);
    expect(() => RafsImage.open(Buffer.alloc(0))).toThrow(/not a RAFS bootstrap/);
  });

  itFixtures('rejects a truncated bootstrap and a size that is not a block multiple', () => {
    expect(() => RafsImage.open(boot22().subarray(0, 8192))).toThrow(RafsFormatError);
    expect(() => RafsImage.open(Buffer.concat([boot22(), Buffer.alloc(100)]))).toThrow(/not a multiple of the 4096-byte block size/);
  });

  it('rejects a plain mkfs.erofs image: no RAFS marker', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rafs-mkfs-'));
    try {
      mkdirSync(join(dir, 'src'));
      writeFileSync(join(dir, 'src', 'f'), 'x');
      execFileSync('mkfs.erofs', ['--quiet', join(dir, 'img'), join(dir, 'src')]);
      expect(() => RafsImage.open(readFileSync(join(dir, 'img')))).toThrow(/plain EROFS image without the RAFS v6 compat bit/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  itFixtures('rejects inconsistent tables', () => {
    const mutate = (at: number, write: (b: Buffer) => void): Buffer => {
      const b = Buffer.from(boot22());
      write(b.subarray(at));
      return b;
    };
    expect(() => RafsImage.open(mutate(1024 + 86, (b) => b.writeUInt16LE(2, 0)))).toThrow(/2 devices for 1 blobs/);
    expect(() => RafsImage.open(mutate(1152 + 24, (b) => b.writeUInt32LE(0x5000, 0)))).toThrow(/chunk info table/);
    expect(() => RafsImage.open(mutate(1024 + 14, (b) => b.writeUInt16LE(133, 0)))).toThrow(/root nid 133 is not a directory/);
    expect(() => RafsImage.open(mutate(0x1000 + 64, (b) => b.writeUInt32LE(1, 0)))).toThrow(/blob index 1/);
    const badChunk = RafsImage.open(mutate(0x4000 + 32, (b) => b.writeUInt32LE(5, 0)));
    expect(() => badChunk.chunks(133)).toThrow(/blob index 5 is not in the blob table/);
  });
});

describe('RafsImage on a written sample', () => {
  const sample = sampleImage();
  const image = RafsImage.open(writeBootstrap(sample.bootstrap));

  it('decodes a chunk info entry when a file first needs it: a bad one fails its files only, a key given twice fails all', () => {
    const files = [...image.walk()].filter((e) => (e.inode.mode & 0o170000) === S_IFREG && !e.seen && image.chunks(e.nid).length > 0);
    const key = (nid: number): string => `${image.chunks(nid)[0]!.blobIndex}/${image.chunks(nid)[0]!.ciIndex}`;
    const [a, b] = [files[0]!.nid, files.find((e) => key(e.nid) !== key(files[0]!.nid))!.nid];
    const { chunkTableOffset, chunkTableSize } = image.extSuperblock;
    const entryOf = (buf: Buffer, nid: number): number => {
      const { blobIndex, ciIndex } = image.chunks(nid)[0]!;
      for (let at = chunkTableOffset; at < chunkTableOffset + chunkTableSize; at += 80) if (buf.readUInt32LE(at + 32) === blobIndex && buf.readUInt32LE(at + 72) === ciIndex) return at;
      throw new Error(`no entry for chunk ${ciIndex} of blob ${blobIndex}`);
    };
    const bad = Buffer.from(writeBootstrap(sample.bootstrap));
    bad.writeUInt32LE(0xffffffff, entryOf(bad, a) + 44); // uncompressed size
    const badImage = RafsImage.open(bad);
    expect(badImage.chunks(b)).toEqual(image.chunks(b));
    expect(() => badImage.chunks(a)).toThrow(/exceeds the chunk size/);
    expect(() => [...badImage.chunkInfoTable()]).toThrow(/exceeds the chunk size/);
    const twice = Buffer.from(writeBootstrap(sample.bootstrap));
    const [first, second] = [entryOf(twice, a), entryOf(twice, b)];
    twice.copy(twice, second + 32, first + 32, first + 36); // b's first chunk takes a's key
    twice.copy(twice, second + 72, first + 72, first + 76);
    expect(() => RafsImage.open(twice).chunks(b)).toThrow(/duplicate entry/);
  });

  it('finds every entry of a 5000-entry directory by bisection', () => {
    const big = image.lookup(image.root, 'big')!;
    const names = [...sample.bootstrap.root.children!.get('big')!.children!.keys()];
    for (const name of names) expect(image.lookup(big, name), name).toBeDefined();
    expect(image.lookup(big, 'entry-99999')).toBeUndefined();
    expect(image.lookup(big, '')).toBeUndefined();
    expect(image.lookup(big, '~')).toBeUndefined();
  });

  it('resumes readdir from any offset across blocks', () => {
    const big = image.lookup(image.root, 'big')!;
    const all = [...image.readdir(big)];
    expect(all).toHaveLength(5003);
    expect(new Set(all.map((e) => Math.floor(e.offset / 4096))).size).toBeGreaterThan(30);
    for (const i of [0, 1, 194, 195, 2500, 5002]) {
      expect([...image.readdir(big, all[i]!.offset)].map((e) => e.name)).toEqual(all.slice(i).map((e) => e.name));
      expect([...image.readdir(big, all[i]!.nextOffset)].map((e) => e.name)).toEqual(all.slice(i + 1).map((e) => e.name));
    }
  });

  it('maps byte ranges onto chunks', () => {
    const nid = image.lookup(image.root, 'scattered')!;
    const slices = image.chunksForRange(nid, 0x10000 - 10, 0x10000 + 20);
    expect(slices.map((s) => [s.index, s.start, s.length])).toEqual([[0, 0xfff6, 10], [1, 0, 0x10000], [2, 0, 5]]);
    expect(image.chunksForRange(nid, 0, 2 ** 40).map((s) => s.length)).toEqual([0x10000, 0x10000, 5]);
    expect(image.chunksForRange(nid, -1, 5)).toEqual([]);
  });
});
