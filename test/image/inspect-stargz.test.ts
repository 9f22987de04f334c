import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectStargzLayer, stargzSummaryLines } from '../../src/image/inspect-stargz.js';
import { StargzFormatError } from '../../src/stargz/errors.js';
import { synthEstargz } from '../stargz/helpers.js';

const fixtures = '/work/shared/fixtures/stargz';
const work = mkdtempSync(join(tmpdir(), 'nydusify-inspect-stargz-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('inspectStargzLayer', () => {
  it('summarizes an eStargz layer built by the reference writer (fixture values from its README)', async () => {
    const s = (await inspectStargzLayer(join(fixtures, 'estargz-prio-bigbin.esgz')))!;
    expect(s).toMatchObject({
      kind: 'estargz', blobSize: 1743, footerSize: 51, tocSize: 1743 - 51 - s.tocOffset,
      tocDigest: 'sha256:e97035387a9904ac3e4db0c33d31a24e8b2156583e8982ac626503403c749dc5',
      landmark: 'prefetch', prefetch: ['/a/big.bin'],
    });
    // a/big.bin is 2500 bytes in 1000-byte pieces: no RAFS chunk grid fits them
    expect(s.chunkSize).toEqual({ error: expect.stringMatching(/chunk/) });
    expect(s.counts).toMatchObject({ chunk: 2, hardlink: 1, symlink: 1, char: 1, fifo: 1 });
    const noPrio = (await inspectStargzLayer(join(fixtures, 'estargz-noprio.esgz')))!;
    expect(noPrio).toMatchObject({ tocOffset: 823, landmark: 'no-prefetch', prefetch: [] });
    expect(stargzSummaryLines(noPrio)[0]).toBe('estargz layer, 1750 bytes, footer 51 bytes');
  });

  it('reads the legacy stargz and zstd:chunked footers', async () => {
    expect(await inspectStargzLayer(join(fixtures, 'stargz-legacy-footer-synthetic.stargz'))).toMatchObject({ kind: 'stargz', footerSize: 47, tocOffset: 823 });
    const zstd = (await inspectStargzLayer(join(fixtures, 'zstdchunked-skopeo-1.9.3.tar.zst')))!;
    expect(zstd).toMatchObject({ kind: 'zstd:chunked', tocOffset: 630, tocSize: 509, chunkSize: 4096, landmark: 'none' });
    expect(zstd.storedTocDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('gives the chunk size a layer fits', async () => {
    const { blob } = synthEstargz([{ name: 'f', content: Buffer.alloc(20_000, 1) }], { chunkSize: 8192 });
    writeFileSync(join(work, 'synth.esgz'), blob);
    const s = (await inspectStargzLayer(join(work, 'synth.esgz')))!;
    expect(s).toMatchObject({ chunkSize: 8192, counts: { reg: 1, chunk: 2, pieces: 3 } });
    expect(stargzSummaryLines(s)).toContain('chunk size 0x2000');
  });

  it('is undefined for a file with no stargz footer (a bootstrap, a plain tar), and throws for a broken TOC', async () => {
    expect(await inspectStargzLayer(join(fixtures, 'source.tar'))).toBeUndefined();
    const broken = readFileSync(join(fixtures, 'estargz-noprio.esgz'));
    broken[900]! ^= 0xff; // inside the TOC member
    writeFileSync(join(work, 'broken.esgz'), broken);
    await expect(inspectStargzLayer(join(work, 'broken.esgz'))).rejects.toBeInstanceOf(StargzFormatError);
  });
});
