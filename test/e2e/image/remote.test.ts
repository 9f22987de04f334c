// Opening a Nydus image from a registry (what every lazy mount does first) against the real registry of
// the global setup: two small images converted here, then served as a hostile registry would, through a
// local proxy that swaps the bootstrap layer's bytes, or recombined so one image's bootstrap names the
// other's blob. The image is refused with a clear error both times, never opened (nor mounted by a daemon).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { connectNydusImage, openRemoteNydusImage } from '../../../src/image/remote.js';
import { bootstrapLayer } from '../../../src/convert/nydus-image.js';
import { DigestMismatchError } from '../../../src/registry/errors.js';
import { MediaType, type ImageManifest } from '../../../src/registry/media-types.js';
import { cliAsync, runCliAsync } from '../../helpers/cli.js';
import { forward, startServer } from '../../registry/http-fixtures.js';
import { PLAIN, repo, sha256, useRegistries } from '../../registry/registry-fixtures.js';

const ctx = useRegistries();
const name = repo('remote-image');

/** An OCI layout holding one gzip layer of `files`, tagged v1. */
function ociLayout(dir: string, files: Record<string, string>): string {
  const tree = join(dir, 'tree');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(tree, path, '..'), { recursive: true });
    writeFileSync(join(tree, path), text);
  }
  const tar = execFileSync('tar', ['--numeric-owner', '-C', tree, '-cf', '-', '.']);
  const blobs = join(dir, 'oci', 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer) => {
    writeFileSync(join(blobs, sha256(data).slice('sha256:'.length)), data);
    return { digest: sha256(data), size: data.length };
  };
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(tar)] } })));
  const manifest = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, ...config }, layers: [{ mediaType: MediaType.ociLayerGzip, ...put(gzipSync(tar)) }] })));
  writeFileSync(join(dir, 'oci', 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'oci', 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.ociManifest, ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
  return `oci:${join(dir, 'oci')}:v1`;
}

beforeAll(async () => {
  // random content: blobs of this run only
  const nonce = sha256(Buffer.from(`${Date.now()} ${Math.random()}`));
  await Promise.all(
    ['a', 'b'].map((tag) =>
      cliAsync(['convert', '--source', ociLayout(join(ctx.work, tag), { 'etc/os-release': `ID=${tag}\n`, 'etc/nonce': nonce }), '--target', `${PLAIN}/${name}:${tag}`, '--plain-http']),
    ),
  );
}, 60_000);

describe('opening a Nydus image from a registry', () => {
  it('regression: bootstrap of a digest-pinned image is verified', async () => {
    const store = ctx.client().repository(`${PLAIN}/${name}`);
    const { digest, parsed } = await store.getManifest('a');
    const layer = (parsed as ImageManifest).layers.at(-1)!;
    // the same image, one file renamed in its bootstrap: a valid bootstrap that is not the one the manifest names
    const { bootstrap } = await openRemoteNydusImage(store, digest);
    const at = bootstrap.indexOf('os-release');
    expect(at).toBeGreaterThan(0);
    const tampered = Buffer.from(bootstrap);
    tampered.write('os-relea5e', at);
    const swapped = (await bootstrapLayer(tampered, false)).blob;

    const proxy = ctx.track(
      await startServer((req, res) => {
        if (req.method === 'GET' && req.url === `/v2/${name}/blobs/${layer.digest}`) return void res.writeHead(200, { 'content-length': String(swapped.length) }).end(swapped);
        forward(req, res, PLAIN);
      }),
    );
    const opened = connectNydusImage(`${proxy.host}/${name}@${digest}`, { plainHttp: true, retries: 0 });
    await expect(opened).rejects.toThrow(DigestMismatchError);
    await expect(opened).rejects.toThrow(`digest mismatch for ${layer.digest} from ${proxy.host}/${name}: the bytes hash to ${sha256(swapped)}`);
    // and a daemon asked to serve it exits with that error instead of mounting it
    const mnt = join(ctx.work, 'mnt');
    mkdirSync(mnt);
    const daemon = await runCliAsync(['daemon', '--target', `${proxy.host}/${name}@${digest}`, '--plain-http', '--apisock', join(ctx.work, 'api.sock'), '--mountpoint', mnt, '--cache-dir', join(ctx.work, 'cache')]);
    expect(daemon.status).not.toBe(0);
    expect(daemon.stderr).toContain(`digest mismatch for ${layer.digest}`);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(mnt);
  });

  it('regression: a bootstrap naming a blob its manifest does not list is refused', async () => {
    const store = ctx.client().repository(`${PLAIN}/${name}`);
    const a = (await store.getManifest('a')).parsed as ImageManifest;
    const b = (await store.getManifest('b')).parsed as ImageManifest;
    // image a's data layer with image b's bootstrap (whose blob sits in the same repository)
    const mixed: ImageManifest = { ...a, layers: [a.layers[0]!, b.layers.at(-1)!] };
    await store.putManifest(Buffer.from(JSON.stringify(mixed)), MediaType.ociManifest, 'mixed');
    const blobB = b.layers[0]!.digest.slice('sha256:'.length);
    expect(blobB).not.toBe(a.layers[0]!.digest.slice('sha256:'.length));
    await expect(openRemoteNydusImage(store, 'mixed')).rejects.toThrow(`${PLAIN}/${name}: the bootstrap refers to blob ${blobB}, which is not a data layer of the image`);
    // the images themselves open
    for (const tag of ['a', 'b']) expect((await openRemoteNydusImage(store, tag)).problems).toEqual([]);
  });
});
