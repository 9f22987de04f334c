// Issue #11, item 3: directory inodes pointing at the same dirent blocks made a walk of a bootstrap
// of half a megabyte visit twenty million paths (inspect > 30 s, toBootstrap out of memory). A walk
// now claims every inode's bytes when it first meets it and refuses what another inode owns.
import { describe, expect, it } from 'vitest';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { newDir } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import { inodeAt, sampleImage, SAMPLE_CHUNK_SIZE, sharedDirentBlocksBootstrap } from './helpers.js';

const DIRS = 1000;
const ENTRIES = 20_000;

describe('directories sharing dirent blocks', () => {
  const hostile = sharedDirentBlocksBootstrap(DIRS, ENTRIES);

  it('regression: a walk refuses directories sharing dirent blocks after one pass over the dirents', () => {
    const image = RafsImage.open(hostile);
    let entries = 0;
    expect(() => {
      for (const _ of image.walk()) entries++;
    }).toThrow(RafsFormatError);
    // every dirent of the image at most once: the root's, then the shared ones
    expect(entries).toBeLessThanOrEqual(1 + DIRS + 1 + ENTRIES);
  });

  it('regression: toBootstrap refuses directories sharing dirent blocks', () => {
    expect(() => RafsImage.open(hostile).toBootstrap()).toThrow(/overlap another inode/);
  });

  it('still walks hard links to regular files, saying which paths met their inode before', () => {
    const image = RafsImage.open(writeBootstrap(sampleImage().bootstrap));
    const links = [...image.walk()].filter((e) => e.path === '/hardlink-a' || e.path === '/sub/hardlink-b');
    expect(links.map((e) => [e.nid, e.seen])).toEqual([[links[0]!.nid, false], [links[0]!.nid, true]]);
  });

  it('refuses a directory reachable twice, or from below itself', () => {
    const root = newDir('');
    for (const name of ['a', 'b']) root.children!.set(name, newDir(name));
    const buf = writeBootstrap({ root, blobs: [], chunkSize: SAMPLE_CHUNK_SIZE, compressor: 'none', digester: 'blake3', prefetch: [] });
    const image = RafsImage.open(buf);
    // the root's dirents are inline, right after its 64-byte inode: `b` is the last one
    const b = [...image.readdir(image.root)].find((e) => e.name === 'b')!;
    const at = inodeAt(image, '/').offset + 64 + b.offset;
    for (const [target, message] of [[inodeAt(image, '/a').nid, /reachable twice/], [image.root, /reachable twice/]] as const) {
      const linked = Buffer.from(buf);
      linked.writeBigUInt64LE(BigInt(target), at);
      expect(() => [...RafsImage.open(linked).walk()]).toThrow(message);
    }
  });
});
