import { describe, expect, it } from 'vitest';
import { rehearseStargzChain } from '../../src/image/stargz-rehearsal.js';
import type { RafsImage } from '../../src/rafs/reader.js';

const walkTo = (image: RafsImage, path: string): number | undefined =>
  path.split('/').reduce<number | undefined>((nid, name) => (nid === undefined ? undefined : image.lookup(nid, name)), image.root);

describe('rehearseStargzChain', () => {
  it('runs the whole chain path over its made-up layers: both merged, small files, links and the chunked file', async () => {
    const image = await rehearseStargzChain();
    for (const layer of [0, 1]) {
      expect(walkTo(image, `usr/lib/l${layer}d59/f8.so`)).toBeDefined();
      expect(image.readlink(walkTo(image, `usr/lib/l${layer}d0/link9`)!)).toBe('f8.so');
      const big = image.inode(walkTo(image, `usr/bin/big${layer}`)!);
      expect(big.size).toBe(5 * (4 << 20) + 12345);
    }
  });
});
