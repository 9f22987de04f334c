// Chunks of a stargz-family layer used as it is (BlobFeature.MEMBERS): eStargz-like gzip members
// and zstd:chunked-like frames holding chunk payloads, tar padding and headers, several chunks to a
// member (innerOffset), followed by header-only members inside the chunks' stored ranges.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { claimKey } from '../../src/blobcache/chunk-claim.js';
import { ChunkIntegrityError, decodeChunk, decodeChunkAsync, MemberChunkStream } from '../../src/blobcache/chunk-decoder.js';
import { ChunkFetcher, type ChunkSink } from '../../src/blobcache/fetcher.js';
import type { BlobBackend } from '../../src/blobcache/backend.js';
import { LocalDirBackend } from '../../src/blobcache/local-backend.js';
import { SyncBlobDirSource } from '../../src/blobcache/sync-blob-dir-source.js';
import { compress, type MemberCodec } from '../../src/native/index.js';
import { BlobFeature } from '../../src/rafs/blob-table.js';
import { MAX_INNER_OFFSET } from '../../src/rafs/chunk.js';
import type { BlobInfo, ChunkRef } from '../../src/rafs/tree.js';
import { content, CountingBackend } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'members-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();
const pack = (codec: MemberCodec, data: Buffer): Buffer => (codec === 'gzip' ? gzipSync(data) : compress('zstd', data));
/** What follows a payload in a tar stream: padding to 512 bytes, then the next entry's header. */
const tarTail = (size: number, name: string): Buffer => Buffer.concat([Buffer.alloc((512 - (size % 512)) % 512), Buffer.from(name.padEnd(512, '\0'))]);

interface Layer {
  bytes: Buffer;
  blob: BlobInfo;
  /** In CI order, with their uncompressed bytes. */
  chunks: { ref: ChunkRef; data: Buffer }[];
}

/**
 * A layer of data members, each holding the payloads of `members[i]` (each followed by tar padding
 * and a header) and followed by a header-only member; a chunk's stored range runs from its
 * member's start to the next data member (eStargz's nextOffset), the last one's to a final member.
 */
function layer(codec: MemberCodec, members: Buffer[][]): Layer {
  const parts: Buffer[] = [];
  const pending: { ref: ChunkRef; data: Buffer }[] = [];
  const chunks: { ref: ChunkRef; data: Buffer }[] = [];
  let at = 0;
  let uncompressed = 0;
  const put = (b: Buffer): void => {
    parts.push(b);
    at += b.length;
  };
  for (const payloads of members) {
    for (const c of pending.splice(0)) chunks.push({ ...c, ref: { ...c.ref, compressedSize: at - c.ref.compressedOffset } });
    let inner = 0;
    const decoded: Buffer[] = [];
    for (const data of payloads) {
      const ref: ChunkRef = {
        blobIndex: 0, ciIndex: chunks.length + pending.length, digest: sha256(data), compressedOffset: at, compressedSize: 0,
        uncompressedOffset: uncompressed, uncompressedSize: data.length, compressed: true, fileOffset: 0, innerOffset: inner,
      };
      pending.push({ ref, data });
      const tail = tarTail(data.length, `header after chunk ${ref.ciIndex}`);
      decoded.push(data, tail);
      inner += data.length + tail.length;
      uncompressed += Math.ceil(data.length / 4096) * 4096;
    }
    put(pack(codec, Buffer.concat(decoded)));
    put(pack(codec, Buffer.from('headers of dirs and links'.padEnd(1536, '\0'))));
  }
  for (const c of pending) chunks.push({ ...c, ref: { ...c.ref, compressedSize: at - c.ref.compressedOffset } });
  put(pack(codec, Buffer.from('the TOC member')));
  const bytes = Buffer.concat(parts);
  const blob: BlobInfo = {
    blobId: sha256(bytes).toString('hex'), chunkCount: chunks.length, chunkSize: 0x10000, compressor: codec, digester: 'sha256',
    features: BlobFeature.MEMBERS | BlobFeature.ALIGNED, compressedSize: bytes.length, uncompressedSize: Math.max(uncompressed, 4096),
    ciCompressor: 'none', ciOffset: 0, ciCompressedSize: 0, ciUncompressedSize: 0, tocSize: 0, tocDigest: Buffer.alloc(32),
  };
  return { bytes, blob, chunks };
}

const storedOf = (l: Layer, ref: ChunkRef): Buffer => l.bytes.subarray(ref.compressedOffset, ref.compressedOffset + ref.compressedSize);

/** A cache sink in memory: what was stored, by chunk index. */
function sink(): ChunkSink & { stored: Map<number, Buffer> } {
  const stored = new Map<number, Buffer>();
  return {
    stored,
    isReady: (i) => stored.has(i),
    write: async (ref, data) => void stored.set(ref.ciIndex, data),
    sync: async () => undefined,
    markReady: async () => undefined,
  };
}

/** Three members: one chunk; three small chunks sharing one (innerOffset); a 64 KiB chunk. */
const sampleMembers = (): Buffer[][] => [
  [content(1, 5000)],
  [content(2, 700), content(3, 1), content(4, 20_000)],
  [content(5, 0x10000)],
];

describe.each(['gzip', 'zstd'] as const)('decoding %s members', (codec) => {
  const l = layer(codec, sampleMembers());

  it('decodes every chunk, with innerOffset in the middle of a member, sync, into and async', async () => {
    expect(l.chunks.filter((c) => c.ref.innerOffset! > 0).length).toBe(2);
    for (const { ref, data } of l.chunks) {
      expect(decodeChunk(l.blob, ref, storedOf(l, ref)).equals(data)).toBe(true);
      const into = Buffer.alloc(ref.uncompressedSize);
      decodeChunk(l.blob, ref, storedOf(l, ref), into);
      expect(into.equals(data)).toBe(true);
      expect((await decodeChunkAsync(l.blob, ref, storedOf(l, ref))).equals(data)).toBe(true);
    }
  });

  it('a truncated member, a corrupt member and a wrong digest are ChunkIntegrityError', async () => {
    const { ref } = l.chunks[3]!; // 20000 bytes at an innerOffset in the shared member
    const cut = { ...ref, compressedSize: 200 };
    const flipped = Buffer.from(storedOf(l, ref));
    flipped[Math.floor(flipped.length / 3)] ^= 0x55;
    const wrong = { ...ref, digest: sha256(Buffer.from('something else')) };
    const bad: [ChunkRef, Buffer][] = [[cut, storedOf(l, cut)], [ref, flipped], [wrong, storedOf(l, ref)]];
    for (const [r, stored] of bad) {
      expect(() => decodeChunk(l.blob, r, stored)).toThrow(ChunkIntegrityError);
      expect(() => decodeChunk(l.blob, r, stored, Buffer.alloc(r.uncompressedSize))).toThrow(ChunkIntegrityError);
      await expect(decodeChunkAsync(l.blob, r, stored)).rejects.toThrow(ChunkIntegrityError);
    }
    // a chunk claimed to go on past its member's end
    const long = { ...l.chunks[2]!.ref, innerOffset: ref.innerOffset! + 1000 };
    expect(() => decodeChunk(l.blob, { ...long, uncompressedSize: 20_000 }, storedOf(l, long))).toThrow(/member ends/);
  });

  it('the per-worker blob-dir source reads MEMBERS chunks', () => {
    const dir = mkdtempSync(join(work, 'dir-'));
    writeFileSync(join(dir, l.blob.blobId), l.bytes);
    const source = new SyncBlobDirSource(dir, [l.blob]);
    try {
      for (const { ref, data } of l.chunks) expect(source.read(ref).equals(data)).toBe(true);
    } finally {
      source.close();
    }
  });
});

describe('a member whose output is huge (a bomb after the chunk)', () => {
  const before = content(6, 100);
  const chunk = content(7, 4096);
  const bombSize = 256 << 20;
  const decoded = Buffer.concat([before, chunk, Buffer.alloc(bombSize)]);
  const bomb = gzipSync(decoded, { level: 1 });
  const blob = layer('gzip', [[chunk]]).blob;
  const ref: ChunkRef = {
    blobIndex: 0, ciIndex: 0, digest: sha256(chunk), compressedOffset: 0, compressedSize: bomb.length,
    uncompressedOffset: 0, uncompressedSize: chunk.length, compressed: true, fileOffset: 0, innerOffset: before.length,
  };

  it('is decoded only as far as the chunk: its broken end is never reached, and it costs what the chunk does', () => {
    const broken = Buffer.from(bomb);
    broken[broken.length - 5] ^= 0xff; // the CRC: a whole decode fails
    expect(() => gunzipSync(broken)).toThrow(/incorrect data check/);
    let t = process.hrtime.bigint();
    expect(decodeChunk(blob, ref, broken).equals(chunk)).toBe(true);
    const chunkMs = Number(process.hrtime.bigint() - t) / 1e6;
    t = process.hrtime.bigint();
    expect(gunzipSync(bomb).length).toBe(decoded.length);
    const wholeMs = Number(process.hrtime.bigint() - t) / 1e6;
    console.log(`bomb: ${bomb.length} stored bytes expand to ${decoded.length}; the chunk decodes in ${chunkMs.toFixed(2)} ms, the whole member in ${wholeMs.toFixed(0)} ms`);
    expect(chunkMs).toBeLessThan(wholeMs / 10);
    // and the stored bytes past the chunk's are not needed at all
    const prefix = bomb.subarray(0, 8192);
    expect(decodeChunk(blob, { ...ref, compressedSize: prefix.length }, prefix).equals(chunk)).toBe(true);
  });

  it('regression: an inner offset past MAX_INNER_OFFSET is refused before any decoding', async () => {
    const far = { ...ref, innerOffset: MAX_INNER_OFFSET + 1 };
    expect(() => decodeChunk(blob, far, bomb)).toThrow(/inner offset \d+ exceeds/);
    await expect(decodeChunkAsync(blob, far, bomb)).rejects.toThrow(/inner offset \d+ exceeds/);
  });
});

describe('fetching chunks that share or overlap stored ranges', () => {
  const l = layer('gzip', [[content(11, 3000), content(12, 4000), content(13, 5000)], [content(14, 9000)], [content(15, 100), content(16, 200)]]);
  const dir = mkdtempSync(join(work, 'fetch-'));
  writeFileSync(join(dir, l.blob.blobId), l.bytes);

  it('merges every chunk into one request and verifies each', async () => {
    const backend = new CountingBackend(new LocalDirBackend(dir));
    const fetcher = new ChunkFetcher(backend, { amplify: 0 });
    const s = sink();
    const got = await Promise.all(l.chunks.map(({ ref }) => fetcher.fetch(l.blob, ref, s)));
    got.forEach((data, i) => expect(data.equals(l.chunks[i]!.data)).toBe(true));
    expect(backend.calls.length).toBe(1);
    expect(backend.calls[0]).toMatchObject({ offset: 0, length: l.chunks.at(-1)!.ref.compressedOffset + l.chunks.at(-1)!.ref.compressedSize });
    expect(fetcher.stats).toMatchObject({ chunks: l.chunks.length, corruptChunks: 0 });
    await backend.close();
  });

  it('a chunk brings the other chunks of its member along, in the same request', async () => {
    const backend = new CountingBackend(new LocalDirBackend(dir));
    const fetcher = new ChunkFetcher(backend, { chunkTable: () => l.chunks.map((c) => c.ref), amplify: 1 });
    const s = sink();
    const { ref, data } = l.chunks[1]!;
    expect((await fetcher.fetch(l.blob, ref, s)).equals(data)).toBe(true);
    await expect.poll(() => s.stored.size).toBe(3);
    expect(backend.calls).toEqual([expect.objectContaining({ offset: ref.compressedOffset, length: ref.compressedSize })]);
    for (const i of [0, 1, 2]) expect(s.stored.get(i)!.equals(l.chunks[i]!.data)).toBe(true);
    expect(fetcher.stats.amplifiedChunks).toBe(2);
    await backend.close();
  });

  it('a request for a chunk of a MEMBERS blob is not grown toward amplify with the next members', async () => {
    const backend = new CountingBackend(new LocalDirBackend(dir));
    const fetcher = new ChunkFetcher(backend, { chunkTable: () => l.chunks.map((c) => c.ref), amplify: 1 << 20 });
    const s = sink();
    const { ref, data } = l.chunks[0]!;
    const after = l.chunks.filter((c) => c.ref.compressedOffset >= ref.compressedOffset + ref.compressedSize);
    expect(after.length).toBeGreaterThan(0);
    expect((await fetcher.fetch(l.blob, ref, s)).equals(data)).toBe(true);
    expect(backend.calls).toEqual([expect.objectContaining({ offset: ref.compressedOffset, length: ref.compressedSize })]);
    for (const c of after) expect(s.stored.has(c.ref.ciIndex)).toBe(false);
    await backend.close();
  });

  it('regression: chunks that differ only by innerOffset never share a fetch', () => {
    const { ref } = l.chunks[1]!;
    expect(claimKey(l.blob.blobId, ref)).not.toBe(claimKey(l.blob.blobId, { ...ref, innerOffset: 0 }));
  });
});

/** The research fixtures, in the repository (test/stargz/fixtures, README there): real eStargz and zstd:chunked layers. */
const stargzFixture = (name: string): string => join(import.meta.dirname, '..', 'stargz', 'fixtures', name);

describe('gzip member chunks decoded as their bytes arrive', () => {
  // chunks past INLINE_DECODE_MAX (those are decoded inline, whole): one alone, two sharing a member
  const l = layer('gzip', [[content(21, 200_000)], [content(22, 100_000), content(23, 150_000)], [content(24, 70_000)]]);
  const dir = mkdtempSync(join(work, 'stream-'));
  writeFileSync(join(dir, l.blob.blobId), l.bytes);
  const local = new LocalDirBackend(dir);

  /** Pushes a chunk's stored bytes in pieces of `piece`; its MemberChunkStream's result. */
  const streamed = (ref: ChunkRef, stored: Buffer, piece: number): Buffer => {
    const stream = new MemberChunkStream(l.blob, ref);
    for (let at = 0; at < stored.length; at += piece) stream.push(stored.subarray(at, at + piece));
    return stream.finish();
  };

  it('gives what decodeChunk gives, for pieces of any size', () => {
    expect(l.chunks.every(({ ref }) => MemberChunkStream.suits(l.blob, ref))).toBe(true);
    for (const { ref, data } of l.chunks) {
      for (const piece of [1 << 20, 4096, 333]) expect(streamed(ref, storedOf(l, ref), piece).equals(data)).toBe(true);
    }
  });

  it('a corrupt member, a wrong digest and bytes that stop short are ChunkIntegrityError, at the end', () => {
    const { ref } = l.chunks[2]!; // in the shared member, past the first chunk's bytes
    const flipped = Buffer.from(storedOf(l, ref));
    flipped[Math.floor(flipped.length * 0.75)] ^= 0x55; // within this chunk's own bytes
    expect(() => streamed(ref, flipped, 4096)).toThrow(ChunkIntegrityError);
    expect(() => streamed({ ...ref, digest: sha256(Buffer.from('something else')) }, storedOf(l, ref), 4096)).toThrow(/digest mismatch/);
    expect(() => streamed(ref, storedOf(l, ref).subarray(0, 1000), 100)).toThrow(ChunkIntegrityError);
  });

  /** Hands a range over in pieces as they "arrive" (a turn apart); with `restart`, starts over once, in a new buffer, halfway. */
  class TricklingBackend implements BlobBackend {
    constructor(private readonly piece: number, private readonly restart = false, private readonly tamper?: (data: Buffer) => void) {}

    async readRange(blobId: string, offset: number, length: number, progress?: (buf: Buffer, filled: number) => void): Promise<Buffer> {
      const data = Buffer.from(await local.readRange(blobId, offset, length));
      this.tamper?.(data);
      let buf = Buffer.alloc(length);
      for (let filled = 0, restarted = !this.restart; filled < length;) {
        await new Promise((r) => setImmediate(r));
        filled = Math.min(length, filled + this.piece);
        data.copy(buf, 0, 0, filled);
        progress?.(buf, filled);
        if (!restarted && filled > length / 2) {
          restarted = true;
          buf = Buffer.alloc(length);
          filled = 0;
        }
      }
      return buf;
    }

    size(blobId: string): Promise<number> {
      return local.size(blobId);
    }

    async close(): Promise<void> {}
  }

  it('the fetcher verifies them from bytes reported as they arrive, also when the request starts over', async () => {
    for (const backend of [new TricklingBackend(5000), new TricklingBackend(64 << 10, true)]) {
      const fetcher = new ChunkFetcher(backend, { amplify: 0 });
      const s = sink();
      const got = await Promise.all(l.chunks.map(({ ref }) => fetcher.fetch(l.blob, ref, s)));
      got.forEach((data, i) => expect(data.equals(l.chunks[i]!.data)).toBe(true));
      expect(fetcher.stats).toMatchObject({ requests: 1, chunks: l.chunks.length, corruptChunks: 0 });
    }
  });

  it('a chunk whose bytes came corrupt is asked for again, then refused: never served', async () => {
    const { ref } = l.chunks[0]!;
    const flip = (data: Buffer): void => void (data[100] ^= 0x55);
    const fetcher = new ChunkFetcher(new TricklingBackend(5000, false, flip), { amplify: 0 });
    await expect(fetcher.fetch(l.blob, ref, sink())).rejects.toThrow(ChunkIntegrityError);
    expect(fetcher.stats).toMatchObject({ requests: 2, corruptChunks: 2, refetches: 1 });
  });
});

describe('chunks of real stargz-family layers', () => {
  const alphabet = Buffer.from(Array.from({ length: 2500 }, (_, i) => 65 + (i % 26)));
  const hello = Buffer.from('hello');
  const read = (codec: MemberCodec, layerBytes: Buffer, at: number, next: number, data: Buffer, innerOffset = 0): Buffer => {
    const ref: ChunkRef = {
      blobIndex: 0, ciIndex: 0, digest: sha256(data), compressedOffset: at, compressedSize: next - at, uncompressedOffset: 0,
      uncompressedSize: data.length, compressed: true, fileOffset: 0, innerOffset,
    };
    const blob = { ...layer(codec, [[data]]).blob, compressedSize: layerBytes.length };
    return decodeChunk(blob, ref, layerBytes.subarray(at, next));
  };

  const esgz = stargzFixture('estargz-noprio.esgz');
  it('eStargz (estargz-noprio.esgz): the second chunk of a/big.bin and a/small.txt, each up to the next data offset', () => {
    const bytes = readFileSync(esgz);
    expect(alphabet.subarray(1995, 2005).toString()).toBe('TUVWXYZABC'); // the README's bytes
    expect(read('gzip', bytes, 488, 547, alphabet.subarray(1000, 2000)).equals(alphabet.subarray(1000, 2000))).toBe(true);
    expect(read('gzip', bytes, 303, 429, hello).equals(hello)).toBe(true);
    // a/big.bin's tar header, 512 bytes into the member that holds "hello"
    const header = gunzipSync(bytes.subarray(303, 429)).subarray(1024, 1536);
    expect(header.subarray(0, 9).toString()).toBe('a/big.bin');
    expect(read('gzip', bytes, 303, 429, header, 1024).equals(header)).toBe(true);
  });

  const zstdChunked = stargzFixture('zstdchunked-skopeo-1.9.3.tar.zst');
  it('zstd:chunked (skopeo 1.9.3): a/big.bin and a/small.txt, with the frames after them in range', () => {
    const bytes = readFileSync(zstdChunked);
    expect(read('zstd', bytes, 343, 581, alphabet).equals(alphabet)).toBe(true);
    expect(sha256(alphabet).toString('hex')).toBe('159008547ac1f37ad5eaf3d77bab04f12a4367aac2125fdd1879392b7984c71c');
    expect(read('zstd', bytes, 204, 343, hello).equals(hello)).toBe(true);
  });
});
