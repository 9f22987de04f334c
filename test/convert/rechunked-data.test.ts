// File data cut at another chunk size out of its stored chunks: right bytes in any order, each
// stored chunk read once on a sequential pass, reads ahead bounded by the budget, failures surfacing
// at the chunk that needs them.
import { describe, expect, it } from 'vitest';
import { type NewChunk, rechunkedData, type StoredFile } from '../../src/convert/rechunked-data.js';
import { type ChunkRef, newInode, S_IFREG } from '../../src/rafs/tree.js';
import { pseudoRandom } from '../helpers/sample-tree.js';

const KiB = 1024;

/** A file of `data` stored in `stored`-byte chunks of blob `blob`. */
function storedFile(data: Buffer, stored: number, blob: number): StoredFile {
  const chunks: ChunkRef[] = [];
  for (let at = 0, i = 0; at < data.length; at += stored, i++) {
    const size = Math.min(stored, data.length - at);
    chunks.push({ blobIndex: blob, ciIndex: i, digest: Buffer.alloc(32), compressedOffset: at, compressedSize: size, uncompressedOffset: at, uncompressedSize: size, compressed: false, fileOffset: at });
  }
  return { inode: newInode(S_IFREG | 0o644, { size: data.length, chunks }), chunkSize: stored };
}

/** Reads that answer on a later turn, counted. */
function reader(datas: Buffer[], fail?: string) {
  const reads: string[] = [];
  let startedBytes = 0;
  const read = async (ref: ChunkRef): Promise<Buffer> => {
    reads.push(`${ref.blobIndex}:${ref.ciIndex}`);
    startedBytes += ref.uncompressedSize;
    await new Promise((r) => setImmediate(r));
    if (fail === `${ref.blobIndex}:${ref.ciIndex}`) throw new Error(`chunk ${fail} is corrupt`);
    return Buffer.from(datas[ref.blobIndex]!.subarray(ref.uncompressedOffset, ref.uncompressedOffset + ref.uncompressedSize));
  };
  return { read, reads, started: () => startedBytes };
}

const all = (file: number, data: Buffer, size: number): NewChunk[] => Array.from({ length: Math.ceil(data.length / size) }, (_, index) => ({ file, index }));

describe('rechunked data', () => {
  const a = pseudoRandom(1000 * KiB + 77, 1);
  const b = pseudoRandom(300 * KiB, 2);
  const files = [storedFile(a, 16 * KiB, 0), storedFile(b, 256 * KiB, 1)];

  it.each([4 * KiB, 64 * KiB, 512 * KiB])('gives the right bytes of %i-byte chunks in any order', async (size) => {
    const chunks = [...all(0, a, size), ...all(1, b, size)];
    // a fixed shuffle
    for (let i = chunks.length - 1; i > 0; i--) {
      const j = (i * 7919) % (i + 1);
      [chunks[i], chunks[j]] = [chunks[j]!, chunks[i]!];
    }
    const { read } = reader([a, b]);
    let n = 0;
    for await (const data of rechunkedData(files, chunks, size, read)) {
      const { file, index } = chunks[n++]!;
      const whole = file === 0 ? a : b;
      expect(data.equals(whole.subarray(index * size, (index + 1) * size)), `${file}#${index}`).toBe(true);
    }
    expect(n).toBe(chunks.length);
  });

  it('reads each stored chunk once on a sequential pass', async () => {
    const { read, reads } = reader([a, b]);
    for await (const _ of rechunkedData(files, [...all(0, a, 4 * KiB), ...all(1, b, 4 * KiB)], 4 * KiB, read));
    expect(reads).toHaveLength(files[0]!.inode.chunks.length + files[1]!.inode.chunks.length);
    expect(new Set(reads).size).toBe(reads.length);
  });

  it('reads ahead no more than its budget beyond what the chunks handed out so far needed', async () => {
    const budget = 64 * KiB;
    const { read, started } = reader([a, b]);
    const chunks = all(0, a, 8 * KiB);
    let n = 0;
    for await (const _ of rechunkedData(files, chunks, 8 * KiB, read, budget)) {
      n++;
      const needed = Math.min(a.length, Math.ceil((n * 8 * KiB) / (16 * KiB)) * 16 * KiB);
      expect(started() - needed).toBeLessThanOrEqual(budget + 16 * KiB);
    }
    expect(started()).toBe(a.length);
  });

  it('fails at the chunk whose stored chunk cannot be read', async () => {
    const { read } = reader([a, b], '0:3');
    const got: number[] = [];
    await expect(async () => {
      for await (const _ of rechunkedData(files, all(0, a, 16 * KiB), 16 * KiB, read)) got.push(got.length);
    }).rejects.toThrow(/chunk 0:3 is corrupt/);
    expect(got).toEqual([0, 1, 2]);
  });
});
