// Fuzzing the bootstrap reader (src/rafs/reader.ts): mutated real bootstraps, then every question a
// client can ask of the image. Only RafsFormatError may come out, and no case takes a second.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../../src/rafs/tree.js';
import { applyMutations, caseCount, describeEdits, expectTyped, fuzz, mutationsArb, timeoutFor } from './harness.js';
import { itFixtures } from '../helpers/fixtures.js';
import { bootstrapSamples, UPSTREAM_SAMPLE } from './samples.js';

const samples = bootstrapSamples();
const RUNS = caseCount(1500);

/** Everything a client could ask of an image, with `probe` picking offsets and lengths. */
function exercise(image: RafsImage, probe: number): void {
  for (const nid of image.prefetchNids) image.inode(nid);
  for (const e of image.walk()) {
    image.xattrs(e.nid);
    const type = e.inode.mode & S_IFMT;
    if (type === S_IFREG) {
      image.chunks(e.nid);
      image.chunksForRange(e.nid, probe % (e.inode.size + 1), probe);
      image.chunksForRange(e.nid, 0, Number.MAX_SAFE_INTEGER);
    } else if (type === S_IFLNK) {
      image.readlink(e.nid);
    } else if (type === S_IFDIR) {
      let first = '';
      let last = '';
      for (const d of image.readdir(e.nid)) [first, last] = [first || d.name, d.name];
      for (const name of [first, last, 'zz', '\xff', '']) image.lookup(e.nid, name);
      for (const _ of image.readdir(e.nid, probe % (e.inode.size + 4096)));
    }
  }
  image.chunkInfoTable();
  if (probe % 4 === 0) image.toBootstrap();
}

describe('fuzz: bootstrap reader', () => {
  itFixtures('mutates upstream\'s bootstrap too', () => {
    expect(samples.map((s) => s.name)).toContain(UPSTREAM_SAMPLE);
  });

  it('the samples exercise cleanly', () => {
    for (const s of samples) exercise(RafsImage.open(s.boot), 4096);
  });

  it(`raises only RafsFormatError on mutated bootstraps (${RUNS} cases)`, async () => {
    const arb = fc.integer({ min: 0, max: samples.length - 1 }).chain((i) => fc.record({ sample: fc.constant(i), edits: mutationsArb(samples[i]!.hot), probe: fc.nat() }));
    const stats = await fuzz('bootstrap reader', arb, ({ sample, edits, probe }) => {
      const buf = applyMutations(samples[sample]!.boot, edits);
      try {
        exercise(RafsImage.open(buf), probe);
      } catch (err) {
        expectTyped(err, [RafsFormatError], describeEdits(samples[sample]!.name, edits));
      }
    }, { runs: RUNS, seed: 0xb007, describe: ({ sample, edits }) => describeEdits(samples[sample]!.name, edits) });
    expect(stats.cases).toBe(RUNS);
  }, timeoutFor(RUNS, 3));
});
