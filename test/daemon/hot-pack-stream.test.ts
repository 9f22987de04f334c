// The hot pack stream over an in-memory pack: what arrives, what is stored, what is handed back.
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HotPackStream } from '../../src/daemon/hot-pack-stream.js';
import type { PackFrame } from '../../src/rafs/hot-pack.js';
import { zstdCompress } from '../../src/native/index.js';
import { chunkKey } from '../../src/rafs/chunk.js';
import type { BlobInfo, ChunkRef } from '../../src/rafs/tree.js';

const blob = { blobId: 'cd'.repeat(32), digester: 'sha256' } as BlobInfo;

/** A pack of `frames` frames of 4 chunks of 4 KiB each: the pack, its frames, and every chunk's bytes. */
function pack(frames: number): { bytes: Buffer; frames: PackFrame[]; data: Map<number, Buffer> } {
  const data = new Map<number, Buffer>();
  const parts: Buffer[] = [];
  const out: PackFrame[] = [];
  let offset = 0;
  for (let f = 0; f < frames; f++) {
    const refs: ChunkRef[] = [];
    const plain: Buffer[] = [];
    for (let c = 0; c < 4; c++) {
      const ciIndex = f * 4 + c;
      const bytes = Buffer.concat([randomBytes(1024), Buffer.alloc(3072, ciIndex)]);
      data.set(ciIndex, bytes);
      plain.push(bytes);
      refs.push({ blobIndex: 0, ciIndex, digest: createHash('sha256').update(bytes).digest(), compressedOffset: 0, compressedSize: 0, uncompressedOffset: ciIndex * 4096, uncompressedSize: 4096, compressed: true, fileOffset: 0 });
    }
    const z = zstdCompress(Buffer.concat(plain));
    parts.push(z);
    out.push({ offset, compressedSize: z.length, refs });
    offset += z.length;
  }
  return { bytes: Buffer.concat(parts), frames: out, data };
}

function run(p: ReturnType<typeof pack>, opts: { failStore?: number; read?: (o: number, n: number) => Promise<Buffer> } = {}) {
  const arrived: number[] = [];
  const stored = new Map<number, Buffer>();
  let corrupt = 0;
  const stream = new HotPackStream(blob, p.frames, {
    read: opts.read ?? (async (o, n) => p.bytes.subarray(o, o + n)),
    arrived: (ref) => void arrived.push(ref.ciIndex),
    store: async (ref, data) => {
      if (ref.ciIndex === opts.failStore) throw new Error('disk full');
      stored.set(ref.ciIndex, Buffer.from(data));
    },
    corrupt: (n) => void (corrupt += n),
  });
  return { stream, arrived, stored, corrupt: () => corrupt };
}

describe('hot pack stream', () => {
  it('delivers every chunk of every frame, verified, in order, and hands back none', async () => {
    const p = pack(5);
    const r = run(p);
    expect(await r.stream.run()).toEqual([]);
    expect(r.arrived).toEqual([...Array(20).keys()]);
    for (const [i, bytes] of p.data) expect(r.stored.get(i)!.equals(bytes)).toBe(true);
  });

  it('hands back the chunks of a frame that does not decode, of one that does not verify, and of a store that failed', async () => {
    const p = pack(4);
    p.bytes.fill(0x33, p.frames[1]!.offset + 8, p.frames[1]!.offset + 40);
    p.frames[2]!.refs[3]!.digest = Buffer.alloc(32);
    const r = run(p, { failStore: 12 });
    const missed = (await r.stream.run()).map((ref) => ref.ciIndex).sort((a, b) => a - b);
    expect(missed).toEqual([4, 5, 6, 7, 11, 12]);
    expect(r.corrupt()).toBe(1);
    expect([...r.stored.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 8, 9, 10, 13, 14, 15]);
  });

  it('lets a reader wait for its chunk\'s frame, but not longer than it is told', async () => {
    const p = pack(3);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const r = run(p, { read: async (o, n) => (o === p.frames[2]!.offset ? (await gate, p.bytes.subarray(o, o + n)) : p.bytes.subarray(o, o + n)) });
    const done = r.stream.run();
    const t0 = performance.now();
    await r.stream.waitFor(chunkKey(0, 9), 100);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(95);
    expect(r.stored.has(9)).toBe(false);
    release();
    await r.stream.waitFor(chunkKey(0, 9));
    expect(r.stored.has(9)).toBe(true);
    await r.stream.waitFor(chunkKey(0, 999)); // not in the pack: at once
    expect(await done).toEqual([]);
  });
});
