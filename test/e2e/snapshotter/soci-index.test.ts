// A plain gzip image with a SOCI index through our snapshotter with real containerd: busybox's layer
// (left out of the index, as soci leaves out small layers) under the layer of test/fixtures/soci,
// whose zTOC soci-snapshotter's own code made, under a small layer that deletes one of its files;
// the SOCI v1 index refers to the image. At rpull the snapshotter finds the index and commits the
// layers remotely; a container reads the vector's files lazily through the zTOC's spans, each checked
// against its sha256, and sees them as the tar holds them, but for the one deleted above.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOCI_INDEX_V1, SOCI_LAYER_ANNOTATION } from '../../../src/image/soci-index.js';
import { clientForReferences } from '../../../src/registry/client.js';
import { resolveImage } from '../../../src/registry/image-store.js';
import { openImageStore } from '../../../src/registry/index.js';
import { MediaType } from '../../../src/registry/media-types.js';
import { pushReferrer } from '../../../src/registry/referrers.js';
import { pushStargzImage } from '../../helpers/push-stargz-image.js';
import { tarBytes } from '../../helpers/tar-bytes.js';
import {
  containerdUp, ctr, ctrRemote, E2E_DIR, REGISTRY, SNAPSHOTTER, startSnapshotter, stopAndClean, type SnapshotterProcess,
} from '../../snapshotter/env.js';

const IMAGE = `${REGISTRY}/soci-snap/vector:latest`;
const fixtures = join(import.meta.dirname, '..', '..', 'fixtures', 'soci');
const root = mkdtempSync(`${E2E_DIR}-soci-`);
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const EMPTY = { digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 };
const layer = readFileSync(join(fixtures, 'layer.tar.gz'));
const ztoc = readFileSync(join(fixtures, 'layer.ztoc'));
const DELETED = 'vector/text.txt';
const files = (JSON.parse(readFileSync(join(fixtures, 'expected.json'), 'utf8')) as { toc: { name: string; type: string; content_sha256?: string }[] })
  .toc.filter((e) => e.type === 'reg' && /^[\x20-\x7e]+$/.test(e.name) && e.name.length < 100 && e.name !== DELETED);
let sn: SnapshotterProcess;

/** busybox's one layer and its diff_id, from the registry of the global setup. */
async function busyboxLayer(): Promise<{ blob: Buffer; diffId: string }> {
  const ref = `${REGISTRY}/busybox:latest`;
  const { store, reference } = await openImageStore(ref, clientForReferences([[ref, false]], true));
  const { manifest } = await resolveImage(store, reference);
  const d = manifest.parsed.layers[0]!;
  const chunks: Buffer[] = [];
  for await (const c of await store.getBlob(d.digest)) chunks.push(c as Buffer);
  const blob = Buffer.concat(chunks);
  return { blob, diffId: sha256(gunzipSync(blob)) };
}

beforeAll(async () => {
  await containerdUp();
  const { store } = await openImageStore(IMAGE, clientForReferences([[IMAGE, false]], true));
  const base = await busyboxLayer();
  const whiteout = await tarBytes((t) => t.file({ path: 'vector/.wh.text.txt', size: 0 }, Buffer.alloc(0)));
  const top = { blob: gzipSync(whiteout), diffId: sha256(whiteout), annotations: {} };
  const digest = await pushStargzImage(IMAGE, [{ ...base, annotations: {} }, { blob: layer, diffId: sha256(gunzipSync(layer)), annotations: {} }, top]);
  const manifest = await store.getManifest(digest);
  await store.putBlob({ digest: sha256(ztoc), size: ztoc.length }, ztoc);
  await store.putBlob(EMPTY, Buffer.from('{}'));
  const index = {
    schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: SOCI_INDEX_V1, config: { mediaType: SOCI_INDEX_V1, ...EMPTY },
    layers: [{ mediaType: 'application/octet-stream', digest: sha256(ztoc), size: ztoc.length, annotations: { [SOCI_LAYER_ANNOTATION]: sha256(layer) } }],
    subject: { mediaType: MediaType.ociManifest, digest, size: manifest.bytes.length },
  };
  await pushReferrer(store, Buffer.from(JSON.stringify(index)), MediaType.ociManifest);
  sn = await startSnapshotter(root);
  await ctr(['images', 'rm', '--sync', IMAGE]);
}, 600_000);

afterAll(async () => {
  await ctr(['images', 'rm', '--sync', IMAGE]);
  await stopAndClean(sn, root);
}, 120_000);

describe('a plain image with a SOCI index through the snapshotter', () => {
  it('is committed remotely at rpull, and a container reads the files through the zTOC as the tar holds them', async () => {
    const pull = await ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, IMAGE], 300_000);
    expect(pull.code, pull.stderr).toBe(0);
    expect(sn.log().split('\n').filter((l) => l.includes('"msg":"remote layer committed"') && l.includes('"role":"indexed"'))).toHaveLength(3);
    expect(sn.log()).toMatch(/"msg":"plain image has a gzip index: served lazily".*"soci":1/);
    const r = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, IMAGE, 'soci-read', '/bin/sha256sum', ...files.map((f) => `/${f.name}`)], 180_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').sort()).toEqual(files.map((f) => `${f.content_sha256}  /${f.name}`).sort());
    const gone = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, IMAGE, 'soci-gone', '/bin/ls', `/${DELETED}`], 180_000);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr + gone.stdout).toMatch(/No such file/);
  }, 600_000);
});
