import { describe, expect, it } from 'vitest';
import { rehearseMount } from '../../src/image/mount-rehearsal.js';

describe('rehearseMount', () => {
  it('reads the chunk tables of both made-up images: every chunk of the eStargz chain and of the Nydus layer', async () => {
    expect(await rehearseMount()).toEqual({
      // per layer: 60 directories of 36 files (every tenth name a symlink), two small files and a 6-chunk file (the landmark is not served)
      stargz: 3 * (60 * 36 + 2 + 6),
      // 2000 small files of distinct contents, and a file of 3.5 chunks: three alike (one, deduplicated) and a half
      nydus: 2000 + 2,
    });
  });
});
