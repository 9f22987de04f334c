// The build cache on an OCI layout: a record put is found by the next conversion of the same kind,
// not by another kind (whose records are kept), and the cache keeps its most recently used records.
import { mkdtempSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BuildCache } from '../../src/convert/build-cache.js';
import { OciLayoutStore } from '../../src/registry/oci-layout.js';

const blob = (n: number) => {
  const bytes = Buffer.from(`blob ${n}`);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  return { bytes, descriptor: { mediaType: 'application/vnd.oci.image.layer.nydus.blob.v1', digest, size: bytes.length } };
};
const source = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;

describe('BuildCache', () => {
  it('finds a record of its own kind, keeps the others, and the most recently used up to its limit', async () => {
    const store = await OciLayoutStore.create(mkdtempSync(join(tmpdir(), 'nydusify-build-cache-')));
    const open = (kind: string, maxRecords = 2) => BuildCache.open({ store, tag: 'cache', maxRecords, conversion: { kind } });
    const a = await open('a');
    for (const n of [1, 2, 3]) a.put(source(n), blob(n).descriptor, blob(n).bytes, Buffer.from(`boot ${n}`));
    await a.save();
    const b = await open('b');
    expect(await b.get(source(3))).toBeUndefined();
    b.put(source(3), blob(4).descriptor, blob(4).bytes, Buffer.from('boot b'));
    await b.save();
    const again = await open('a');
    // two kept of three: the last two put
    expect(await again.get(source(1))).toBeUndefined();
    expect((await again.get(source(2)))?.bootstrap.toString()).toBe('boot 2');
    const hit = await again.get(source(3));
    expect(hit?.blob.digest).toBe(blob(3).descriptor.digest);
    expect(hit?.bootstrap.toString()).toBe('boot 3');
    expect((await (await open('b')).get(source(3)))?.bootstrap.toString()).toBe('boot b');
  });
});
