// The block-mode FUSE filesystem without a kernel: one directory holding image.erofs, whose bytes are
// the flat image (what export --block writes) read through the chunk source; a chunk that fails
// verification is EIO for that read, never other bytes.
import { describe, expect, it } from 'vitest';
import { ChunkIntegrityError } from '../../src/blobcache/chunk-decoder.js';
import type { SyncChunkSource } from '../../src/blobcache/sync-chunks.js';
import { FLAT_IMAGE_NAME, FlatFileFs } from '../../src/daemon/flat-file-fs.js';
import { decodeOutHeader, encodeRequest, Errno, FUSE_ROOT_ID, Opcode, parseDirents, readAttr, readEntry } from '../../src/daemon/fuse/protocol.js';
import { FuseRouter, slotBase } from '../../src/daemon/router.js';
import { FlatImageMap, imageChunks } from '../../src/rafs/flat-image.js';
import { RafsImage } from '../../src/rafs/reader.js';
import type { ChunkRef } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { flatImage, sampleImage } from '../rafs/helpers.js';

const sample = sampleImage('c'.repeat(64), 20);
const bootstrap = writeBootstrap(sample.bootstrap);
const rafs = RafsImage.open(bootstrap);
const expected = flatImage(bootstrap, sample.blobData, rafs.devices[0]!.mappedBlkaddr);
const map = FlatImageMap.build(rafs, bootstrap.length, imageChunks(rafs));

/** Chunks from the uncompressed blob; `corrupt` ones fail as a digest mismatch would. */
function source(corrupt = new Set<number>()): SyncChunkSource {
  return {
    read: (ref: ChunkRef) => {
      if (corrupt.has(ref.ciIndex)) throw new ChunkIntegrityError('c'.repeat(64), ref.ciIndex, 'digest mismatch');
      return sample.blobData.subarray(ref.uncompressedOffset, ref.uncompressedOffset + ref.uncompressedSize);
    },
    recycle: () => undefined,
    close: () => undefined,
  };
}

let unique = 1n;
function call(r: FuseRouter, opcode: number, nodeid: number, body?: Buffer): { errno: number; data: Buffer } {
  const all = Buffer.concat(r.handle(encodeRequest(opcode, ++unique, nodeid, body))!);
  const h = decodeOutHeader(all);
  return { errno: h.error === 0 ? 0 : -h.error, data: all.subarray(16) };
}
const readIn = (offset: number, size: number) => {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(BigInt(offset), 8);
  b.writeUInt32LE(size, 16);
  return b;
};
const lookup = (r: FuseRouter, dir: number) => readEntry(call(r, Opcode.LOOKUP, dir, Buffer.from(`${FLAT_IMAGE_NAME}\0`)).data, 0);

function dedicated(chunks: SyncChunkSource): FuseRouter {
  const r = new FuseRouter('dedicated');
  r.add(0, '/', new FlatFileFs(map, bootstrap, chunks));
  return r;
}

describe('FlatFileFs', () => {
  it('shows one read-only file, the flat image, in the root', () => {
    const r = dedicated(source());
    expect(parseDirents(call(r, Opcode.READDIR, FUSE_ROOT_ID, readIn(0, 4096)).data).map((d) => d.name.toString())).toEqual(['.', '..', FLAT_IMAGE_NAME]);
    const file = lookup(r, FUSE_ROOT_ID);
    expect(file.attr.size).toBe(expected.length);
    expect(file.attr.mode).toBe(0o100444);
    expect(readAttr(call(r, Opcode.GETATTR, file.nodeid, Buffer.alloc(16)).data, 16).size).toBe(expected.length);
    expect(call(r, Opcode.LOOKUP, FUSE_ROOT_ID, Buffer.from('other\0')).data.readBigUInt64LE(0)).toBe(0n);
    expect(call(r, Opcode.READ, FUSE_ROOT_ID, readIn(0, 10)).errno).toBe(Errno.EISDIR);
  });

  it('reads the bytes export --block writes, at any offset, and nothing past the end', () => {
    const r = dedicated(source());
    const file = lookup(r, FUSE_ROOT_ID).nodeid;
    const got: Buffer[] = [];
    for (let at = 0; at < expected.length; at += 131072) got.push(call(r, Opcode.READ, file, readIn(at, 131072)).data);
    expect(Buffer.concat(got).equals(expected)).toBe(true);
    expect(call(r, Opcode.READ, file, readIn(12345, 7777)).data.equals(expected.subarray(12345, 12345 + 7777))).toBe(true);
    expect(call(r, Opcode.READ, file, readIn(expected.length - 5, 4096)).data.length).toBe(5);
    expect(call(r, Opcode.READ, file, readIn(expected.length + 4096, 4096)).data.length).toBe(0);
  });

  it('fails a read that needs a corrupt chunk with EIO; reads elsewhere still work', () => {
    const corrupt = [...imageChunks(rafs)][1]!;
    const r = dedicated(source(new Set([corrupt.ciIndex])));
    const file = lookup(r, FUSE_ROOT_ID).nodeid;
    const at = rafs.devices[0]!.mappedBlkaddr * 4096 + corrupt.uncompressedOffset;
    expect(call(r, Opcode.READ, file, readIn(at, 4096)).errno).toBe(Errno.EIO);
    expect(call(r, Opcode.READ, file, readIn(0, 4096)).data.equals(expected.subarray(0, 4096))).toBe(true);
  });

  it('pushes the bootstrap into the page cache once the file is looked up, once', () => {
    const r = dedicated(source());
    expect(r.takeNotifications()).toEqual([]);
    const file = lookup(r, FUSE_ROOT_ID).nodeid;
    const messages = r.takeNotifications();
    expect(messages.length).toBeGreaterThan(0);
    let covered = 0;
    for (const [header, data] of messages) {
      expect(header!.readUInt32LE(0)).toBe(header!.length + data!.length);
      expect(header!.readInt32LE(4)).toBe(4); // FUSE_NOTIFY_STORE
      expect(header!.readBigUInt64LE(8)).toBe(0n);
      expect(Number(header!.readBigUInt64LE(16))).toBe(file);
      const offset = Number(header!.readBigUInt64LE(24));
      expect(offset).toBe(covered);
      expect(header!.readUInt32LE(32)).toBe(data!.length);
      expect(data!.equals(expected.subarray(offset, offset + data!.length))).toBe(true);
      covered += data!.length;
    }
    expect(covered).toBe(bootstrap.length);
    lookup(r, FUSE_ROOT_ID);
    expect(r.takeNotifications()).toEqual([]);
  });

  it('lives in its own node-id span under a shared root', () => {
    const r = new FuseRouter('shared');
    r.add(3, 'img', new FlatFileFs(map, bootstrap, source(), {}, { base: slotBase(3), ownsRoot: false }));
    const dir = readEntry(call(r, Opcode.LOOKUP, FUSE_ROOT_ID, Buffer.from('img\0')).data, 0);
    expect(Math.floor(dir.nodeid / slotBase(1))).toBe(3);
    const file = lookup(r, dir.nodeid);
    expect(call(r, Opcode.READ, file.nodeid, readIn(0, 4096)).data.equals(expected.subarray(0, 4096))).toBe(true);
    expect(call(r, Opcode.GETATTR, slotBase(3) + 99, Buffer.alloc(16)).errno).toBe(Errno.ENOENT);
  });
});
