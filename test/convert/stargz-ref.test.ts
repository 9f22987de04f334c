import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { createStargzIndex, createStargzRef } from '../../src/convert/stargz-ref.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { setLogOutput } from '../../src/util/log.js';
import { NotStargzError, StargzFormatError, StargzTocDigestError } from '../../src/stargz/errors.js';
import { sha256, synthEstargz } from '../stargz/helpers.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-stargz-ref-'));
const p = (...parts: string[]) => join(work, ...parts);
let logLines: string[] = [];
beforeEach(() => {
  logLines = [];
  setLogOutput({ write: (line: string) => logLines.push(line) });
});
afterAll(() => {
  setLogOutput(process.stderr);
  rmSync(work, { recursive: true, force: true });
});
const unverifiedWarning = () => logLines.filter((l) => l.includes('stargz TOC not verified'));

const content = Buffer.from('x'.repeat(10_000) + 'tail');
const { blob, data, toc } = synthEstargz([
  { name: 'etc', type: 'dir', fields: { mode: 0o755 } },
  { name: 'etc/hosts', content: Buffer.from('127.0.0.1 localhost\n') },
  { name: 'big', content },
], { chunkSize: 4096 });
const tocJson = Buffer.from(JSON.stringify(toc, null, '\t')); // as estargzLayer writes it
const tocDigest = `sha256:${sha256(tocJson)}`;
const blobId = sha256(blob);
const layerPath = p('layer.esgz');
writeFileSync(layerPath, blob);

describe('createStargzRef', () => {
  it('writes a bootstrap over the layer and hard-links the layer into the blob dir as its sha256', async () => {
    const result = await createStargzRef({ layerPath, bootstrapPath: p('a.boot'), blobDir: p('a'), tocDigest });
    expect(result).toMatchObject({ kind: 'estargz', blobId, blobSize: blob.length, tocDigest, verifiedBy: 'expectedTocDigest', chunkSize: 4096, stats: { chunks: 4 } });
    expect(result.blobPath).toBe(p('a', blobId));
    expect(statSync(p('a', blobId)).ino).toBe(statSync(layerPath).ino);
    const rafs = RafsImage.open(readFileSync(p('a.boot')));
    expect(rafs.blobs.map((b) => b.blobId)).toEqual([blobId]);
    expect(rafs.blobs[0]!.compressedSize).toBe(blob.length);
    expect(unverifiedWarning()).toEqual([]);
  });

  it('copies the layer when the blob dir is on another filesystem', async () => {
    const other = mkdtempSync(join('/dev/shm', 'nydusify-stargz-ref-'));
    try {
      expect(statSync(other).dev).not.toBe(statSync(layerPath).dev);
      const result = await createStargzRef({ layerPath, bootstrapPath: p('b.boot'), blobDir: other });
      // without a TOC digest the log says the TOC was not verified
      expect(result.verifiedBy).toBeUndefined();
      expect(unverifiedWarning()).toHaveLength(1);
      expect(readFileSync(join(other, blobId)).equals(blob)).toBe(true);
      expect(statSync(join(other, blobId)).ino).not.toBe(statSync(layerPath).ino);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('keeps an existing copy of the layer, and never overwrites a different file of that name', async () => {
    mkdirSync(p('c'));
    writeFileSync(p('c', blobId), blob);
    await createStargzRef({ layerPath, bootstrapPath: p('c.boot'), blobDir: p('c') });
    expect(readFileSync(p('c', blobId)).equals(blob)).toBe(true);
    writeFileSync(p('c', blobId), 'something else');
    await expect(createStargzRef({ layerPath, bootstrapPath: p('c2.boot'), blobDir: p('c') })).rejects.toThrow(/exists and is not the layer/);
    expect(readFileSync(p('c', blobId), 'utf8')).toBe('something else');
  });

  it('refuses a layer whose TOC is not the one --toc-digest names, writing nothing', async () => {
    await expect(createStargzRef({ layerPath, bootstrapPath: p('d.boot'), blobDir: p('d'), tocDigest: `sha256:${'1'.repeat(64)}` }))
      .rejects.toBeInstanceOf(StargzTocDigestError);
    expect(existsSync(p('d.boot'))).toBe(false);
    expect(existsSync(p('d'))).toBe(false);
  });

  it('refuses a plain gzip layer as not stargz', async () => {
    writeFileSync(p('plain.tgz'), gzipSync(Buffer.alloc(10240)));
    await expect(createStargzRef({ layerPath: p('plain.tgz'), bootstrapPath: p('e.boot'), blobDir: p('e') })).rejects.toBeInstanceOf(NotStargzError);
  });
});

describe('createStargzIndex', () => {
  const tocOffset = data.length; // the TOC member follows the file data

  it('gives the same bootstrap as the layer itself when the TOC offset is given', async () => {
    writeFileSync(p('toc.json'), tocJson);
    await createStargzRef({ layerPath, bootstrapPath: p('ref.boot'), blobDir: p('ref') });
    const result = await createStargzIndex({ tocPath: p('toc.json'), bootstrapPath: p('index.boot'), blobId, blobSize: blob.length, tocOffset, tocDigest });
    expect(result).toMatchObject({ kind: 'estargz', blobId, tocDigest, verifiedBy: 'expectedTocDigest', stats: { chunks: 4 } });
    expect(result.blobPath).toBeUndefined();
    expect(readFileSync(p('index.boot')).equals(readFileSync(p('ref.boot')))).toBe(true);
  });

  it('without the TOC offset, only the last piece’s stored range differs: it runs to the footer', async () => {
    await createStargzIndex({ tocPath: p('toc.json'), bootstrapPath: p('index2.boot'), blobId, blobSize: blob.length });
    const chunks = (boot: string) => {
      const rafs = RafsImage.open(readFileSync(boot));
      const nid = [...rafs.walk()].find((e) => e.path === '/big')!.nid;
      return rafs.chunks(nid);
    };
    const [want, got] = [chunks(p('ref.boot')), chunks(p('index2.boot'))];
    expect(got.slice(0, -1)).toEqual(want.slice(0, -1));
    expect(got.at(-1)!.compressedSize).toBeGreaterThanOrEqual(want.at(-1)!.compressedSize);
  });

  it('refuses a TOC offset outside the layer, a blob size below the footer, a bad blob id and a wrong digest', async () => {
    const index = (o: Partial<Parameters<typeof createStargzIndex>[0]>) =>
      createStargzIndex({ tocPath: p('toc.json'), bootstrapPath: p('bad.boot'), blobId, blobSize: blob.length, ...o });
    await expect(index({ tocOffset: blob.length - 50 })).rejects.toThrow(/TOC offset .* outside/);
    await expect(index({ blobSize: 50 })).rejects.toBeInstanceOf(StargzFormatError);
    await expect(index({ blobId: 'ABC' })).rejects.toThrow(/not 64 lowercase hex/);
    await expect(index({ tocDigest: `sha256:${'2'.repeat(64)}` })).rejects.toBeInstanceOf(StargzTocDigestError);
    // a piece past the data (the layer is smaller than the TOC says) is refused
    await expect(index({ blobSize: 60 })).rejects.toBeInstanceOf(StargzFormatError);
    expect(existsSync(p('bad.boot'))).toBe(false);
  });
});
