// Building a layer's tree from tar entries: the depth a RAFS tree may have is enforced while the
// archive is read (issue #11: the builder wrote trees the reader then refused to walk).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLayer } from '../../src/convert/create.js';
import { TarPathError } from '../../src/convert/tar/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { chunked, EOA, fileEntry, paxEntry } from './tar/helpers.js';

const work = mkdtempSync(join(tmpdir(), 'layer-tree-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A layer of one file whose path has `components` components (a PAX path: it is long). */
async function createDeepLayer(components: number, name: string): Promise<string> {
  const path = `${'d/'.repeat(components - 1)}file`;
  const tar = Buffer.concat([paxEntry([['path', path]]), fileEntry('placeholder', 'deep data\n'), EOA]);
  const bootstrapPath = join(work, `${name}.boot`);
  await createLayer({ source: chunked(tar, 4096), bootstrapPath, blobDir: join(work, name), compressor: 'zstd', digester: 'blake3', chunkSize: 0x100000 });
  return bootstrapPath;
}

describe('LayerTree depth', () => {
  it('regression: a tar path deeper than the reader walks is refused while the layer is built', async () => {
    await expect(createDeepLayer(2049, 'too-deep')).rejects.toThrow(TarPathError);
    await expect(createDeepLayer(2049, 'too-deep')).rejects.toThrow(/2049 components, more than the 2048/);
  });

  it('builds the deepest tree the reader walks', async () => {
    const image = RafsImage.open(readFileSync(await createDeepLayer(2048, 'deepest')));
    const entries = [...image.walk()];
    expect(entries).toHaveLength(2049);
    expect(entries.at(-1)!.path).toBe(`${'/d'.repeat(2047)}/file`);
  });
});
