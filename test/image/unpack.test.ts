// `unpack` of bootstraps holding values at the edges of their fields.
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { unpackToTar } from '../../src/image/unpack.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { parseAll } from '../convert/tar/helpers.js';
import { fileWithMtime } from '../rafs/helpers.js';

async function unpack(bootstrap: Buffer): Promise<Buffer> {
  const out = new PassThrough();
  const parts: Buffer[] = [];
  out.on('data', (b: Buffer) => parts.push(b));
  await unpackToTar({ rafs: RafsImage.open(bootstrap), close: async () => {} }, out);
  return Buffer.concat(parts);
}

describe('unpack', () => {
  it('regression: writes files whose stored mtime is anywhere in the u64 range', async () => {
    for (const [seconds, mtime] of [[2n ** 53n + 1n, 8.64e12], [2n ** 64n - 1n, -1], [2n ** 63n, -8.64e12]] as const) {
      const entries = await parseAll(await unpack(fileWithMtime(seconds)));
      expect(entries.map((e) => [e.path, e.mtime])).toEqual([['./', 0], ['./f', mtime]]);
    }
  });
});
