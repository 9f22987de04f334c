// The hot region's pages reach the page cache of the files the kernel knows: pushed as a chunk
// arrives for a known file, held and pushed when the kernel learns of a file later, each at the
// file's own offsets, and nothing for chunks outside the region or bytes of the wrong size.
import { describe, expect, it } from 'vitest';
import { HotPages } from '../../src/daemon/hot-pages.js';
import { RafsImage } from '../../src/rafs/reader.js';
import type { ChunkRef } from '../../src/rafs/tree.js';
import { inodeAt, manyChunksBootstrap } from '../rafs/helpers.js';

const CHUNK = 0x1000;

/** /data/f0..f2, four 4 KiB chunks each (ciIndex 4·f + i); f1 and f2 on the prefetch list. */
function setUp() {
  const image = RafsImage.open(manyChunksBootstrap(3, 4, ['/data/f1', '/data/f2']));
  const nid = (f: number) => inodeAt(image, `/data/f${f}`).nid;
  const ref = (f: number, i: number): ChunkRef => image.chunks(nid(f))[i]!;
  const stores: [number, number, number][] = [];
  const bytes = (r: ChunkRef) => Buffer.alloc(r.uncompressedSize, r.ciIndex);
  return { image, nid, ref, stores, bytes, store: (nodeid: number, offset: number, data: Buffer) => stores.push([nodeid, offset, data[0]!]) };
}

describe('HotPages', () => {
  it('reports the listed files that hold hot chunks', () => {
    const { image, nid, ref, store } = setUp();
    const pages = new HotPages(image, [ref(1, 0), ref(0, 1)], store);
    // f0 is not listed, f2 holds no hot chunk
    expect(pages.files()).toEqual([nid(1)]);
  });

  it('pushes a chunk to a known file as it arrives, at that file\'s offset', () => {
    const { image, nid, ref, stores, bytes, store } = setUp();
    const hot = [ref(1, 2), ref(2, 0)];
    const pages = new HotPages(image, hot, store);
    pages.entered(nid(1), 100);
    pages.arrived(ref(1, 2), bytes(ref(1, 2)));
    expect(stores).toEqual([[100, 2 * CHUNK, ref(1, 2).ciIndex]]);
  });

  it('holds chunks of files the kernel does not know yet and pushes them when it learns of one', () => {
    const { image, nid, ref, stores, bytes, store } = setUp();
    const hot = [ref(1, 0), ref(1, 3), ref(2, 1)];
    const pages = new HotPages(image, hot, store);
    for (const r of hot) pages.arrived(r, bytes(r));
    expect(stores).toEqual([]);
    pages.entered(nid(2), 7);
    expect(stores).toEqual([[7, CHUNK, ref(2, 1).ciIndex]]);
    pages.entered(nid(1), 9);
    expect(stores.slice(1)).toEqual([[9, 0, ref(1, 0).ciIndex], [9, 3 * CHUNK, ref(1, 3).ciIndex]]);
    // the same node again (another worker's entry): nothing twice
    pages.entered(nid(1), 9);
    expect(stores).toHaveLength(3);
  });

  it('pushes nothing for chunks outside the region, files off the list, or bytes of the wrong size', () => {
    const { image, nid, ref, stores, bytes, store } = setUp();
    const pages = new HotPages(image, [ref(1, 1)], store);
    pages.entered(nid(0), 5);
    pages.entered(nid(1), 6);
    pages.arrived(ref(1, 0), bytes(ref(1, 0)));
    pages.arrived(ref(0, 1), bytes(ref(0, 1)));
    pages.arrived(ref(1, 1), Buffer.alloc(CHUNK - 1));
    expect(stores).toEqual([]);
    pages.arrived(ref(1, 1), bytes(ref(1, 1)));
    expect(stores).toEqual([[6, CHUNK, ref(1, 1).ciIndex]]);
  });

  it('lets go of held chunks once the start is over', () => {
    const { image, nid, ref, stores, bytes, store } = setUp();
    const pages = new HotPages(image, [ref(2, 2)], store);
    pages.arrived(ref(2, 2), bytes(ref(2, 2)));
    pages.drop();
    pages.entered(nid(2), 3);
    expect(stores).toEqual([]);
  });
});
