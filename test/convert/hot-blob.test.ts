// The hot blob build on real blobs: layers made by createLayer (16 KiB and 1 MiB chunks), merged,
// laid out from a trace and rebuilt with 64 KiB hot chunks. The optimized image reads back the same
// bytes, passes check, starts its hot blob with the touched chunks back to back, carries blob meta,
// and drops the blob only hot files used.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkReader } from '../../src/blobcache/chunk-reader.js';
import { LocalDirBackend } from '../../src/blobcache/local-backend.js';
import { createLayer } from '../../src/convert/create.js';
import { buildHotBlob, type HotBlob } from '../../src/convert/hot-blob.js';
import { type HotLayout, optimizedTree, planHotLayout } from '../../src/convert/hot-layout.js';
import { mergeLayers } from '../../src/convert/merge.js';
import { TarWriter } from '../../src/convert/tar/write.js';
import { checkImage } from '../../src/image/check.js';
import { openLocalImage } from '../../src/image/local.js';
import { BlobTail } from '../../src/rafs/blob.js';
import { RafsImage } from '../../src/rafs/reader.js';
import type { ChunkRef } from '../../src/rafs/tree.js';
import { writeBootstrap } from '../../src/rafs/writer.js';
import type { AccessTrace } from '../../src/trace/access-trace.js';
import { writeAtomically } from '../../src/util/files.js';
import { pseudoRandom } from '../helpers/sample-tree.js';

const KiB = 1024;
const work = mkdtempSync(join(tmpdir(), 'hot-blob-'));
const blobDir = join(work, 'blobs');

/** Files per layer, and each layer's chunk size. */
const LAYERS: Array<{ chunkSize: number; files: Record<string, Buffer> }> = [
  { chunkSize: 16 * KiB, files: { 'bin/app': pseudoRandom(300 * KiB + 123, 1), 'lib/x': pseudoRandom(200 * KiB, 2), 'usr/keep': pseudoRandom(50 * KiB, 3) } },
  { chunkSize: 1024 * KiB, files: { 'data/only-hot': pseudoRandom(1500 * KiB, 4), 'usr/other': pseudoRandom(70 * KiB, 5) } },
  { chunkSize: 1024 * KiB, files: { 'opt/solo': pseudoRandom(10 * KiB, 6) } },
];
const contents = new Map<string, Buffer>(LAYERS.flatMap((l) => Object.entries(l.files).map(([p, d]) => [`/${p}`, d] as const)));

async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  const tar = new TarWriter(new Writable({ write: (c: Buffer, _e, done) => {
    parts.push(c);
    done();
  } }));
  for (const dir of new Set(Object.keys(files).map((p) => p.split('/')[0]!))) await tar.dir({ path: dir, mode: 0o755 });
  for (const [path, data] of Object.entries(files)) await tar.file({ path, mode: 0o644, size: data.length }, data);
  await tar.finish();
  return Buffer.concat(parts);
}

let source: RafsImage;
let layout: HotLayout;
let hot: HotBlob;
let optimized: RafsImage;
const sourceReads = new Map<string, number>();

beforeAll(async () => {
  const models = [];
  for (const [i, layer] of LAYERS.entries()) {
    const bootstrapPath = join(work, `layer-${i}.boot`);
    await createLayer({ source: Readable.from([await tarOf(layer.files)]), bootstrapPath, blobDir, compressor: 'zstd', digester: 'blake3', chunkSize: layer.chunkSize });
    models.push(RafsImage.open(readFileSync(bootstrapPath)).toBootstrap());
  }
  const bootstrap = writeBootstrap(mergeLayers(models));
  source = RafsImage.open(bootstrap);
  const trace: AccessTrace = {
    format: 'nydusify-ts access trace', version: 1, image: 'test', bootstrap: createHash('sha256').update(bootstrap).digest('hex'),
    started: '2026-01-01T00:00:00.000Z', duration: 10, blobs: [], truncated: false, fetches: [],
    files: ['/bin/app', '/lib/x', '/data/only-hot', '/opt/solo'].map((path) => ({ path, size: contents.get(path)!.length })),
    reads: [
      { t: 1, file: 0, offset: 100 * KiB, length: 10, miss: true },
      { t: 2, file: 1, offset: 0, length: 5, miss: true },
      { t: 3, file: 2, offset: 1100 * KiB, length: 70 * KiB, miss: true },
      { t: 4, file: 0, offset: 0, length: 1, miss: false },
      { t: 5, file: 3, offset: 0, length: 10 * KiB, miss: true },
      { t: 6, file: 0, offset: 300 * KiB, length: 123, miss: true },
    ],
  };
  const model = source.toBootstrap();
  layout = planHotLayout(model, trace.bootstrap, trace, 64 * KiB);
  const reader = new ChunkReader(new LocalDirBackend(blobDir), model.blobs);
  const read = (ref: ChunkRef) => {
    const key = `${ref.blobIndex}:${ref.ciIndex}`;
    sourceReads.set(key, (sourceReads.get(key) ?? 0) + 1);
    return reader.read(ref);
  };
  hot = await buildHotBlob({ source: model, layout, tree: optimizedTree(model, layout), blobDir, read });
  const boot = writeBootstrap(hot.bootstrap);
  await writeAtomically(join(work, 'optimized.boot'), boot);
  optimized = RafsImage.open(boot);
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

async function readFile(image: RafsImage, reader: ChunkReader, path: string): Promise<Buffer> {
  let nid = image.root;
  for (const name of path.split('/').filter(Boolean)) nid = image.lookup(nid, name)!;
  return Buffer.concat(await Promise.all(image.chunks(nid).map((c) => reader.read(c))));
}

describe('hot blob', () => {
  it('the optimized image holds the same bytes in every file, and check verifies every chunk', async () => {
    const reader = new ChunkReader(new LocalDirBackend(blobDir), optimized.blobs);
    for (const [path, data] of contents) expect((await readFile(optimized, reader, path)).equals(data), path).toBe(true);
    const image = await openLocalImage(join(work, 'optimized.boot'), blobDir);
    try {
      const report = await checkImage(image);
      expect(report.problems).toEqual([]);
      expect(report.verifiedChunks).toBeGreaterThan(0);
    } finally {
      await image.close();
    }
  });

  it('starts the hot blob with the touched chunks back to back, in first-touch order; the annotation value is where they end', () => {
    const hotIndex = optimized.blobs.length - 1;
    const region = layout.chunks.slice(0, layout.hotRegionChunks).map(({ file, index }) => {
      let nid = optimized.root;
      for (const name of layout.files[file]!.path.split('/').filter(Boolean)) nid = optimized.lookup(nid, name)!;
      return optimized.chunks(nid)[index]!;
    });
    // app 1 (100 KiB), x 0, only-hot 17 and 18 (1100..1170 KiB), app 0, solo 0, app 4 (its last, short chunk)
    expect(layout.chunks.slice(0, layout.hotRegionChunks).map(({ file, index }) => `${layout.files[file]!.path}#${index}`))
      .toEqual(['/bin/app#1', '/lib/x#0', '/data/only-hot#17', '/data/only-hot#18', '/bin/app#0', '/opt/solo#0', '/bin/app#4']);
    let end = 0;
    for (const c of region) {
      expect(c.blobIndex).toBe(hotIndex);
      expect(c.compressedOffset).toBe(end);
      end += c.compressedSize;
    }
    expect(hot.hotRegionSize).toBe(end);
    expect(optimized.blobs[hotIndex]!.chunkSize).toBe(64 * KiB);
    expect(region.map((c) => c.uncompressedSize)).toEqual([64 * KiB, 64 * KiB, 64 * KiB, 64 * KiB, 64 * KiB, 10 * KiB, 300 * KiB + 123 - 4 * 64 * KiB]);
  });

  it('keeps the other files in the source blobs they were in and drops the blob only hot files used', () => {
    expect(optimized.blobs.map((b) => b.blobId)).toEqual([source.blobs[0]!.blobId, source.blobs[1]!.blobId, hot.blobId]);
    expect(layout.droppedBlobs.map((i) => source.blobs[i]!.blobId)).toEqual([source.blobs[2]!.blobId]);
    const chunksOf = (image: RafsImage, path: string) => {
      let nid = image.root;
      for (const name of path.split('/').filter(Boolean)) nid = image.lookup(nid, name)!;
      return image.chunks(nid);
    };
    expect(chunksOf(optimized, '/usr/other')).toEqual(chunksOf(source, '/usr/other'));
    expect(chunksOf(optimized, '/usr/keep')).toEqual(chunksOf(source, '/usr/keep'));
    expect(optimized.fileChunkSize(optimized.lookup(optimized.lookup(optimized.root, 'usr')!, 'keep')!)).toBe(16 * KiB);
  });

  it('lists the hot files for prefetch in first-touch order', () => {
    const pathOf = new Map([...optimized.walk()].map((e) => [e.nid, e.path]));
    expect(optimized.prefetchNids.map((nid) => pathOf.get(nid))).toEqual(['/bin/app', '/lib/x', '/data/only-hot', '/opt/solo']);
  });

  it('writes blob meta (chunk info and digests) like any converted blob', async () => {
    const tail = await BlobTail.open(readFileSync(hot.blobPath));
    const meta = await tail.chunkInfo();
    expect(meta!.chunks).toHaveLength(hot.storedChunks);
    expect(await tail.chunkDigests()).toHaveLength(hot.storedChunks);
    expect(hot.storedChunks).toBe(layout.chunks.length);
  });

  it('reads each source chunk once', () => {
    expect([...sourceReads.values()].every((n) => n === 1)).toBe(true);
  });
});
