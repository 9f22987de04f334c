import { describe, expect, it } from 'vitest';
import { rehearseMount } from '../../src/daemon/mount-rehearsal.js';

describe('rehearseMount', () => {
  it('reads the chunk tables of a made-up three-layer chain: every layer\'s chunks', async () => {
    // per layer: 60 directories of 36 files (every tenth name a symlink), two small files and a 6-chunk file (the landmark is not served)
    expect(await rehearseMount()).toBe(3 * (60 * 36 + 2 + 6));
  });
});
