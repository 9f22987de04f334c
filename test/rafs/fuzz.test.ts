// Corrupted bootstraps and blob tails must only ever raise RafsFormatError — never a RangeError,
// TypeError or hang — however the bytes are mangled. Deterministic (seeded) so failures replay.
import { beforeAll, expect, it } from 'vitest';
import { zstdDecompress } from '../../src/native/index.js';
import { BlobTail } from '../../src/rafs/blob.js';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { describeFixtures, lazyFixture } from '../helpers/fixtures.js';
import { sampleImage, TOC_BLOB } from './helpers.js';

const fixtureBoot = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');
const tocBlob = lazyFixture('toc', TOC_BLOB);

/** xorshift32: reproducible randomness from a seed. */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

const EXTREMES = [0, 1, 2, 3, 12, 31, 32, 127, 128, 255, 256, 4095, 4096, 4097, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

/** Offsets worth hitting: superblocks, tables, every inode and its first bytes of data. */
function interestingOffsets(buf: Buffer): number[] {
  const image = RafsImage.open(buf);
  const meta = image.superblock.metaBlkaddr * image.blockSize;
  const offsets = [...Array.from({ length: 128 }, (_, i) => 1024 + i), ...Array.from({ length: 64 }, (_, i) => 1152 + i), 1408, 1408 + 64, 1408 + 68];
  const { blobTableOffset, chunkTableOffset, prefetchTableOffset } = image.extSuperblock;
  for (let i = 0; i < 256; i += 4) offsets.push(blobTableOffset + i);
  for (let i = 0; i < 160; i += 4) offsets.push(chunkTableOffset + i);
  if (prefetchTableOffset) offsets.push(prefetchTableOffset, prefetchTableOffset + 4);
  for (const e of image.walk()) {
    const at = meta + e.nid * 32;
    for (let i = 0; i < 96; i += 2) offsets.push(at + i);
  }
  return offsets;
}

type Mutation = (buf: Buffer, rand: (n: number) => number, hot: number[]) => Buffer;

const mutations: Mutation[] = [
  function flipBits(buf, rand, hot) {
    const out = Buffer.from(buf);
    for (let n = 1 + rand(8); n > 0; n--) {
      const at = rand(2) ? hot[rand(hot.length)]! : rand(out.length);
      if (at < out.length) out[at]! ^= 1 << rand(8);
    }
    return out;
  },
  function overwriteField(buf, rand, hot) {
    const out = Buffer.from(buf);
    const at = hot[rand(hot.length)]!;
    const value = EXTREMES[rand(EXTREMES.length)]!;
    const width = [1, 2, 4, 8][rand(4)]!;
    if (at + width > out.length) return out;
    if (width === 1) out.writeUInt8(value & 0xff, at);
    else if (width === 2) out.writeUInt16LE(value & 0xffff, at);
    else if (width === 4) out.writeUInt32LE(value >>> 0, at);
    else out.writeBigUInt64LE(rand(2) ? BigInt(value) : 0xffffffffffffffffn - BigInt(value), at);
    return out;
  },
  function truncate(buf, rand) {
    return buf.subarray(0, rand(2) ? rand(buf.length) : Math.floor(rand(buf.length) / 4096) * 4096);
  },
  function copyBlock(buf, rand) {
    // duplicating one block over another creates shared directories, cycles and stale nids
    const blocks = buf.length / 4096;
    const out = Buffer.from(buf);
    buf.copy(out, rand(blocks) * 4096, rand(blocks) * 4096, undefined);
    return out.subarray(0, buf.length);
  },
];

/** Everything a client could ask of an image. */
function exercise(image: RafsImage, rand: (n: number) => number): void {
  for (const nid of image.prefetchNids) image.inode(nid);
  for (const e of image.walk()) {
    image.xattrs(e.nid);
    const type = e.inode.mode & S_IFMT;
    if (type === S_IFREG) {
      image.chunks(e.nid);
      image.chunksForRange(e.nid, rand(e.inode.size + 1), rand(1 << 20));
    } else if (type === S_IFLNK) {
      image.readlink(e.nid);
    } else if (type === S_IFDIR) {
      const names = [...image.readdir(e.nid)].map((d) => d.name);
      for (const name of [names[0] ?? '', names.at(-1) ?? '', names[rand(names.length + 1)] ?? 'zz', '\xff']) image.lookup(e.nid, name);
      [...image.readdir(e.nid, rand(e.inode.size + 4096))];
    }
  }
  if (rand(8) === 0) image.toBootstrap();
}

/** Lets the test runner's RPC breathe during long synchronous loops. */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function fuzzBootstrap(base: Buffer, seed: number, budgetMs: number): Promise<number> {
  const rand = rng(seed);
  const hot = interestingOffsets(base);
  const deadline = Date.now() + budgetMs;
  let runs = 0;
  for (; Date.now() < deadline; runs++) {
    if (runs % 256 === 0) await yieldToEventLoop();
    const mutation = mutations[rand(mutations.length)]!;
    const mutated = mutation(base, rand, hot);
    try {
      exercise(RafsImage.open(mutated), rand);
    } catch (err) {
      if (!(err instanceof RafsFormatError)) {
        throw new Error(`seed ${seed} run ${runs} (${mutation.name}): ${(err as Error).stack}`);
      }
    }
  }
  return runs;
}

describeFixtures('fuzzing the bootstrap reader', () => {
  const small = writeBootstrap(sampleImage('b'.repeat(64), 300).bootstrap);
  let inlineBoot: Buffer;
  beforeAll(() => {
    inlineBoot = zstdDecompress(tocBlob().subarray(7997, 7997 + 501));
  });

  it('the unmutated images exercise cleanly', () => {
    for (const buf of [small, fixtureBoot(), inlineBoot]) exercise(RafsImage.open(buf), rng(1));
  });

  it('raises only RafsFormatError for thousands of mutated bootstraps', async () => {
    const runs = (await fuzzBootstrap(small, 0x5eed, 6000)) + (await fuzzBootstrap(fixtureBoot(), 0xf1, 2500)) + (await fuzzBootstrap(inlineBoot, 0xb007, 2500));
    expect(runs).toBeGreaterThan(2000);
  }, 30_000);
});

describeFixtures('fuzzing the blob tail reader', () => {
  it('raises only RafsFormatError for mutated blobs', async () => {
    const blob = tocBlob();
    const rand = rng(0x7a11);
    const hot = Array.from({ length: blob.length - 2829 }, (_, i) => 2829 + i);
    const deadline = Date.now() + 2500;
    let runs = 0;
    for (; Date.now() < deadline; runs++) {
      const mutation = mutations[rand(2)]!;
      const mutated = mutation(blob, rand, hot);
      try {
        const tail = await BlobTail.open(mutated);
        await tail.chunkInfo();
        await tail.chunkDigests();
        const boot = await tail.bootstrap();
        if (boot) exercise(RafsImage.open(boot), rand);
      } catch (err) {
        if (!(err instanceof RafsFormatError)) throw new Error(`run ${runs} (${mutation.name}): ${(err as Error).stack}`);
      }
    }
    expect(runs).toBeGreaterThan(500);
  }, 30_000);
});
