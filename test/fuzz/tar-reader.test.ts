// Fuzzing the tar reader (src/convert/tar): archives GNU tar wrote (PAX with xattrs and long names,
// GNU with long names and a sparse file, ustar, v7; plain, gzip and zstd), mutated, fed in random
// chunk sizes through openLayerStream and parseTar, every entry's path checked and body read. Only
// TarFormatError, TarPathError and LayerDecompressError may come out, each body is as long as its
// entry says, and no case takes a second.
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { entryPathComponents, LayerDecompressError, openLayerStream, parseTar, TarFormatError, TarPathError } from '../../src/convert/tar/index.js';
import { applyMutations, caseCount, describeEdits, expectTyped, fuzz, mutationsArb, timeoutFor } from './harness.js';

const RUNS = caseCount(2000);
const work = mkdtempSync(join(tmpdir(), 'fuzz-tar-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A small tree with every entry kind tar formats encode differently. */
function makeTree(root: string): void {
  mkdirSync(join(root, 'd/e'), { recursive: true });
  writeFileSync(join(root, 'd/file'), 'hello\n'.repeat(100));
  writeFileSync(join(root, 'd/e/' + 'n'.repeat(140)), 'long name\n');
  writeFileSync(join(root, 'empty'), '');
  symlinkSync('d/file', join(root, 'link'));
  symlinkSync('/'.padEnd(180, 't'), join(root, 'long-link'));
  linkSync(join(root, 'd/file'), join(root, 'hard'));
  execFileSync('mkfifo', [join(root, 'fifo')]);
  execFileSync('setfattr', ['-n', 'user.k', '-v', 'value', join(root, 'empty')]);
}

function tarSamples(): { name: string; bytes: Buffer }[] {
  const tree = join(work, 'tree');
  makeTree(tree);
  const plain = join(work, 'plain');
  mkdirSync(join(plain, 'a/'.repeat(30)), { recursive: true });
  writeFileSync(join(plain, 'a/'.repeat(30), 'f'.repeat(90)), 'deep\n');
  writeFileSync(join(plain, 'g'), 'data\n'.repeat(300));
  symlinkSync('g', join(plain, 's'));
  linkSync(join(plain, 'g'), join(plain, 'h'));
  const sparseTree = join(work, 'sparse');
  mkdirSync(sparseTree);
  writeFileSync(join(sparseTree, 'f'), 'x');
  truncateSync(join(sparseTree, 'f'), 1 << 20);
  const tar = (args: string[]): Buffer => execFileSync('tar', ['--numeric-owner', '--mtime=@1700000000', '--blocking-factor=1', ...args, '-cf', '-', '.'], { maxBuffer: 1 << 26 });
  const pax = tar(['--format=pax', '--xattrs', '--xattrs-include=*', '-C', tree]);
  const samples = [
    { name: 'pax', bytes: pax },
    { name: 'gnu', bytes: tar(['--format=gnu', '-C', tree]) },
    { name: 'ustar', bytes: tar(['--format=ustar', '-C', plain]) },
    { name: 'v7', bytes: tar(['--format=v7', '-C', join(tree, 'd'), '--exclude=e']) },
    { name: 'gnu sparse', bytes: tar(['--format=gnu', '--sparse', '-C', sparseTree]) },
    { name: 'pax.gz', bytes: execFileSync('gzip', ['-c'], { input: pax }) },
    { name: 'pax.zst', bytes: execFileSync('zstd', ['-c', '-q'], { input: pax }) },
  ];
  return samples;
}

const samples = tarSamples();

/** Headers and the bytes after them (512-byte blocks) and the compressed headers. */
const HOT = [...Array.from({ length: 16 }, (_, i) => i * 512 + 100), ...Array.from({ length: 16 }, (_, i) => i * 512 + 124), ...Array.from({ length: 16 }, (_, i) => i * 512 + 148), ...Array.from({ length: 16 }, (_, i) => i * 512 + 156), 0, 1, 2, 3, 4, 8, 12];

async function* chunked(buf: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  for (let at = 0, i = 0; at < buf.length; i++) {
    const n = 1 + (sizes[i % sizes.length]! % 8192);
    yield buf.subarray(at, at + n);
    at += n;
  }
}

/** Every entry parsed, its paths checked and its body read to the end. */
async function readArchive(bytes: Buffer, sizes: number[]): Promise<number> {
  let entries = 0;
  for await (const entry of parseTar(openLayerStream(chunked(bytes, sizes)))) {
    entries++;
    try {
      entryPathComponents(entry.path);
      if (entry.type === 'hardlink') entryPathComponents(entry.linkpath);
    } catch (err) {
      if (!(err instanceof TarPathError)) throw err;
    }
    let read = 0;
    for await (const part of entry.body) read += part.length;
    if (read !== entry.size) throw new Error(`entry ${JSON.stringify(entry.path)}: body of ${read} bytes, header says ${entry.size}`);
  }
  return entries;
}

describe('fuzz: tar reader', () => {
  it('reads the unmutated samples (the sparse one is refused)', async () => {
    for (const s of samples) {
      if (s.name === 'gnu sparse') await expect(readArchive(s.bytes, [512])).rejects.toThrow(TarFormatError);
      else expect(await readArchive(s.bytes, [1, 511, 4096])).toBeGreaterThan(1);
    }
  });

  it(`raises only typed errors on mutated archives (${RUNS} cases)`, async () => {
    const arb = fc.record({
      sample: fc.nat(samples.length - 1),
      edits: mutationsArb(HOT, { shifts: true }),
      // chunk boundaries anywhere (one-byte chunks cost the async iteration more than the parsing)
      sizes: fc.array(fc.oneof(fc.constantFrom(6, 511, 512, 4095), fc.integer({ min: 6, max: 8191 })), { minLength: 1, maxLength: 4 }),
    });
    const describe = ({ sample, edits, sizes }: { sample: number; edits: Parameters<typeof describeEdits>[1]; sizes?: number[] }) => `${describeEdits(samples[sample]!.name, edits)} in chunks of ${JSON.stringify(sizes)}`;
    const stats = await fuzz('tar reader', arb, async ({ sample, edits, sizes }) => {
      try {
        await readArchive(applyMutations(samples[sample]!.bytes, edits), sizes);
      } catch (err) {
        expectTyped(err, [TarFormatError, TarPathError, LayerDecompressError], describe({ sample, edits }));
      }
    }, { runs: RUNS, seed: 0x7a2, describe });
    expect(stats.cases).toBe(RUNS);
  }, timeoutFor(RUNS, 2));
});
