// `inspect` on hostile bootstraps: it must finish quickly with an error or an answer, never hang
// or crash (issue #11: a shared-dirent walk took minutes, an mtime past 2^53 threw RangeError).
import { describe, expect, it } from 'vitest';
import { inspectSummary, treeListing } from '../../src/image/inspect.js';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { fileWithMtime, sharedDirentBlocksBootstrap } from '../rafs/helpers.js';

describe('inspect', () => {
  it('regression: refuses directories sharing dirent blocks instead of walking them for minutes', () => {
    const image = RafsImage.open(sharedDirentBlocksBootstrap(1000, 20_000));
    expect(() => inspectSummary(image)).toThrow(RafsFormatError);
    expect(() => [...treeListing(image)]).toThrow(RafsFormatError);
  });

  it('regression: lists a file whose mtime is past 2^53', () => {
    const image = RafsImage.open(fileWithMtime(2n ** 60n));
    expect([...treeListing(image)].at(-1)).toMatch(/ \+275760-09-13T00:00:00\.000Z \/f$/);
    expect(inspectSummary(image).counts.files).toBe(1);
  });
});
