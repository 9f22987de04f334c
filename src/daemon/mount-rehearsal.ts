// A spare daemon waits with its code loaded but cold, and the first image it mounts is one a
// container start waits for: a snapshotter assigns it as an eStargz image is pulled, and the
// container's mount waits for it once the chain's bootstrap is built. The mount's longest step
// then is a loop over the image's chunk table (blobChunkTables: 51–61 ms for debian-ml's eStargz
// chain on 2 busy cores), interpreted until it has run often enough to be compiled. So while it
// waits (at a low priority), a spare runs that loop a few times over a made-up chain.
import { blobChunkTables } from '../blobcache/fetcher.js';
import { rehearseStargzChain } from '../image/stargz-rehearsal.js';

/** Enough for V8 to have compiled the table's loops; each is a few milliseconds once warm. */
const ROUNDS = 6;

/** Builds a made-up chain once and reads its chunk tables ROUNDS times; the chunks of the last. */
export async function rehearseMount(): Promise<number> {
  const image = await rehearseStargzChain(1);
  let chunks = 0;
  for (let round = 0; round < ROUNDS; round++) {
    chunks = 0;
    for (const table of (await blobChunkTables(image)).values()) chunks += table.length;
  }
  return chunks;
}
