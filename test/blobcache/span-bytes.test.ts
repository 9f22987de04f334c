// Kept spans of a SOCI-indexed layer (the soci-made vector of test/fixtures/soci): a request for
// spans some of which were fetched before reads only the others, and the bytes are the layer's;
// a span whose bytes do not match its digest is not kept.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SpanBytes } from '../../src/blobcache/span-bytes.js';
import { ztocLayerModel } from '../../src/convert/ztoc-ref.js';
import { checkpointStart, spanEnd } from '../../src/rafs/checkpoints.js';

const dir = join(import.meta.dirname, '..', 'fixtures', 'soci');
const layer = readFileSync(join(dir, 'layer.tar.gz'));
const blob = ztocLayerModel({
  ztoc: readFileSync(join(dir, 'layer.ztoc')), layerDigest: `sha256:${createHash('sha256').update(layer).digest('hex')}`, layerSize: layer.length, chunkSize: 64 << 10,
}).model.blobs[0]!;
const cps = blob.checkpoints!;
const start = (k: number): number => checkpointStart(cps[k]!);
const end = (k: number): number => spanEnd(cps, k, layer.length);

/** A reader of `bytes` that records what it was asked for. */
function reader(bytes: Buffer) {
  const asked: [number, number][] = [];
  return { asked, read: async (offset: number, length: number) => (asked.push([offset, length]), Buffer.from(bytes.subarray(offset, offset + length))) };
}

describe('SpanBytes', () => {
  it('reads only the spans it does not hold, and returns the layer\'s bytes', async () => {
    const spans = new SpanBytes();
    const r = reader(layer);
    expect((await spans.read(blob, start(2), end(2) - start(2), r.read)).fetched).toBe(end(2) - start(2));
    // span 2 then 3 (a chunk running into the next span): only 3 is read
    const two = await spans.read(blob, start(2), end(3) - start(2), r.read);
    expect(two.bytes.equals(layer.subarray(start(2), end(3)))).toBe(true);
    expect(two.fetched).toBe(end(3) - start(3));
    // 1 to 4: only 1 and 4; 2 and 3 kept, in between
    const four = await spans.read(blob, start(1), end(4) - start(1), r.read);
    expect(four.bytes.equals(layer.subarray(start(1), end(4)))).toBe(true);
    expect(r.asked).toEqual([[start(2), end(2) - start(2)], [start(3), end(3) - start(3)], [start(1), end(4) - start(1)]]);
    // all held now: nothing read
    expect((await spans.read(blob, start(1), end(4) - start(1), r.read)).fetched).toBe(0);
  });

  it('keeps no span whose bytes do not match its digest', async () => {
    const bad = Buffer.from(layer);
    bad[start(3) + 100] ^= 0xff;
    const spans = new SpanBytes();
    await spans.read(blob, start(3), end(3) - start(3), reader(bad).read);
    const r = reader(layer);
    const again = await spans.read(blob, start(3), end(3) - start(3), r.read);
    expect(again.fetched).toBe(end(3) - start(3));
    expect(again.bytes.equals(layer.subarray(start(3), end(3)))).toBe(true);
  });

  it('reads a range that is not whole spans as it is', async () => {
    const spans = new SpanBytes();
    const r = reader(layer);
    const got = await spans.read(blob, start(2) + 1, 1000, r.read);
    expect(got.bytes.equals(layer.subarray(start(2) + 1, start(2) + 1001))).toBe(true);
    expect(r.asked).toEqual([[start(2) + 1, 1000]]);
  });
});
