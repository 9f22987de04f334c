// `convert` with keepStargz on OCI layouts: an eStargz lower layer (64 KiB pieces) is kept as it is,
// a plain upper layer is converted (16 KiB chunks), and the image reads back whole through one
// bootstrap of two chunk sizes.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { convertImage } from '../../src/convert/pipeline.js';
import { openRemoteNydusImage } from '../../src/image/remote.js';
import { OciLayoutStore } from '../../src/registry/oci-layout.js';
import { TOC_DIGEST_ANNOTATION } from '../../src/registry/stargz-layers.js';
import type { ImageManifest } from '../../src/registry/media-types.js';
import { sha256, synthEstargz } from '../stargz/helpers.js';

const work = mkdtempSync(join(tmpdir(), 'kept-stargz-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const LOWER = { 'etc/os-release': Buffer.from('ID=kept\n'), 'bin/big': randomBytes(200_000), 'bin/replaced': Buffer.from('lower\n') };
const UPPER = { 'bin/replaced': Buffer.from('upper\n'), 'bin/upper': randomBytes(50_000) };
const esgz = synthEstargz(
  [{ name: 'etc/', type: 'dir' }, { name: 'bin/', type: 'dir' }, ...Object.entries(LOWER).map(([name, content]) => ({ name, content }))],
  { chunkSize: 0x10000 },
);
const tocDigest = `sha256:${sha256(JSON.stringify(esgz.toc, null, '\t'))}`;

/** A gzip tar of `files` (GNU tar) and its diff_id. */
function plainLayer(files: Record<string, Buffer>): { blob: Buffer; diffId: string } {
  const tree = join(work, `tree-${randomBytes(4).toString('hex')}`);
  for (const [path, data] of Object.entries(files)) {
    mkdirSync(join(tree, path, '..'), { recursive: true });
    writeFileSync(join(tree, path), data);
  }
  const tar = execFileSync('tar', ['--numeric-owner', '-C', tree, '-cf', '-', '.']);
  return { blob: gzipSync(tar), diffId: `sha256:${sha256(tar)}` };
}

/** An OCI layout tagged v1: the eStargz layer (annotated with `annotatedToc`) under a plain one. */
async function sourceLayout(annotatedToc: string): Promise<OciLayoutStore> {
  const store = await OciLayoutStore.create(join(work, `source-${randomBytes(4).toString('hex')}`));
  const upper = plainLayer(UPPER);
  const layers = [
    { blob: esgz.blob, diffId: `sha256:${'0'.repeat(64)}`, annotations: { [TOC_DIGEST_ANNOTATION]: annotatedToc } },
    { blob: upper.blob, diffId: upper.diffId },
  ];
  const descriptors = layers.map((l) => ({
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${sha256(l.blob)}`, size: l.blob.length, ...(l.annotations ? { annotations: l.annotations } : {}),
  }));
  for (const [i, d] of descriptors.entries()) await store.putBlob(d, layers[i]!.blob);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
  const configDescriptor = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length };
  await store.putBlob(configDescriptor, config);
  const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDescriptor, layers: descriptors };
  await store.putManifest(Buffer.from(JSON.stringify(manifest)), manifest.mediaType, 'v1');
  return store;
}

async function convertKeeping(source: OciLayoutStore, target: OciLayoutStore): Promise<void> {
  await convertImage({
    source, sourceReference: 'v1', target, targetReference: 'mixed', compressor: 'zstd', digester: 'sha256', chunkSize: 0x4000, keepStargz: true, workDir: work,
  });
}

describe('convert keepStargz', () => {
  it('keeps the eStargz layer and its diff_id, converts the other, and reads every file back', async () => {
    const source = await sourceLayout(tocDigest);
    const target = await OciLayoutStore.create(join(work, 'target'));
    await convertKeeping(source, target);
    const sourceManifest = (await source.getManifest('v1')).parsed as ImageManifest;
    const image = await openRemoteNydusImage(target, 'mixed');
    expect(image.problems).toEqual([]);
    expect(image.manifest.layers[0]).toEqual(sourceManifest.layers[0]);
    expect(image.manifest.layers[1]!.digest).not.toBe(sourceManifest.layers[1]!.digest);
    expect(image.rafs.blobs.map((b) => b.chunkSize)).toEqual([0x10000, 0x4000]);
    const read = async (path: string): Promise<Buffer> => {
      let nid = image.rafs.root;
      for (const name of path.split('/')) nid = image.rafs.lookup(nid, name)!;
      return Buffer.concat(await Promise.all(image.rafs.chunks(nid).map((c) => image.chunks.read(c))));
    };
    for (const [path, content] of Object.entries({ ...LOWER, ...UPPER })) expect((await read(path)).equals(content), path).toBe(true);
    const config = JSON.parse((await target.getBlob(image.manifest.config.digest).then(async (s) => Buffer.concat(await s.toArray()))).toString()) as { rootfs: { diff_ids: string[] } };
    expect(config.rootfs.diff_ids.slice(0, 2)).toEqual([`sha256:${'0'.repeat(64)}`, image.manifest.layers[1]!.digest]);
  });

  it('refuses a kept layer whose TOC is not the one its annotation names', async () => {
    const source = await sourceLayout(`sha256:${sha256('another TOC')}`);
    await expect(convertKeeping(source, await OciLayoutStore.create(join(work, 'refused')))).rejects.toThrow(/layer 1 \(sha256:[0-9a-f]{64}\): .*TOC digest/);
  });
});
