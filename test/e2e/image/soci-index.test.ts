// End to end, a plain gzip image that soci-snapshotter indexed, served lazily through its SOCI index
// (needs root, /dev/fuse and the registry of the global setup). The layer and its zTOC are soci's own
// (test/fixtures/soci, made by soci-snapshotter's ztoc code); the SOCI index manifests around them
// are written as soci writes them: v1 a referrer of the image (here through the referrers tag
// schema), v2 named by the image manifest's annotation. `mount --target` finds either, and every
// file reads back as the tar holds it; a corrupt byte of the layer is EIO for the files of its span
// alone; a layer the index leaves out is read whole and indexed at mount.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOCI_INDEX_DIGEST_ANNOTATION, SOCI_INDEX_V1, SOCI_INDEX_V2, SOCI_LAYER_ANNOTATION } from '../../../src/image/soci-index.js';
import { clientForReferences } from '../../../src/registry/client.js';
import { openImageStore } from '../../../src/registry/index.js';
import { MediaType, type Descriptor } from '../../../src/registry/media-types.js';
import { pushReferrer } from '../../../src/registry/referrers.js';
import { cleanUp, type Daemon, startDaemon, stopWithStats, waitMounted } from '../../helpers/daemon.js';
import { pushStargzImage } from '../../helpers/push-stargz-image.js';

const REGISTRY = '127.0.0.1:5000';
const REPO = `${REGISTRY}/soci-index-test/vector`;
const fixtures = join(import.meta.dirname, '..', '..', 'fixtures', 'soci');
const work = mkdtempSync(join(tmpdir(), 'nydusify-soci-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const EMPTY = { digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 };
const layer = readFileSync(join(fixtures, 'layer.tar.gz'));
const ztoc = readFileSync(join(fixtures, 'layer.ztoc'));
const diffId = sha256(gunzipSync(layer));
const expected = (JSON.parse(readFileSync(join(fixtures, 'expected.json'), 'utf8')) as { toc: { name: string; type: string; uncompressed_offset: number; uncompressed_size: number; content_sha256?: string }[] })
  .toc.filter((e) => e.type === 'reg');

/** The SOCI index manifest soci writes for `layers` (zTOC, image layer), v1 with its subject, v2 without. */
function sociIndex(version: 1 | 2, entries: [Buffer, Buffer][], subject?: Descriptor): Buffer {
  const type = version === 1 ? SOCI_INDEX_V1 : SOCI_INDEX_V2;
  return Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: type, config: { mediaType: type, ...EMPTY },
    layers: entries.map(([z, l]) => ({
      mediaType: 'application/octet-stream', digest: sha256(z), size: z.length,
      annotations: { [SOCI_LAYER_ANNOTATION]: sha256(l), 'com.amazon.soci.image-layer-mediaType': MediaType.ociLayerGzip, 'com.amazon.soci.span-size': '65536' },
    })),
    ...(subject ? { subject } : {}),
    annotations: { 'com.amazon.soci.build-tool-identifier': 'AWS SOCI CLI v0.2' },
  }));
}

async function store(tag: string) {
  const ref = `${REPO}:${tag}`;
  return (await openImageStore(ref, clientForReferences([[ref, false]], true))).store;
}

/** Pushes `blob` as the image `tag` with a v1 SOCI index of `entries` referring to it. */
async function pushV1(tag: string, blob: Buffer, entries: [Buffer, Buffer][]): Promise<void> {
  const s = await store(tag);
  const digest = await pushStargzImage(`${REPO}:${tag}`, [{ blob, diffId, annotations: {} }]);
  const manifest = await s.getManifest(digest);
  for (const [z] of entries) await s.putBlob({ digest: sha256(z), size: z.length }, z);
  await s.putBlob(EMPTY, Buffer.from('{}'));
  await pushReferrer(s, sociIndex(1, entries, { mediaType: MediaType.ociManifest, digest, size: manifest.bytes.length }), MediaType.ociManifest);
}

beforeAll(async () => {
  await pushV1('v1', layer, [[ztoc, layer]]);
  // v2: the index is pushed first, then the image manifest that names it
  const s = await store('v2');
  await s.putBlob({ digest: sha256(ztoc), size: ztoc.length }, ztoc);
  await s.putBlob(EMPTY, Buffer.from('{}'));
  const index = sociIndex(2, [[ztoc, layer]]);
  await s.putManifest(index, MediaType.ociManifest);
  await pushStargzImage(`${REPO}:v2`, [{ blob: layer, diffId, annotations: {} }], { [SOCI_INDEX_DIGEST_ANNOTATION]: sha256(index) });
  // the layer with one byte changed in its fourth span, indexed by the same zTOC
  const bad = Buffer.from(layer);
  bad[200_000] ^= 0x55;
  await pushV1('corrupt', bad, [[ztoc, bad]]);
  await pushV1('unindexed', layer, []);
}, 120_000);

afterAll(() => cleanUp(daemons, work));

async function mounted(tag: string): Promise<Daemon> {
  const d = startDaemon(['--target', `${REPO}:${tag}`, '--plain-http', '--cache-dir', p(`cache-${tag}`)], p(`mnt-${tag}`));
  daemons.push(d);
  await waitMounted(d, undefined, undefined, 'vector');
  return d;
}

const fileDigest = (path: string): string => sha256(readFileSync(path));

describe('mount --target of a SOCI-indexed image', () => {
  it('reads a file from its span alone', async () => {
    const d = await mounted('v1');
    const last = expected.find((e) => e.name === 'vector/last.txt')!;
    expect(fileDigest(join(d.mnt, last.name))).toBe(`sha256:${last.content_sha256}`);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    // its span is the layer's last, about a twelfth of it
    expect(stats.fetchedBytes).toBeGreaterThan(0);
    expect(stats.fetchedBytes).toBeLessThan(layer.length / 4);
  });

  it.each(['v1', 'v2'])('finds the %s index and serves every file as the tar holds it', async (tag) => {
    const d = await mounted(tag);
    for (const e of expected) expect(fileDigest(join(d.mnt, e.name)), e.name).toBe(`sha256:${e.content_sha256}`);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(stats.corruptChunks).toBe(0);
  });

  it('a corrupt byte of the layer is EIO for the files of its span, the rest read fine', async () => {
    const d = await mounted('corrupt');
    const results = expected.map((e) => {
      try {
        return { e, got: fileDigest(join(d.mnt, e.name)) };
      } catch (err) {
        return { e, err: (err as NodeJS.ErrnoException).code };
      }
    });
    const failed = results.filter((r) => r.err);
    expect(failed.length).toBeGreaterThan(0);
    for (const r of failed) expect(r.err, r.e.name).toBe('EIO');
    // the files wholly outside the span with the bad byte read fine
    // (the bad byte is in the span of output 482697 to 563576)
    const clean = results.filter((r) => r.e.uncompressed_offset + r.e.uncompressed_size <= 482_697 || r.e.uncompressed_offset >= 563_576);
    expect(clean.map((r) => r.e.name)).toEqual(['vector/text.txt', 'vector/last.txt']);
    for (const r of clean) expect(r.got, r.e.name).toBe(`sha256:${r.e.content_sha256}`);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(stats.corruptChunks).toBeGreaterThan(0);
  });

  it('a layer the index leaves out is read whole and indexed at mount', async () => {
    const d = await mounted('unindexed');
    for (const e of expected) expect(fileDigest(join(d.mnt, e.name)), e.name).toBe(`sha256:${e.content_sha256}`);
    const { code, stats } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(stats.corruptChunks).toBe(0);
  });
});
