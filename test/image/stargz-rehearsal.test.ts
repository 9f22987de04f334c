import { describe, expect, it } from 'vitest';
import { rehearseStargzChain } from '../../src/image/stargz-rehearsal.js';
import type { RafsImage } from '../../src/rafs/reader.js';
import { S_IFCHR, S_IFIFO, S_IFMT } from '../../src/rafs/tree.js';

const walkTo = (image: RafsImage, path: string): number | undefined =>
  path.split('/').reduce<number | undefined>((nid, name) => (nid === undefined ? undefined : image.lookup(nid, name)), image.root);

describe('rehearseStargzChain', () => {
  it('runs the whole chain path over its made-up layers: all three merged, small files, links and the chunked file', async () => {
    const image = await rehearseStargzChain();
    for (const layer of [0, 1, 2]) {
      expect(walkTo(image, `usr/lib/l${layer}d59/f8.so`)).toBeDefined();
      expect(image.readlink(walkTo(image, `usr/lib/l${layer}d0/link9`)!)).toBe('f8.so');
      const big = image.inode(walkTo(image, `usr/bin/big${layer}`)!);
      expect(big.size).toBe(5 * (4 << 20) + 12345);
    }
  });

  it('has the entry shapes of a real eStargz TOC: devices, a fifo, a hard link, xattrs, an empty file, a wide directory, a UTF-8 name', async () => {
    const image = await rehearseStargzChain();
    const inode = (path: string) => image.inode(walkTo(image, path)!);
    expect(inode('dev/null0').mode & S_IFMT).toBe(S_IFCHR);
    expect(inode('dev/initctl0').mode & S_IFMT).toBe(S_IFIFO);
    expect(walkTo(image, 'etc/empty0.lock')).toBe(walkTo(image, 'etc/empty0'));
    expect(inode('etc/empty0').size).toBe(0);
    expect(image.xattrs(walkTo(image, 'etc/xattr0')!).get('user.rehearsal')?.toString()).toBe('value');
    expect([...image.readdir(walkTo(image, 'usr/share/l0')!)].length).toBeGreaterThan(300);
    expect(walkTo(image, Buffer.from('usr/share/l0/caf\u00e9').toString('latin1'))).toBeDefined();
    // whiteouts never reach the merged tree
    expect(walkTo(image, 'opt/.wh..wh..opq')).toBeUndefined();
  });
});
