import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { ChunkIntegrityError, decodeChunk } from '../../src/blobcache/chunk-decoder.js';
import { createTargzRef, gzipLayerModel } from '../../src/convert/targz-ref.js';
import { BlobFeature } from '../../src/rafs/blob-table.js';
import { checkpointStart } from '../../src/rafs/checkpoints.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { compress, decompress } from '../../src/native/index.js';
import type { BlobInfo, Checkpoint, ChunkRef } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { seededRandom } from '../helpers/seeded-random.js';
import { streamOf, tarBytes } from '../helpers/tar-bytes.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-targz-ref-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Text-like bytes: deflate makes many blocks with back-references across them. */
function text(size: number, seed: number): Buffer {
  const rand = seededRandom(seed);
  const words = ['layer', 'chunk', 'gzip', 'window', 'checkpoint', 'offset', 'image', 'lazy'];
  const parts: string[] = [];
  let n = 0;
  while (n < size) {
    const w = `${words[Math.floor(rand() * words.length)]}${rand() < 0.2 ? Math.floor(rand() * 1000) : ''} `;
    parts.push(w);
    n += w.length;
  }
  return Buffer.from(parts.join('').slice(0, size));
}

const files: Record<string, Buffer> = {
  'usr/bin/big': text(3_500_000, 1),
  'usr/lib/mid': text(700_000, 2),
  'etc/small': Buffer.from('one small file\n'),
  'etc/copy-of-mid': text(700_000, 2),
  'etc/empty': Buffer.alloc(0),
};
const tar = await tarBytes(async (t) => {
  for (const dir of ['usr', 'usr/bin', 'usr/lib', 'etc']) await t.dir({ path: dir });
  for (const [path, data] of Object.entries(files)) await t.file({ path, size: data.length }, data);
  await t.hardlink({ path: 'usr/bin/big-link' }, 'usr/bin/big');
  await t.symlink({ path: 'usr/bin/alias' }, 'big');
});
const layer = gzipSync(tar, { level: 6 });
const blobId = createHash('sha256').update(layer).digest('hex');

/** Every file's bytes, read chunk by chunk from the stored layer through the bootstrap. */
function readAll(rafs: RafsImage, blob: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of rafs.walk()) {
    if (!e.path.includes('/') || e.inode.size === 0 || (e.inode.mode & 0o170000) !== 0o100000) continue;
    const parts = rafs.chunks(e.nid).map((ref) => decodeChunk(rafs.blobs[ref.blobIndex]!, ref, blob.subarray(ref.compressedOffset, ref.compressedOffset + ref.compressedSize)));
    out.set(e.path.slice(1), Buffer.concat(parts));
  }
  return out;
}

describe('gzipLayerModel', () => {
  it('serves every file of the unmodified layer from checkpoints, each chunk verified', async () => {
    const { model, stats } = await gzipLayerModel({ source: streamOf(layer), blobSize: layer.length, blobId, chunkSize: 256 << 10, span: 256 << 10 });
    expect(stats.checkpoints).toBeGreaterThan(8);
    expect(stats.uncompressedBytes).toBe(tar.length);
    const blob = model.blobs[0]!;
    expect(blob.features & BlobFeature.CHECKPOINTS).toBeTruthy();
    expect(blob.compressedSize).toBe(layer.length);
    const rafs = RafsImage.open(writeBootstrap(model));
    expect(rafs.blobs[0]!.checkpoints).toHaveLength(stats.checkpoints);
    const read = readAll(rafs, layer);
    for (const [path, data] of Object.entries(files)) if (data.length > 0) expect(read.get(path)?.equals(data), path).toBe(true);
    expect(read.get('usr/bin/big-link')?.equals(files['usr/bin/big']!)).toBe(true);
    // the same bytes twice are one chunk
    const nids = new Map([...rafs.walk()].map((e) => [e.path, e.nid]));
    const mid = rafs.chunks(nids.get('/usr/lib/mid')!);
    expect(rafs.chunks(nids.get('/etc/copy-of-mid')!).map((c) => c.ciIndex)).toEqual(mid.map((c) => c.ciIndex));
    // each chunk's stored bytes start at its checkpoint and stay near it: a span and the chunk at most, compressed
    for (const ref of rafs.chunkInfoTable()) {
      const c = rafs.blobs[0]!.checkpoints![ref.checkpoint!]!;
      expect(ref.compressedOffset).toBe(checkpointStart(c));
      expect(ref.innerOffset!).toBeLessThan((256 << 10) * 2);
      expect(ref.compressedSize).toBeLessThan(layer.length);
    }
  });

  it('reads a layer of several gzip members as one stream', async () => {
    const cut = Math.floor(tar.length / 3);
    const members = Buffer.concat([gzipSync(tar.subarray(0, cut)), gzipSync(tar.subarray(cut), { level: 1 })]);
    const { model } = await gzipLayerModel({ source: streamOf(members), blobSize: members.length, chunkSize: 1 << 20, span: 128 << 10 });
    const read = readAll(RafsImage.open(writeBootstrap(model)), members);
    for (const [path, data] of Object.entries(files)) if (data.length > 0) expect(read.get(path)?.equals(data), path).toBe(true);
  });

  it('refuses a layer that is not the digest it was given, a truncated one and a span out of range', async () => {
    await expect(gzipLayerModel({ source: streamOf(layer), blobSize: layer.length, blobId: 'ab'.repeat(32), chunkSize: 1 << 20 })).rejects.toThrow(/not the expected/);
    const cut = layer.subarray(0, layer.length - 100);
    await expect(gzipLayerModel({ source: streamOf(cut), blobSize: cut.length, chunkSize: 1 << 20 })).rejects.toThrow();
    await expect(gzipLayerModel({ source: streamOf(layer), blobSize: layer.length, chunkSize: 1 << 20, span: 16 << 20 })).rejects.toThrow(/span/);
  });
});

const checkpointed = await gzipLayerModel({ source: streamOf(layer), blobSize: layer.length, chunkSize: 256 << 10, span: 256 << 10 });

describe('a chunk decoded from a checkpoint', () => {
  const rafs = RafsImage.open(writeBootstrap(checkpointed.model));
  const blob = rafs.blobs[0]!;
  const refs = [...rafs.chunkInfoTable()];
  const stored = (ref: ChunkRef, bytes = layer): Buffer => Buffer.from(bytes.subarray(ref.compressedOffset, ref.compressedOffset + ref.compressedSize));

  it('is an integrity error, never data, when a stored byte is corrupt', () => {
    for (const ref of refs.filter((r) => r.innerOffset! > 0).slice(0, 6)) {
      const bad = stored(ref);
      // garbage over the stored bytes that hold the chunk (about where its share of the output begins)
      const from = Math.floor(bad.length * (ref.innerOffset! / (ref.innerOffset! + ref.uncompressedSize)));
      const rand = seededRandom(ref.ciIndex);
      for (let i = from; i < bad.length; i++) bad[i] = Math.floor(rand() * 256);
      expect(() => decodeChunk(blob, ref, bad)).toThrow(ChunkIntegrityError);
    }
  });

  it('is an integrity error when its checkpoint is wrong: another window, other bits or another checkpoint', () => {
    const cps = blob.checkpoints!;
    // a page right at each checkpoint: what comes first after a checkpoint reads its window most
    const pageAt = (i: number): ChunkRef => {
      const c = cps[i]!;
      return {
        ...refs[0]!, checkpoint: i, innerOffset: 0, uncompressedSize: 4096, compressedOffset: checkpointStart(c), compressedSize: 8192,
        digest: createHash('sha256').update(tar.subarray(c.output, c.output + 4096)).digest(),
      };
    };
    const withCheckpoint = (i: number, changed: Checkpoint): BlobInfo => ({ ...blob, checkpoints: cps.map((x, j) => (j === i ? changed : x)) });
    let refused = 0;
    for (let i = 1; i < cps.length; i++) {
      const ref = pageAt(i);
      const c = cps[i]!;
      expect(decodeChunk(blob, ref, stored(ref)).equals(tar.subarray(c.output, c.output + 4096))).toBe(true);
      const otherWindow = compress('zstd', Buffer.alloc(decompress('zstd', c.window).length, 0x41));
      try {
        // decoded with a wrong window: an error, or (nothing of it used) exactly the page
        expect(decodeChunk(withCheckpoint(i, { ...c, window: otherWindow }), ref, stored(ref)).equals(tar.subarray(c.output, c.output + 4096))).toBe(true);
      } catch (err) {
        expect(err).toBeInstanceOf(ChunkIntegrityError);
        refused++;
      }
      expect(() => decodeChunk(withCheckpoint(i, { ...c, window: Buffer.from('not a zstd frame') }), ref, stored(ref))).toThrow(ChunkIntegrityError);
      expect(() => decodeChunk(blob, { ...ref, checkpoint: cps.length }, stored(ref))).toThrow(ChunkIntegrityError);
      if (c.bits > 0) expect(() => decodeChunk(withCheckpoint(i, { ...c, bits: (c.bits + 3) % 8 }), ref, stored(ref))).toThrow(ChunkIntegrityError);
    }
    expect(refused).toBeGreaterThan(cps.length / 2);
  });

  it('a bootstrap whose chunk names no checkpoint of its blob, or starts elsewhere, is refused', () => {
    const boot = writeBootstrap(checkpointed.model);
    const { chunkTableOffset } = RafsImage.open(boot).extSuperblock;
    const noCheckpoint = Buffer.from(boot);
    noCheckpoint.writeUInt32LE(0, chunkTableOffset + 64);
    noCheckpoint.writeUInt32LE(0x100, chunkTableOffset + 68); // checkpoint 256 · 2^32 / 2^25
    expect(() => [...RafsImage.open(noCheckpoint).chunkInfoTable()]).toThrow(/checkpoint 32768 is not in/);
    const elsewhere = Buffer.from(boot);
    elsewhere.writeUInt32LE(elsewhere.readUInt32LE(chunkTableOffset + 48) + 1, chunkTableOffset + 48);
    expect(() => [...RafsImage.open(elsewhere).chunkInfoTable()]).toThrow(/not at checkpoint/);
  });

  it('decoding bad input uses a bounded output (no bomb)', () => {
    const ref = refs[0]!;
    const bomb = gzipSync(Buffer.alloc(64 << 20), { level: 9, strategy: constants.Z_DEFAULT_STRATEGY });
    expect(() => decodeChunk(blob, { ...ref, innerOffset: 0 }, bomb.subarray(10, 10 + ref.compressedSize))).toThrow(ChunkIntegrityError);
  });
});

describe('createTargzRef', () => {
  it('writes the bootstrap and puts the layer in the blob dir as its sha256', async () => {
    const layerPath = join(work, 'layer.tar.gz');
    writeFileSync(layerPath, layer);
    const result = await createTargzRef({ layerPath, bootstrapPath: join(work, 'layer.boot'), blobDir: join(work, 'blobs'), chunkSize: 1 << 20 });
    expect(result).toMatchObject({ blobId, blobSize: layer.length, blobPath: join(work, 'blobs', blobId) });
    expect(readFileSync(join(work, 'blobs', blobId)).equals(layer)).toBe(true);
    expect(RafsImage.open(readFileSync(join(work, 'layer.boot'))).blobs[0]!.blobId).toBe(blobId);
  });
});
