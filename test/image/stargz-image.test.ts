// A stargz chain's bootstrap kept in the cache directory (built-bootstraps.ts) is used by the next
// mount of exactly those layers, and never for other ones: the key names every layer's digest and
// annotations (so a manifest with another TOC digest is built, and refused, afresh); a kept file
// that does not open, or that reads a blob the chain does not have, is built again.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BuiltBootstraps } from '../../src/blobcache/built-bootstraps.js';
import { stargzChainKey, stargzImageBootstrap } from '../../src/image/stargz-image.js';
import type { ImageStore } from '../../src/registry/image-store.js';
import type { Descriptor, ImageManifest } from '../../src/registry/media-types.js';
import { TOC_DIGEST_ANNOTATION } from '../../src/registry/stargz-layers.js';
import { sha256, synthEstargz } from '../stargz/helpers.js';

const work = mkdtempSync(join(tmpdir(), 'stargz-image-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function layerOf(files: Parameters<typeof synthEstargz>[0]) {
  const { blob, toc } = synthEstargz(files, { chunkSize: 4096 });
  const descriptor: Descriptor = {
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: `sha256:${sha256(blob)}`,
    size: blob.length,
    annotations: { [TOC_DIGEST_ANNOTATION]: `sha256:${sha256(JSON.stringify(toc, null, '\t'))}` },
  };
  return { blob, descriptor };
}

const lower = layerOf([{ name: 'etc/', type: 'dir' }, { name: 'etc/os-release', content: Buffer.from('ID=lower\n') }]);
const upper = layerOf([{ name: 'bin/', type: 'dir' }, { name: 'bin/tool', content: Buffer.alloc(9000, 7) }]);
const blobs = new Map([lower, upper].map((l) => [l.descriptor.digest, l.blob]));

/** A store serving the two layers by range, counting the ranges read. */
function store(): ImageStore & { reads: number } {
  const s = {
    name: 'test-store',
    reads: 0,
    async getBlobRange(digest: string, offset: number, length: number): Promise<Buffer> {
      s.reads++;
      return blobs.get(digest)!.subarray(offset, offset + length);
    },
  };
  return s as unknown as ImageStore & { reads: number };
}

const manifest = (layers: Descriptor[]): ImageManifest => ({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 2 }, layers });

describe('stargz chain bootstraps kept in the cache directory', () => {
  it('builds once, keeps it under the chain key, and the next mount of the same layers reads no TOC', async () => {
    const built = new BuiltBootstraps(join(work, 'a'));
    const m = manifest([lower.descriptor, upper.descriptor]);
    const first = store();
    const a = await stargzImageBootstrap(first, m, undefined, built);
    expect(first.reads).toBeGreaterThan(0);
    expect(readdirSync(built.dir)).toEqual([`built-${stargzChainKey(m.layers)}.boot`]);
    const second = store();
    const b = await stargzImageBootstrap(second, m, undefined, built);
    expect(second.reads).toBe(0);
    expect(b.bootstrap.equals(a.bootstrap)).toBe(true);
    expect(b.rafs.blobs.map((x) => x.blobId).sort()).toEqual([lower, upper].map((l) => l.descriptor.digest.slice(7)).sort());
  });

  it('a chain up to a lower layer, or with other annotations, has its own key', () => {
    const both = [lower.descriptor, upper.descriptor];
    const otherToc = { ...upper.descriptor, annotations: { [TOC_DIGEST_ANNOTATION]: `sha256:${'1'.repeat(64)}` } };
    const keys = new Set([stargzChainKey(both), stargzChainKey([lower.descriptor]), stargzChainKey([lower.descriptor, otherToc])]);
    expect(keys.size).toBe(3);
  });

  it('regression: a kept bootstrap is not served for a manifest whose TOC digest differs: that TOC is checked and refused', async () => {
    const built = new BuiltBootstraps(join(work, 'b'));
    await stargzImageBootstrap(store(), manifest([lower.descriptor, upper.descriptor]), undefined, built);
    const lying = { ...upper.descriptor, annotations: { [TOC_DIGEST_ANNOTATION]: `sha256:${'1'.repeat(64)}` } };
    await expect(stargzImageBootstrap(store(), manifest([lower.descriptor, lying]), undefined, built)).rejects.toThrow(/digest/i);
  });

  it('builds again over a kept file that does not open, or that reads a blob the chain lacks', async () => {
    const built = new BuiltBootstraps(join(work, 'c'));
    const m = manifest([lower.descriptor, upper.descriptor]);
    const { bootstrap } = await stargzImageBootstrap(store(), m, undefined, built);
    const path = join(built.dir, `built-${stargzChainKey(m.layers)}.boot`);
    writeFileSync(path, Buffer.alloc(8192, 0xee));
    const garbage = store();
    expect((await stargzImageBootstrap(garbage, m, undefined, built)).bootstrap.equals(bootstrap)).toBe(true);
    expect(garbage.reads).toBeGreaterThan(0);
    // the two-layer bootstrap kept under the one-layer chain's key names a blob that chain lacks
    const onlyLower = manifest([lower.descriptor]);
    await built.put(stargzChainKey(onlyLower.layers), bootstrap);
    const foreign = store();
    const opened = await stargzImageBootstrap(foreign, onlyLower, undefined, built);
    expect(foreign.reads).toBeGreaterThan(0);
    expect(opened.rafs.blobs.map((x) => x.blobId)).toEqual([lower.descriptor.digest.slice(7)]);
  });
});
