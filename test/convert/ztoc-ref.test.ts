// A layer indexed by soci-snapshotter's own code (test/fixtures/soci: its zTOC and the layer) as a
// RAFS layer: every file reads back as the tar holds it, through the spans the zTOC names; a
// corrupt byte of the layer is an integrity error for the chunks of its span alone; a bootstrap
// whose SPANS blob is not named for its metadata is refused.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChunkIntegrityError, decodeChunk } from '../../src/blobcache/chunk-decoder.js';
import { LayerTree } from '../../src/convert/layer-tree.js';
import { mergeLayers } from '../../src/convert/merge.js';
import { ztocLayerModel } from '../../src/convert/ztoc-ref.js';
import { BlobFeature } from '../../src/rafs/blob-table.js';
import { CHECKPOINT_WINDOW, spanEnd } from '../../src/rafs/checkpoints.js';
import { compress } from '../../src/native/index.js';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { storedBlobId } from '../../src/rafs/span-blob.js';
import { replaceBlobTable, writeBootstrap } from '../../src/rafs/writer.js';

const dir = join(import.meta.dirname, '..', 'fixtures', 'soci');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** A name of the fixture's JSON (UTF-8) as the tree holds it: a byte string, no trailing slash. */
const treePath = (name: string): string => Buffer.from(name.replace(/\/$/, '')).toString('latin1');

interface Expected { toc: { name: string; type: string; content_sha256?: string; linkname: string; xattrs: Record<string, string> }[] }

function model(name: 'layer' | 'multi', chunkSize = 64 << 10) {
  const layer = readFileSync(join(dir, `${name}.tar.gz`));
  const built = ztocLayerModel({ ztoc: readFileSync(join(dir, `${name}.ztoc`)), layerDigest: `sha256:${sha256(layer)}`, layerSize: layer.length, chunkSize });
  return { layer, built, rafs: RafsImage.open(writeBootstrap(built.model)) };
}

/** Each regular file's bytes, decoded chunk by chunk from `layer`, or the error of its first bad chunk. */
function readFiles(rafs: RafsImage, layer: Buffer): Map<string, Buffer | Error> {
  const out = new Map<string, Buffer | Error>();
  for (const e of rafs.walk()) {
    if ((e.inode.mode & 0o170000) !== 0o100000) continue;
    try {
      out.set(e.path.slice(1), Buffer.concat(rafs.chunks(e.nid).map((ref) => decodeChunk(rafs.blobs[0]!, ref, layer.subarray(ref.compressedOffset, ref.compressedOffset + ref.compressedSize)))));
    } catch (err) {
      out.set(e.path.slice(1), err as Error);
    }
  }
  return out;
}

describe.each(['layer', 'multi'] as const)('ztocLayerModel of soci\'s %s vector', (name) => {
  const expected = JSON.parse(readFileSync(join(dir, name === 'layer' ? 'expected.json' : 'multi-expected.json'), 'utf8')) as Expected;
  const { layer, built, rafs } = model(name);

  it('is a SPANS blob reading the layer, named for its metadata', () => {
    const blob = rafs.blobs[0]!;
    expect(rafs.blobs).toHaveLength(1);
    expect(blob.features & (BlobFeature.CHECKPOINTS | BlobFeature.SPANS)).toBe(BlobFeature.CHECKPOINTS | BlobFeature.SPANS);
    expect(storedBlobId(blob)).toBe(sha256(layer));
    expect(blob.blobId).toBe(built.blobId);
    expect(blob.blobId).not.toBe(sha256(layer));
    expect(blob.checkpoints).toHaveLength(6);
  });

  it('reads every regular file as the tar holds it', () => {
    const files = readFiles(rafs, layer);
    const regular = expected.toc.filter((e) => e.type === 'reg');
    expect(regular.length).toBeGreaterThan(5);
    for (const e of regular) {
      const got = files.get(treePath(e.name));
      expect(got, e.name).toBeInstanceOf(Buffer);
      expect(sha256(got as Buffer), e.name).toBe(e.content_sha256);
    }
  });

  it('keeps links and xattrs', () => {
    const paths = new Map([...rafs.walk()].map((e) => [e.path.slice(1), e]));
    for (const e of expected.toc) {
      const got = paths.get(treePath(e.name));
      expect(got, e.name).toBeDefined();
      if (e.type === 'symlink') expect(rafs.readlink(got!.nid)).toBe(e.linkname);
      for (const [k, v] of Object.entries(e.xattrs)) expect(rafs.xattrs(got!.nid).get(k)?.toString()).toBe(v);
    }
  });
});

describe('SPANS blobs refuse what they cannot vouch for', () => {
  it('a corrupt layer byte fails the chunks of its span only', () => {
    const { layer, rafs } = model('layer');
    const blob = rafs.blobs[0]!;
    const span = 3;
    const at = Math.floor((blob.checkpoints![span]!.input + spanEnd(blob.checkpoints!, span, blob.compressedSize)) / 2);
    const bad = Buffer.from(layer);
    bad[at] ^= 0x55;
    const files = readFiles(rafs, bad);
    const good = readFiles(rafs, layer);
    const failed = [...files].filter(([, v]) => v instanceof Error);
    expect(failed.length).toBeGreaterThan(0);
    for (const [, err] of failed) expect(err).toBeInstanceOf(ChunkIntegrityError);
    for (const [path, v] of files) if (!(v instanceof Error)) expect(v.equals(good.get(path) as Buffer), path).toBe(true);
  });

  it('a bootstrap whose SPANS blob id is not its metadata\'s digest is refused', () => {
    const { built } = model('layer');
    const blob = built.model.blobs[0]!;
    // the writer names it; a table edited afterwards (replaceBlobTable keeps the rest) can name it otherwise
    expect(() => RafsImage.open(replaceBlobTable(writeBootstrap(built.model), [{ ...blob, blobId: 'a'.repeat(64) }]))).toThrow(RafsFormatError);
    // the honest blob's id over other checkpoints (a window of another stream): refused too
    const cps = blob.checkpoints!.map((c, i) => (i === 2 ? { ...c, window: compress('zstd', Buffer.alloc(CHECKPOINT_WINDOW, 7), 9) } : c));
    const other = writeBootstrap({ ...built.model, blobs: [{ ...blob, checkpoints: cps }] });
    expect(RafsImage.open(other).blobs[0]!.blobId).not.toBe(built.blobId);
    expect(() => RafsImage.open(replaceBlobTable(other, [{ ...blob, checkpoints: cps, blobId: built.blobId }]))).toThrow(RafsFormatError);
  });

  it('a chain whose upper layer deletes a file of the SOCI layer opens, and names the blob for the chunks it keeps', () => {
    const { layer, built } = model('layer');
    const upper = new LayerTree();
    upper.add({ type: 'file', path: 'vector/.wh.text.txt', linkpath: '', mode: 0o644, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, size: 0, devmajor: 0, devminor: 0, xattrs: new Map() });
    const merged = mergeLayers([built.model, { root: upper.root, blobs: [], chunkSize: built.model.chunkSize, compressor: 'gzip', digester: 'sha256', prefetch: [] }], { prefetch: [] });
    const rafs = RafsImage.open(writeBootstrap(merged));
    expect(rafs.blobs[0]!.blobId).not.toBe(built.blobId);
    expect(storedBlobId(rafs.blobs[0]!)).toBe(sha256(layer));
    const files = readFiles(rafs, layer);
    expect(files.has('vector/text.txt')).toBe(false);
    expect(sha256(files.get('vector/last.txt') as Buffer)).toBe(JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')).toc.find((e: { name: string }) => e.name === 'vector/last.txt').content_sha256);
  });

  it('another chunk size is another blob id (its chunk table differs)', () => {
    expect(model('layer', 16 << 10).built.blobId).not.toBe(model('layer').built.blobId);
  });
});
