// An optimized image's hot region: the annotation is read as untrusted input, and the chunks fetched
// at mount are exactly those inside the declared bytes of each blob, in blob order.
import { describe, expect, it } from 'vitest';
import { hotRegionChunks } from '../../src/daemon/image-mount.js';
import { hotRegions } from '../../src/image/remote.js';
import type { ImageManifest } from '../../src/registry/media-types.js';
import { Annotation, hotRegionBytes } from '../../src/registry/nydus-layers.js';
import type { BlobInfo, ChunkRef } from '../../src/rafs/tree.js';

const layer = (id: string, size: number, hot?: string) => ({
  mediaType: 'application/vnd.oci.image.layer.nydus.blob.v1', digest: `sha256:${id}`, size, ...(hot === undefined ? {} : { annotations: { [Annotation.HOT_REGION]: hot } }),
});
const chunk = (blobIndex: number, ciIndex: number, compressedOffset: number, compressedSize: number) => ({ blobIndex, ciIndex, compressedOffset, compressedSize } as ChunkRef);

describe('hot region', () => {
  it.each([
    ['1000', 1000],
    ['5000', 5000],
    ['5001', undefined],
    ['0', undefined],
    ['-1', undefined],
    ['1e3', undefined],
    [' 10', undefined],
    ['99999999999999999999', undefined],
  ])('annotation %j on a 5000-byte layer declares %s bytes', (text, bytes) => {
    expect(hotRegionBytes(layer('a', 5000, text))).toBe(bytes);
  });

  it('takes the declared chunks of each blob, in blob order, and nothing of other blobs', () => {
    const a = 'a'.repeat(64);
    const b = 'b'.repeat(64);
    const manifest = { schemaVersion: 2, config: layer('c', 1), layers: [layer(a, 10_000), layer(b, 10_000, '3000')] } as unknown as ImageManifest;
    const hot = hotRegions(manifest);
    expect(hot).toEqual(new Map([[b, 3000]]));
    const blobs = [{ blobId: a }, { blobId: b }] as BlobInfo[];
    const tables = new Map([
      [a, [chunk(0, 0, 0, 1000)]],
      // unsorted, and one chunk straddling the end of the region
      [b, [chunk(1, 7, 2000, 1000), chunk(1, 5, 0, 1500), chunk(1, 6, 1500, 500), chunk(1, 8, 2900, 200)]],
    ]);
    expect(hotRegionChunks(blobs, hot, tables).map((r) => r.ciIndex)).toEqual([5, 6, 7]);
  });
});
