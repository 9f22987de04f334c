// The prefetcher with stand-in hooks: list order first, cached chunks skipped, on-demand reads go
// first, the bandwidth limit holds, and failures are counted, not fatal.
import { describe, expect, it } from 'vitest';
import { Prefetcher, type PrefetchHooks, prefetchListChunks } from '../../src/daemon/prefetch.js';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import type { ChunkRef } from '../../src/rafs/tree.js';
import { turnsDuring } from '../helpers/event-loop.js';
import { waitFor } from '../helpers/wait-for.js';
import { manyChunksBootstrap, sharedDirentBlocksBootstrap } from '../rafs/helpers.js';

const chunk = (ciIndex: number, compressedSize = 1000): ChunkRef => ({
  blobIndex: 0, ciIndex, compressedOffset: ciIndex * compressedSize, compressedSize, uncompressedOffset: ciIndex * 4096, uncompressedSize: 4096,
  compressed: true, digest: Buffer.alloc(32), fileOffset: 0,
} as unknown as ChunkRef);

/** Stand-in hooks recording the chunks fetched and how often prefetch asked for the on-demand load. */
function hooks(opts: { cached?: Set<number>; fail?: Set<number>; demand?: () => number } = {}): PrefetchHooks & { fetched: number[]; demandChecks: number } {
  const fetched: number[] = [];
  const demand = opts.demand ?? (() => 0);
  const h = {
    fetched,
    demandChecks: 0,
    isCached: async (ref: ChunkRef) => opts.cached?.has(ref.ciIndex) ?? false,
    fetch: async (ref: ChunkRef) => {
      await new Promise((r) => setImmediate(r));
      if (opts.fail?.has(ref.ciIndex)) throw new Error('backend down');
      fetched.push(ref.ciIndex);
    },
    demand: () => {
      h.demandChecks++;
      return demand();
    },
  };
  return h;
}

const finished = (p: Prefetcher): Promise<void> => waitFor(() => p.stats.state !== 'running', 'prefetch to finish');

describe('Prefetcher', () => {
  it('fetches the list first, then the rest, each chunk once, skipping what is cached', async () => {
    const h = hooks({ cached: new Set([3]) });
    const p = new Prefetcher(h);
    p.start([chunk(5), chunk(3), chunk(1)], [chunk(0), chunk(1), chunk(2), chunk(3)]);
    await finished(p);
    expect(h.fetched).toEqual([5, 1, 0, 2]);
    expect(p.stats).toMatchObject({ state: 'done', chunks: 4, bytes: 4000, failedChunks: 0, listed: 3 });
  });

  it('waits while on-demand reads are waiting for the backend', async () => {
    let demand = 1;
    const h = hooks({ demand: () => demand });
    const p = new Prefetcher(h);
    p.start([chunk(0), chunk(1)]);
    // each check is prefetch at the point of its first batch, deciding to wait instead
    await waitFor(() => h.demandChecks >= 3, 'prefetch to check the on-demand load three times');
    expect(h.fetched).toEqual([]);
    demand = 0;
    await finished(p);
    expect(h.fetched).toEqual([0, 1]);
  });

  it('keeps to its bandwidth limit', async () => {
    const h = hooks();
    // 3 batches of 2 MiB at 20 MiB/s: at least 0.2 s once the first is through
    const big = (i: number) => chunk(i, 2 << 20);
    const p = new Prefetcher(h, { bandwidth: 20 << 20 });
    const started = performance.now();
    p.start([big(0), big(1), big(2)]);
    await finished(p);
    expect(h.fetched).toEqual([0, 1, 2]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('runs several streams at once, each batch a run of neighbours, in list order', async () => {
    const inFlight: number[][] = [];
    let open: number[] = [];
    const h = hooks();
    const fetch = h.fetch;
    h.fetch = async (ref) => {
      open.push(ref.ciIndex);
      inFlight.push([...open]);
      await fetch(ref);
      open = open.filter((c) => c !== ref.ciIndex);
    };
    // 1000-byte chunks, 2000-byte batches: [0,1] [2,3] [4,5] over two streams
    const p = new Prefetcher(h, { streams: 2, batchBytes: 2000 });
    p.start([0, 1, 2, 3, 4, 5].map((i) => chunk(i)));
    await finished(p);
    expect(h.fetched.sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(Math.max(...inFlight.map((x) => x.length))).toBe(4);
    expect(inFlight[3]).toEqual([0, 1, 2, 3]);
  });

  it('does not wait for on-demand reads when told not to yield', async () => {
    const h = hooks({ demand: () => 1 });
    const p = new Prefetcher(h, { yieldToDemand: false });
    p.start([chunk(0), chunk(1)]);
    await finished(p);
    expect(h.fetched).toEqual([0, 1]);
    expect(h.demandChecks).toBe(0);
  });

  it('counts chunks it could not fetch and goes on', async () => {
    const h = hooks({ fail: new Set([1]) });
    const p = new Prefetcher(h);
    p.start([chunk(0), chunk(1), chunk(2)]);
    await finished(p);
    expect(h.fetched).toEqual([0, 2]);
    expect(p.stats).toMatchObject({ state: 'done', chunks: 2, failedChunks: 1 });
  });

  it('stops when asked', async () => {
    const h = hooks({ demand: () => 1 });
    const p = new Prefetcher(h);
    p.start([chunk(0)]);
    await waitFor(() => h.demandChecks > 0, 'prefetch to reach its first batch');
    await p.stop();
    expect(p.stats.state).toBe('stopped');
    expect(h.fetched).toEqual([]);
  });
});

describe('prefetchListChunks', () => {
  it('regression: lets the event loop run while it resolves the list of a big image', async () => {
    const image = RafsImage.open(manyChunksBootstrap(100, 1000, ['/data/f7', '/data']));
    const { result, turns } = await turnsDuring(() => prefetchListChunks(image));
    expect(result).toHaveLength(100_000);
    // the listed file first, then the rest of the listed directory
    expect(result.slice(0, 2).map((c) => c.ciIndex)).toEqual([7000, 7001]);
    expect(turns).toBeGreaterThan(1);
  });

  it('regression: fails on directories sharing dirent blocks instead of walking them for minutes', async () => {
    const image = RafsImage.open(sharedDirentBlocksBootstrap(1000, 20_000, ['/big']));
    await expect(prefetchListChunks(image)).rejects.toThrow(RafsFormatError);
  });
});
