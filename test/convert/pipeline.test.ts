// The conversion pipeline against a hostile source image: what it reads whole into memory is bounded.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { convertImage } from '../../src/convert/pipeline.js';
import { OciLayoutStore } from '../../src/registry/oci-layout.js';
import { MAX_CONFIG_BYTES } from '../../src/registry/image-store.js';
import { writeOciLayout } from '../helpers/oci-layout.js';

const work = mkdtempSync(join(tmpdir(), 'pipeline-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A layout whose manifest says its config is `claimed` bytes (with `actual` bytes stored). */
function layoutWithConfig(name: string, claimed: number, actual: Buffer): string {
  const dir = join(work, name);
  writeOciLayout(dir, { 'etc/hostname': Buffer.from('x\n') });
  const hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const blob = (h: string): string => join(dir, 'blobs', 'sha256', h);
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0].digest.slice(7)), 'utf8'));
  writeFileSync(blob(hex(actual)), actual);
  manifest.config = { ...manifest.config, digest: `sha256:${hex(actual)}`, size: claimed };
  const bytes = Buffer.from(JSON.stringify(manifest));
  writeFileSync(blob(hex(bytes)), bytes);
  index.manifests[0] = { ...index.manifests[0], digest: `sha256:${hex(bytes)}`, size: bytes.length };
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
  return dir;
}

async function convert(dir: string): Promise<unknown> {
  return convertImage({
    source: await OciLayoutStore.open(dir), sourceReference: 'v1', target: await OciLayoutStore.create(join(dir, '-out')),
    targetReference: 'nydus', compressor: 'zstd', digester: 'blake3', chunkSize: 1 << 20, workDir: work,
  });
}

describe('regression: source image config read whole without a bound', () => {
  it('refuses a config whose descriptor claims more than MAX_CONFIG_BYTES, before reading it', async () => {
    await expect(convert(layoutWithConfig('huge', MAX_CONFIG_BYTES + 1, Buffer.from('{}')))).rejects.toThrow(/more than/);
  });

  it('refuses a config longer than its descriptor says', async () => {
    await expect(convert(layoutWithConfig('long', 2, Buffer.from(JSON.stringify({ os: 'linux', pad: 'x'.repeat(4096) }))))).rejects.toThrow(/longer than|size|digest/i);
  });
});
