// A process starts with its code cold: V8 interprets a function until it has run often enough to be
// compiled. The first eStargz pull after a snapshotter starts — on a fresh node, the start that
// matters most — then spends most of its time interpreting the TOC parser, the layer model and the
// bootstrap writer: on debian-ml's 6,671-entry base layer, 295 ms cold against 36 ms warm, while
// containerd waits on the pull. So right after start, while nothing waits, the chain path runs over
// a made-up image of that size: two layers' TOCs (JSON made here, nothing fetched), parsed, made
// layer models, merged, written and opened, a few times over, yielding between steps.
import { mergeLayers } from '../convert/merge.js';
import { RafsImage } from '../rafs/reader.js';
import { writeBootstrap } from '../rafs/writer.js';
import { stargzBootstrap } from '../stargz/bootstrap.js';
import { stargzTocFromJson } from '../stargz/toc.js';

/** Enough rounds for V8 to have optimized what a real TOC runs (3 left its first parse of debian-ml's base layer at 95 ms against 55 ms warm; 8: 69 ms). */
const ROUNDS = 8;
const DIRS = 60;
const FILES_PER_DIR = 40;
const CHUNK = 4 << 20;

const hex = (n: number): string => n.toString(16).padStart(64, '0');
const yieldTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A layer's TOC JSON like an eStargz writer's: directories, small files, links, one large chunked file. */
function madeUpToc(layer: number): { json: Buffer; blobSize: number } {
  const entries: Record<string, unknown>[] = [];
  let offset = 85;
  const piece = (size: number): number => {
    const at = offset;
    offset += 64 + Math.ceil(size / 3);
    return at;
  };
  const modtime = '2026-01-02T03:04:05Z';
  for (let d = 0; d < DIRS; d++) {
    const dir = `usr/lib/l${layer}d${d}/`;
    entries.push({ name: dir, type: 'dir', modtime, mode: 493 });
    for (let f = 0; f < FILES_PER_DIR; f++) {
      const name = `${dir}f${f}.so`;
      if (f % 10 === 9) {
        entries.push({ name: `${dir}link${f}`, type: 'symlink', linkName: `f${f - 1}.so`, modtime, mode: 511 });
        continue;
      }
      const size = 1000 + f * 97;
      const digest = `sha256:${hex(layer * 1e6 + d * 1000 + f)}`;
      entries.push({ name, type: 'reg', size, modtime, mode: 420, uid: 0, gid: 0, userName: 'root', groupName: 'root', offset: piece(size), digest, chunkDigest: digest });
    }
  }
  const big = 5 * CHUNK + 12345;
  entries.push({ name: `usr/bin/big${layer}`, type: 'reg', size: big, modtime, mode: 493, offset: piece(CHUNK), digest: `sha256:${hex(7)}`, chunkSize: CHUNK, chunkDigest: `sha256:${hex(8)}` });
  for (let at = CHUNK; at < big; at += CHUNK) {
    const size = Math.min(CHUNK, big - at);
    entries.push({ name: `usr/bin/big${layer}`, type: 'chunk', offset: piece(size), chunkOffset: at, chunkSize: size, chunkDigest: `sha256:${hex(at)}` });
  }
  return { json: Buffer.from(JSON.stringify({ version: 1, entries })), blobSize: offset + 4096 };
}

/** Runs the eStargz chain path over a made-up two-layer image a few times (see the header); the merged image of the last. */
export async function rehearseStargzChain(): Promise<RafsImage> {
  const tocs = [madeUpToc(0), madeUpToc(1)];
  let image!: RafsImage;
  for (let round = 0; round < ROUNDS; round++) {
    const models = [];
    for (const [i, { json, blobSize }] of tocs.entries()) {
      const toc = await stargzTocFromJson(json, { blobSize });
      await yieldTurn();
      models.push(stargzBootstrap(toc, { blobId: hex(i + 1), blobSize }));
      await yieldTurn();
    }
    const bootstrap = writeBootstrap(mergeLayers(models, { prefetch: [] }));
    await yieldTurn();
    image = RafsImage.open(bootstrap);
    await yieldTurn();
  }
  return image;
}
