// A spare daemon waits with its code loaded but cold, and the first image it mounts is one a
// container start waits for: a snapshotter assigns it as an image is pulled, and the container's
// mount waits for it. The mount's longest step then is a loop over the image's chunk table
// (blobChunkTables: 51–61 ms for debian-ml's eStargz chain, 33–50 ms for its optimized Nydus image,
// on 2 busy cores), interpreted until it has run often enough to be compiled. So while it waits (at
// a low priority), a spare runs that loop a few times over two made-up images: an eStargz chain
// (chunks that are gzip members) and a Nydus layer built by `create` (chunks of its own blob), whose
// chunk infos take different branches of the same code.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobChunkTables } from '../blobcache/fetcher.js';
import { createLayer } from '../convert/create.js';
import { tarBytes } from '../convert/tar/write.js';
import { rehearseStargzChain } from './stargz-rehearsal.js';
import { RafsImage } from '../rafs/reader.js';

/** Enough for V8 to have compiled the table's loops; each is a few milliseconds once warm. */
const ROUNDS = 6;
/** The made-up Nydus layer: this many small files, and one file of several chunks. */
const SMALL_FILES = 2000;
const CHUNK = 1 << 20;

/** Reads the chunk tables of both made-up images ROUNDS times; the chunks of each image in the last round. */
export async function rehearseMount(): Promise<{ stargz: number; nydus: number }> {
  const images = { stargz: await rehearseStargzChain(1), nydus: await madeUpNydusLayer() };
  const chunks = { stargz: 0, nydus: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of ['stargz', 'nydus'] as const) {
      chunks[kind] = 0;
      for (const table of (await blobChunkTables(images[kind])).values()) chunks[kind] += table.length;
    }
  }
  return chunks;
}

/** A Nydus layer of small files and one file of 3.5 chunks, built by `create` in a directory removed after. */
async function madeUpNydusLayer(): Promise<RafsImage> {
  const dir = await mkdtemp(join(tmpdir(), 'nydusify-rehearsal-'));
  try {
    const bootstrapPath = join(dir, 'bootstrap');
    const tar = await madeUpTar();
    await createLayer({ source: (async function* () { yield tar; })(), bootstrapPath, blobDir: join(dir, 'blobs'), compressor: 'zstd', digester: 'blake3', chunkSize: CHUNK });
    return RafsImage.open(await readFile(bootstrapPath));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A tar of SMALL_FILES files of distinct contents in 20 directories, and one of several chunks. */
function madeUpTar(): Promise<Buffer> {
  return tarBytes(async (tar) => {
    for (let f = 0; f < SMALL_FILES; f++) {
      const data = Buffer.from(`${f} `.repeat(40 + (f % 200)));
      await tar.file({ path: `usr/lib/d${f % 20}/f${f}`, size: data.length, mtime: 1_700_000_000 }, data);
    }
    // 16 bytes repeated: its three whole chunks are alike (one chunk, deduplicated), then half of one
    const big = Buffer.alloc(3 * CHUNK + CHUNK / 2, 'rehearsal chunk ');
    await tar.file({ path: 'usr/bin/big', size: big.length, mtime: 1_700_000_000 }, big);
  });
}
