// StargzModels runs its worker from the compiled file next to it: it is loaded from dist/ (built by
// the unit tier's global setup), as the snapshotter runs it.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RafsImage } from '../../src/rafs/reader.js';
import type { Descriptor } from '../../src/registry/media-types.js';
import { TOC_DIGEST_ANNOTATION } from '../../src/registry/stargz-layers.js';
import type { StargzModels as Models } from '../../src/snapshotter/stargz-models.js';
import { sha256, synthEstargz } from '../stargz/helpers.js';

const { StargzModels } = (await import(join(import.meta.dirname, '..', '..', 'dist', 'snapshotter', 'stargz-models.js'))) as { StargzModels: typeof Models };

function layer(files: Parameters<typeof synthEstargz>[0]): { blob: Buffer; desc: Descriptor } {
  const { blob, toc } = synthEstargz(files, { chunkSize: 4096 });
  const tocDigest = `sha256:${sha256(JSON.stringify(toc, null, '\t'))}`;
  const desc: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${sha256(blob)}`, size: blob.length, annotations: { [TOC_DIGEST_ANNOTATION]: tocDigest } };
  return { blob, desc };
}

const lower = layer([{ name: 'etc', type: 'dir', fields: { mode: 0o755 } }, { name: 'etc/hosts', content: Buffer.from('127.0.0.1 localhost\n') }]);
const upper = layer([{ name: 'big', content: Buffer.from('y'.repeat(10_000)) }]);
const blobs = new Map([lower, upper].map((l) => [l.desc.digest, l.blob]));

/** A reader over `blobs` that counts its reads. */
function reader(): { reads: string[]; read: (digest: string, offset: number, length: number) => Promise<Buffer> } {
  const reads: string[] = [];
  return {
    reads,
    read: async (digest, offset, length) => {
      reads.push(digest);
      const blob = blobs.get(digest);
      if (!blob) throw new Error(`no blob ${digest}`);
      return Buffer.from(blob.subarray(offset, offset + length));
    },
  };
}

describe('StargzModels (layer models in a worker thread)', () => {
  it('makes each layer model once and merges a chain into a bootstrap that opens as RAFS', async () => {
    const models = new StargzModels();
    const { reads, read } = reader();
    const image = models.open('reg/img', read);
    await Promise.all([models.model(image, lower.desc, 0), models.model(image, upper.desc, 1)]);
    const readsForModels = reads.length;
    const rafs = RafsImage.open(await models.build(image, [lower.desc, upper.desc]));
    expect(reads.length).toBe(readsForModels); // the kept models, not read again
    expect(rafs.lookup(rafs.root, 'big')).toBeDefined();
    expect(rafs.lookup(rafs.lookup(rafs.root, 'etc')!, 'hosts')).toBeDefined();
    expect(rafs.blobs.map((b) => `sha256:${b.blobId}`).sort()).toEqual([lower.desc.digest, upper.desc.digest].sort());
  });

  it('parses TOCs read at once lowest layer first, as containerd commits them: a higher one whose bytes came first waits', async () => {
    const models = new StargzModels();
    const { read } = reader();
    const slowLower = async (digest: string, offset: number, length: number): Promise<Buffer> => {
      if (digest === lower.desc.digest) await new Promise((r) => setTimeout(r, 150));
      return read(digest, offset, length);
    };
    const image = models.open('reg/img', slowLower);
    const done: string[] = [];
    await Promise.all([
      models.model(image, upper.desc, 1).then(() => done.push('upper')),
      models.model(image, lower.desc, 0).then(() => done.push('lower')),
    ]);
    expect(done).toEqual(['lower', 'upper']);
  });

  it('refuses a layer whose TOC is not the one its annotation names, and a read that fails, with why', async () => {
    const models = new StargzModels();
    const image = models.open('reg/img', reader().read);
    const forged = { ...upper.desc, annotations: { [TOC_DIGEST_ANNOTATION]: `sha256:${'0'.repeat(64)}` } };
    await expect(models.model(image, forged, 1)).rejects.toThrow(/TOC digest/i);
    const missing = { ...upper.desc, digest: `sha256:${'1'.repeat(64)}` };
    await expect(models.model(image, missing, 1)).rejects.toThrow(`no blob ${missing.digest}`);
    // the worker goes on serving
    await expect(models.model(image, lower.desc, 0)).resolves.toBeUndefined();
  });

  it('reads a dropped image\'s layers again for a build, and refuses an image that is no longer open', async () => {
    const models = new StargzModels();
    const { reads, read } = reader();
    const image = models.open('reg/img', read);
    await models.model(image, lower.desc, 0);
    models.drop(image);
    await expect(models.build(image, [lower.desc])).rejects.toThrow(/no open image/);
    const again = models.open('reg/img', read);
    const before = reads.length;
    RafsImage.open(await models.build(again, [lower.desc, upper.desc]));
    expect(reads.length).toBeGreaterThan(before);
  });
});
