import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CHUNK_MAP_HEADER_SIZE, ChunkMap, ChunkMapConflictError, chunkMapFileSize, chunkMapPath, decodeChunkMap, encodeChunkMap, inspectChunkMapFile,
} from '../../src/blobcache/chunk-map.js';

const BLOB = 'ab'.repeat(32);

/** The file upstream nydusd would write, built by hand from the spec's description. */
function handMade(count: number, ready: number[], allReady = false): Buffer {
  const file = Buffer.alloc(4096 + Math.ceil(count / 8));
  Buffer.from([0x50, 0x41, 0x4d, 0x42]).copy(file, 0); // magic 0x424D4150 little-endian ("PAMB")
  file[4] = 1; // version
  Buffer.from([0x50, 0x41, 0x4d, 0x43]).copy(file, 8); // magic2 0x434D4150
  if (allReady) Buffer.from([0x50, 0x41, 0x4d, 0x4d]).copy(file, 12); // 0x4D4D4150
  for (const i of ready) file[4096 + Math.floor(i / 8)] |= 0x80 >> (i % 8);
  return file;
}

describe('chunk map codec', () => {
  it('matches the upstream layout byte for byte (MSB-first bits)', () => {
    const ready = new Set([0, 7, 8, 10]);
    const file = encodeChunkMap(11, (i) => ready.has(i));
    expect(file.length).toBe(4096 + 2);
    expect(file.subarray(4096)).toEqual(Buffer.from([0x81, 0xa0]));
    expect(file).toEqual(handMade(11, [...ready]));
    expect(file.subarray(16, 4096).every((b) => b === 0)).toBe(true);
  });

  it('sets all_ready only when every chunk is ready', () => {
    expect(encodeChunkMap(3, () => true)).toEqual(handMade(3, [0, 1, 2], true));
    expect(encodeChunkMap(3, (i) => i !== 1).readUInt32LE(12)).toBe(0);
    expect(encodeChunkMap(0)).toEqual(handMade(0, [], true));
  });

  it('decodes what it encodes and what upstream writes', () => {
    const decoded = decodeChunkMap(handMade(20, [1, 9, 19]), 20)!;
    expect(decoded.allReady).toBe(false);
    expect(decoded.bitmap).toEqual(Buffer.from([0x40, 0x40, 0x10]));
    // all_ready means every chunk, whatever the bitmap says
    expect(decodeChunkMap(handMade(10, [], true), 10)!.bitmap).toEqual(Buffer.from([0xff, 0xc0]));
    // bits past the last chunk are ignored
    const stray = handMade(10, [0]);
    stray[4097] = 0xff;
    expect(decodeChunkMap(stray, 10)!.bitmap).toEqual(Buffer.from([0x80, 0xc0]));
  });

  it('rejects a wrong size, magic or version', () => {
    expect(decodeChunkMap(handMade(20, [1]), 21)).toEqual(expect.anything()); // 21 chunks still fit 3 bytes
    expect(decodeChunkMap(handMade(20, [1]), 25)).toBeUndefined();
    expect(decodeChunkMap(handMade(20, [1]).subarray(0, 4097), 20)).toBeUndefined();
    expect(decodeChunkMap(Buffer.alloc(10), 20)).toBeUndefined();
    for (const at of [0, 4, 8]) {
      const bad = handMade(20, [1]);
      bad[at] ^= 1;
      expect(decodeChunkMap(bad, 20)).toBeUndefined();
    }
    expect(() => decodeChunkMap(Buffer.alloc(0), -1)).toThrow(RangeError);
  });

  it('summarises a file without knowing the chunk count', () => {
    expect(inspectChunkMapFile(handMade(13, [0, 12]))).toEqual({ readyChunks: 2, slots: 16, allReady: false });
    expect(inspectChunkMapFile(Buffer.alloc(100))).toBeUndefined();
  });
});

describe('ChunkMap file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'chunk-map-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates an empty map of exactly 4096 + ceil(count/8) bytes', async () => {
    const map = await ChunkMap.open(dir, BLOB, 17);
    await map.close();
    expect(statSync(chunkMapPath(dir, BLOB)).size).toBe(chunkMapFileSize(17));
    expect(readFileSync(chunkMapPath(dir, BLOB))).toEqual(handMade(17, []));
    expect(chunkMapPath(dir, BLOB)).toBe(join(dir, `${BLOB}.blob.data.chunk_map`));
  });

  it('persists marks across reopen, neighbours in one byte included', async () => {
    const map = await ChunkMap.open(dir, BLOB, 20);
    await Promise.all([0, 1, 2, 3, 4, 5, 6, 7, 19].map((i) => map.markReady(i)));
    expect(map.readyCount).toBe(9);
    await map.close();
    expect(readFileSync(chunkMapPath(dir, BLOB))).toEqual(handMade(20, [0, 1, 2, 3, 4, 5, 6, 7, 19]));
    const again = await ChunkMap.open(dir, BLOB, 20);
    expect([...Array(20).keys()].filter((i) => again.isReady(i))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 19]);
    expect(again.isReady(20)).toBe(false);
    await expect(again.markReady(20)).rejects.toThrow(RangeError);
    await again.close();
  });

  it('keeps bits another writer set in the same byte', async () => {
    const a = await ChunkMap.open(dir, BLOB, 12);
    const b = await ChunkMap.open(dir, BLOB, 12);
    await a.markReady(0);
    await a.markReady(9);
    await b.markReady(1);
    expect(b.isReady(0)).toBe(true); // learnt from disk while writing its own bit
    expect(b.isReady(9)).toBe(false); // another byte: not looked at
    await a.close();
    await b.close();
    expect(readFileSync(chunkMapPath(dir, BLOB))).toEqual(handMade(12, [0, 1, 9]));
  });

  it('marks made while a write is under way go out together: a few writes for a burst, every bit on disk', async () => {
    const map = await ChunkMap.open(dir, BLOB, 4000);
    const marks = Array.from({ length: 3000 }, (_, i) => i);
    const writes: number[] = [];
    const handle = (map as unknown as { fh: object }).fh as { write: (...args: unknown[]) => Promise<unknown> };
    const write = handle.write.bind(handle);
    handle.write = (...args: unknown[]) => {
      writes.push(args[2] as number);
      return write(...args);
    };
    await Promise.all(marks.map((i) => map.markReady(i)));
    // the first mark's byte alone, then the rest of the burst as one run
    expect(writes.length).toBeLessThanOrEqual(2);
    expect(writes.reduce((a, b) => a + b, 0)).toBe(3000 / 8);
    await map.close();
    expect(readFileSync(chunkMapPath(dir, BLOB))).toEqual(handMade(4000, marks));
  });

  it('writes all_ready once every chunk is marked', async () => {
    const map = await ChunkMap.open(dir, BLOB, 3);
    for (const i of [2, 0, 1]) await map.markReady(i);
    expect(map.allReady).toBe(true);
    await map.close();
    expect(readFileSync(chunkMapPath(dir, BLOB))).toEqual(handMade(3, [0, 1, 2], true));
  });

  it('refuses a valid map of another chunk count and keeps it (another image\'s claim)', async () => {
    writeFileSync(chunkMapPath(dir, BLOB), handMade(8, [0, 1]));
    await expect(ChunkMap.open(dir, BLOB, 100)).rejects.toBeInstanceOf(ChunkMapConflictError);
    expect(readFileSync(chunkMapPath(dir, BLOB))).toEqual(handMade(8, [0, 1]));
  });

  it('discards a map that is not one (wrong magic, cut header) and starts empty', async () => {
    writeFileSync(chunkMapPath(dir, BLOB), handMade(100, [5]).subarray(0, 100));
    const cut = await ChunkMap.open(dir, BLOB, 100);
    expect(cut.readyCount).toBe(0);
    await cut.close();
    expect(statSync(chunkMapPath(dir, BLOB)).size).toBe(CHUNK_MAP_HEADER_SIZE + 13);
    const bad = handMade(100, [5]);
    bad[8] = 0;
    writeFileSync(chunkMapPath(dir, BLOB), bad);
    const badMagic = await ChunkMap.open(dir, BLOB, 100);
    expect(badMagic.isReady(5)).toBe(false);
    await badMagic.close();
    expect(readFileSync(chunkMapPath(dir, BLOB))).toEqual(handMade(100, []));
  });

  it('opens read-only without creating or writing', async () => {
    const missing = await ChunkMap.open(dir, BLOB, 5, { readOnly: true });
    expect(missing.readyCount).toBe(0);
    await expect(missing.markReady(0)).rejects.toThrow(/read-only/);
    writeFileSync(chunkMapPath(dir, BLOB), handMade(5, [3]));
    const ro = await ChunkMap.open(dir, BLOB, 5, { readOnly: true });
    expect(ro.isReady(3)).toBe(true);
    await ro.close();
  });
});
