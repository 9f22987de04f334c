// readBlob: a whole blob in memory, bounded by its descriptor and a limit, returned only once verified
// (against the plain registry of the global setup).
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { readBlob } from '../../../src/registry/image-store.js';
import { PLAIN, repo, sha256, useRegistries } from '../../registry/registry-fixtures.js';

const ctx = useRegistries();

describe('readBlob', () => {
  it('returns the verified blob, and refuses one larger than the limit or than its descriptor says', async () => {
    const store = ctx.client().repository(`${PLAIN}/${repo('read-blob')}`);
    const blob = randomBytes(3000);
    const digest = sha256(blob);
    await store.putBlob({ digest, size: blob.length }, blob);
    expect((await readBlob(store, { digest, size: 3000 }, 3000)).equals(blob)).toBe(true);
    await expect(readBlob(store, { digest, size: 3000 }, 2999)).rejects.toThrow(`${store.name}: blob ${digest} is 3000 bytes, more than the 2999 read whole`);
    await expect(readBlob(store, { digest, size: 2999 }, 1 << 20)).rejects.toThrow(`${store.name}: blob ${digest} is longer than the 2999 bytes its descriptor says`);
    await expect(readBlob(store, { digest, size: 3001 }, 1 << 20)).rejects.toThrow(`${store.name}: blob ${digest} ended after 3000 of the 3001 bytes its descriptor says`);
  });
});
