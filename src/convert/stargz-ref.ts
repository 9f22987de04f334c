// A stargz-family layer file (eStargz, legacy stargz, zstd:chunked) as a RAFS layer that serves the
// layer as it is: its TOC, read from the file, becomes the bootstrap (src/stargz), and the layer file
// itself is the blob, named by its sha256 in the blob directory. Also nydus' `stargz_index` form:
// the TOC JSON alone, which gives the bootstrap of a layer kept elsewhere.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { writeBootstrap } from '../rafs/writer.js';
import { stargzBootstrap } from '../stargz/bootstrap.js';
import type { RangeReader } from '../stargz/range-reader.js';
import { readStargzToc, stargzTocFromJson, type StargzToc } from '../stargz/toc.js';
import { writeAtomically } from '../util/files.js';
import { log } from '../util/log.js';

export interface StargzRefOptions {
  /** The layer blob file. */
  layerPath: string;
  bootstrapPath: string;
  /** Where the layer goes, as `<sha256 hex>`. */
  blobDir: string;
  /** `sha256:…` the TOC JSON must have (e.g. the layer's `containerd.io/snapshot/stargz/toc.digest`). */
  tocDigest?: string;
  /** RAFS chunk size; default: the smallest the layer's pieces fit. */
  chunkSize?: number;
}

export interface StargzIndexOptions {
  /** The decompressed TOC JSON file. */
  tocPath: string;
  bootstrapPath: string;
  /** The layer's sha256, 64 hex. */
  blobId: string;
  blobSize: number;
  /** Where the layer's TOC member starts, if known (see TocJsonLayout). */
  tocOffset?: number;
  tocDigest?: string;
  chunkSize?: number;
}

export interface StargzRefResult {
  kind: StargzToc['footer']['kind'];
  blobId: string;
  /** Where the layer now is in the blob directory; undefined when no file has data (no blob). */
  blobPath?: string;
  blobSize: number;
  bootstrapSize: number;
  tocDigest: string;
  /** What the TOC was checked against; undefined when nothing was given. */
  verifiedBy?: string;
  chunkSize: number;
  stats: { entries: number; chunks: number };
}

/** `[offset, offset + length)` of the file at `path`, given to `use` as a RangeReader. */
export async function withLayerFile<T>(path: string, use: (read: RangeReader, size: number) => Promise<T>): Promise<T> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    const read: RangeReader = async (offset, length) => {
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await file.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    };
    return await use(read, size);
  } finally {
    await file.close();
  }
}

/** The layer file → bootstrap + the layer itself in the blob directory. */
export async function createStargzRef(opts: StargzRefOptions): Promise<StargzRefResult> {
  const [toc, blobSize] = await withLayerFile(opts.layerPath, async (read, size) => [await readStargzToc(read, size, { expectedTocDigest: opts.tocDigest }), size] as const);
  const blobId = await sha256File(opts.layerPath);
  const result = await writeLayerBootstrap(toc, { blobId, blobSize, chunkSize: opts.chunkSize, bootstrapPath: opts.bootstrapPath });
  if (result.stats.chunks > 0) result.blobPath = await placeBlob(opts.layerPath, opts.blobDir, blobId);
  return result;
}

/** The TOC JSON of an eStargz layer → its bootstrap (the layer is not needed, nor written). */
export async function createStargzIndex(opts: StargzIndexOptions): Promise<StargzRefResult> {
  const json = await readFile(opts.tocPath);
  const toc = await stargzTocFromJson(json, { blobSize: opts.blobSize, tocOffset: opts.tocOffset }, { expectedTocDigest: opts.tocDigest });
  return writeLayerBootstrap(toc, { blobId: opts.blobId, blobSize: opts.blobSize, chunkSize: opts.chunkSize, bootstrapPath: opts.bootstrapPath });
}

async function writeLayerBootstrap(
  toc: StargzToc,
  opts: { blobId: string; blobSize: number; chunkSize?: number; bootstrapPath: string },
): Promise<StargzRefResult> {
  if (toc.verifiedBy === undefined) log.warn('stargz TOC not verified: no TOC digest given (--toc-digest), its pieces are still checked by their digests', { tocDigest: toc.tocDigest });
  const model = stargzBootstrap(toc, { blobId: opts.blobId, blobSize: opts.blobSize, chunkSize: opts.chunkSize });
  const bootstrap = writeBootstrap(model);
  await writeAtomically(opts.bootstrapPath, bootstrap);
  return {
    kind: toc.footer.kind,
    blobId: opts.blobId,
    blobSize: opts.blobSize,
    bootstrapSize: bootstrap.length,
    tocDigest: toc.tocDigest,
    verifiedBy: toc.verifiedBy,
    chunkSize: model.chunkSize,
    stats: { entries: toc.entries.length, chunks: model.blobs[0]?.chunkCount ?? 0 },
  };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), hash);
  return hash.digest('hex');
}

/**
 * The layer as `<blobDir>/<blobId>`: a hard link when on the same filesystem, else a copy. An
 * existing file of that name is kept when it holds the same bytes and refused otherwise.
 */
export async function placeBlob(layerPath: string, blobDir: string, blobId: string): Promise<string> {
  await mkdir(blobDir, { recursive: true });
  const target = join(blobDir, blobId);
  const existing = await stat(target).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (existing) {
    if ((await sha256File(target)) !== blobId) throw new Error(`${target} exists and is not the layer (sha256:${blobId}): not overwritten`);
    return target;
  }
  try {
    await link(layerPath, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV' && (err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
    // across filesystems: copy beside the target, then link it in (never over a file that appeared meanwhile)
    const tmp = join(blobDir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await copyFile(layerPath, tmp);
      await link(tmp, target);
    } finally {
      await rm(tmp, { force: true });
    }
  }
  return target;
}
