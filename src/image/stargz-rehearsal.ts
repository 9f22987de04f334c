// A process starts with its code cold: V8 interprets a function until it has run often enough to be
// compiled. The first eStargz pull after a snapshotter starts — on a fresh node, the start that
// matters most — then spends most of its time interpreting the TOC parser, the layer model and the
// bootstrap writer: on debian-ml's 6,671-entry base layer, 295 ms cold against 36 ms warm, while
// containerd waits on the pull. So right after start, while nothing waits, the chain path runs over
// a made-up image of that size, a few times over: its layers' TOC members and footers (made here,
// nothing fetched) read, verified, parsed, made layer models, merged, written and opened.
//
// The made-up TOCs have the shapes real ones have, entry for entry as an eStargz writer emits them
// (zero values left out, a landmark, `.` for the root, devices, hard links, empty files, chunked
// files whose last chunk has no size, xattrs, whiteouts), and are read through the same calls as a
// pull's. Code V8 compiled for other shapes is thrown away at the first real entry that differs,
// and is interpreted again until it is compiled again: a rehearsal of tidier entries (uid, gid and
// owner names on every file; no devices, links or landmark) left 15 such deoptimizations in the
// first real pull after it.
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { tarBytes } from '../convert/tar/write.js';
import { RafsImage } from '../rafs/reader.js';
import type { Descriptor } from '../registry/media-types.js';
import { TOC_DIGEST_ANNOTATION } from '../registry/stargz-layers.js';
import { estargzFooter } from '../stargz/footer.js';
import { TOC_TAR_NAME } from '../stargz/toc-bytes.js';
import { buildStargzChain, rangeModelReader } from './stargz-image.js';

/** Enough rounds for V8 to have optimized what a real TOC runs (3 left its first parse of debian-ml's base layer at 95 ms against 55 ms warm; 8: 69 ms). */
const ROUNDS = 8;
const DIRS = 60;
const FILES_PER_DIR = 40;
/** Entries of the one directory that spans several blocks (as /usr/bin and /usr/lib do). */
const WIDE_DIR = 300;
const CHUNK = 4 << 20;
const LAYER_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

const hex = (n: number): string => n.toString(16).padStart(64, '0');
const yieldTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** One made-up layer: its descriptor and its tail (TOC member and footer); what lies before is never read. */
interface MadeUpLayer {
  descriptor: Descriptor;
  tail: Buffer;
  tailStart: number;
}

/** A layer's TOC entries as an eStargz writer emits them (see the header), over a tree of directories of small files; `dataEnd`: where its TOC member starts. */
function madeUpEntries(layer: number): { entries: Record<string, unknown>[]; dataEnd: number } {
  let offset = 85;
  /** Where the next piece's member starts, past this one's (a third of its size: compressed). */
  const piece = (size: number): number => {
    const at = offset;
    offset += 64 + Math.ceil(size / 3);
    return at;
  };
  const digest = (n: number): string => `sha256:${hex(layer * 1e7 + n)}`;
  const modtime = (n: number): string => `2026-0${1 + (n % 9)}-1${n % 10}T0${n % 10}:1${n % 6}:2${n % 10}Z`;
  // each layer's files are its own (whiteouts aside), so the merged tree holds chunks of every layer,
  // some rebased to the merged blob table and some not, as a real chain's does
  const entries: Record<string, unknown>[] = [
    { name: '.no.prefetch.landmark', type: 'reg', size: 1, offset: piece(1), digest: digest(0), chunkDigest: digest(0) },
    { name: '.', type: 'dir', modtime: modtime(0), mode: 493 },
    { name: 'bin', type: 'symlink', modtime: modtime(1), linkName: 'usr/bin', mode: 511 },
    { name: 'dev/', type: 'dir', modtime: modtime(2), mode: 493 },
    { name: `dev/null${layer}`, type: 'char', modtime: modtime(3), mode: 438, devMajor: 1, devMinor: 3 },
    { name: `dev/tty${layer}`, type: 'char', modtime: modtime(4), mode: 400, devMajor: 4 },
    { name: `dev/initctl${layer}`, type: 'fifo', modtime: modtime(5), mode: 384 },
    { name: 'etc/', type: 'dir', modtime: modtime(6), mode: 493, gid: 42 },
    { name: `etc/shadow${layer}`, type: 'reg', size: 501, modtime: modtime(7), mode: 416, gid: 42, offset: piece(501), digest: digest(1), chunkDigest: digest(1) },
    { name: `etc/xattr${layer}`, type: 'reg', size: 20, modtime: modtime(8), mode: 420, uid: 1000, gid: 1000, offset: piece(20), xattrs: { 'user.rehearsal': 'dmFsdWU=' }, digest: digest(2), chunkDigest: digest(2) },
    { name: `etc/empty${layer}`, type: 'reg', modtime: modtime(9), mode: 420, digest: 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
    { name: `etc/empty${layer}.lock`, type: 'hardlink', modtime: modtime(9), linkName: `etc/empty${layer}`, mode: 420 },
    // a whiteout and an opaque directory: what an upper layer's merge acts on
    { name: `usr/lib/.wh.gone${layer}`, type: 'reg', modtime: modtime(1), mode: 420, digest: 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
    { name: 'opt/', type: 'dir', modtime: modtime(2), mode: 493 },
    { name: 'opt/.wh..wh..opq', type: 'reg', modtime: modtime(2), mode: 420, digest: 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
  ];
  for (let d = 0; d < DIRS; d++) {
    const dir = `usr/lib/l${layer}d${d}/`;
    entries.push({ name: dir, type: 'dir', modtime: modtime(d), mode: 493 });
    for (let f = 0; f < FILES_PER_DIR; f++) {
      const name = `${dir}f${f}.so`;
      if (f % 10 === 9) {
        entries.push({ name: `${dir}link${f}`, type: 'symlink', modtime: modtime(f), linkName: `f${f - 1}.so`, mode: 511 });
        continue;
      }
      const size = 1000 + f * 97;
      const n = 100 + d * 100 + f;
      entries.push({ name, type: 'reg', size, modtime: modtime(f), mode: f % 3 === 0 ? 493 : 420, offset: piece(size), digest: digest(n), chunkDigest: digest(n) });
    }
  }
  // a directory of many entries (its dirents span several blocks), one of them a UTF-8 name
  entries.push({ name: `usr/share/l${layer}/`, type: 'dir', modtime: modtime(4), mode: 493 });
  for (let f = 0; f < WIDE_DIR; f++) {
    entries.push({ name: `usr/share/l${layer}/${f === 0 ? 'caf\u00e9' : `entry-with-a-longer-name-${f}`}`, type: 'symlink', modtime: modtime(f), linkName: '../lib', mode: 511 });
  }
  // a file of several chunks: the first entry has the chunk's size, the last chunk has none
  const big = 5 * CHUNK + 12345;
  const name = `usr/bin/big${layer}`;
  entries.push({ name, type: 'reg', size: big, modtime: modtime(3), mode: 493, offset: piece(CHUNK), digest: digest(7), chunkSize: CHUNK, chunkDigest: digest(8) });
  for (let at = CHUNK; at < big; at += CHUNK) {
    const size = Math.min(CHUNK, big - at);
    entries.push({ name, type: 'chunk', offset: piece(size), chunkOffset: at, ...(size === CHUNK ? { chunkSize: size } : {}), chunkDigest: digest(at) });
  }
  return { entries, dataEnd: offset };
}

/** A made-up eStargz layer: its TOC JSON as the writer indents it, in a gzip member after the data, then the footer. */
async function madeUpLayer(layer: number): Promise<MadeUpLayer> {
  const { entries, dataEnd } = madeUpEntries(layer);
  const json = Buffer.from(JSON.stringify({ version: 1, entries }, null, '\t'));
  const member = gzipSync(await tarBytes((tar) => tar.file({ path: TOC_TAR_NAME, size: json.length }, json)));
  const tail = Buffer.concat([member, estargzFooter(dataEnd)]);
  const size = dataEnd + tail.length;
  const digest = `sha256:${hex(0xfeed00 + layer)}`;
  const tocDigest = `sha256:${createHash('sha256').update(json).digest('hex')}`;
  return { descriptor: { mediaType: LAYER_MEDIA_TYPE, digest, size, annotations: { [TOC_DIGEST_ANNOTATION]: tocDigest } }, tail, tailStart: dataEnd };
}

/** Runs the eStargz chain path over a made-up three-layer image `rounds` times (see the header); the merged image of the last. */
export async function rehearseStargzChain(rounds = ROUNDS): Promise<RafsImage> {
  const layers = await Promise.all([0, 1, 2].map(madeUpLayer));
  const read = async (digest: string, offset: number, length: number): Promise<Buffer> => {
    const layer = layers.find((l) => l.descriptor.digest === digest);
    if (!layer || offset < layer.tailStart || offset + length > layer.descriptor.size) throw new Error(`rehearsal: no bytes at [${offset}, ${offset + length}) of ${digest}`);
    return layer.tail.subarray(offset - layer.tailStart, offset - layer.tailStart + length);
  };
  const readModel = rangeModelReader('rehearsal', read, yieldTurn);
  let image!: RafsImage;
  for (let round = 0; round < rounds; round++) {
    const bootstrap = await buildStargzChain(layers.map((l) => l.descriptor), readModel);
    await yieldTurn();
    image = RafsImage.open(bootstrap);
    await yieldTurn();
  }
  return image;
}
