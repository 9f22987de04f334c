// convert and check against docker-registry from scripts/e2e (plain, basic and token auth),
// with the images make-images.sh builds: busybox, busybox:multi, debian-ml (gzip, v2s2, zstd).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync as cli, runCliAsync as runCli } from '../helpers/cli.js';
import { E2E_DIR as e2eDir, e2eUp } from '../helpers/e2e.js';
import { logLines, logSize } from '../registry/registry-fixtures.js';
import { diffManifests, erofsImageManifest, treeManifest, type Manifest } from '../helpers/trees.js';

const layout = join(e2eDir, 'images', 'oci');
const REG = '127.0.0.1:5000';
const work = mkdtempSync(join(tmpdir(), 'nydusify-convert-'));
const p = (...parts: string[]) => join(work, ...parts);
const sh = (cmd: string, args: string[], env?: NodeJS.ProcessEnv) =>
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26, env: { ...process.env, ...env } }).toString();
const json = <T>(s: string): T => JSON.parse(s) as T;

interface Descriptor { mediaType: string; digest: string; size: number; annotations?: Record<string, string>; platform?: { os: string; architecture: string } }

function manifestOf(ref: string, accept = 'application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json,application/vnd.oci.image.index.v1+json'): { mediaType?: string; layers: Descriptor[]; manifests?: Descriptor[]; config: Descriptor } {
  const [repo, tag] = ref.replace(`${REG}/`, '').split(':');
  return json(sh('curl', ['-sf', '-H', `Accept: ${accept}`, `http://${REG}/v2/${repo}/manifests/${tag}`]));
}

beforeAll(() => {
  e2eUp('registry-up.sh', ['--auth']);
  e2eUp('make-images.sh');
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('convert', () => {
  it('busybox: Nydus layers, annotations and diff_ids, and check --with-data passes', async () => {
    await cli(['convert', '--source', `${REG}/busybox:latest`, '--target', `${REG}/busybox:nydus-test`, '--plain-http', '--output-json', p('bb.json')]);
    const report = json<{ manifests: { layers: unknown[] }[] }>(readFileSync(p('bb.json'), 'utf8'));
    expect(report.manifests[0]!.layers).toHaveLength(1);
    const m = manifestOf(`${REG}/busybox:nydus-test`);
    expect(m.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.nydus.blob.v1', 'application/vnd.oci.image.layer.v1.tar+gzip']);
    expect(m.layers[0]!.annotations).toEqual({ 'containerd.io/snapshot/nydus-blob': 'true' });
    expect(m.layers[1]!.annotations).toMatchObject({ 'containerd.io/snapshot/nydus-bootstrap': 'true', 'containerd.io/snapshot/nydus-fs-version': '6' });
    const config = json<{ rootfs: { diff_ids: string[] } }>(sh('curl', ['-sf', `http://${REG}/v2/busybox/blobs/${m.config.digest}`]));
    expect(config.rootfs.diff_ids[0]).toBe(m.layers[0]!.digest);
    expect(config.rootfs.diff_ids).toHaveLength(2);
    await cli(['check', '--source', `${REG}/busybox:latest`, '--target', `${REG}/busybox:nydus-test`, '--plain-http', '--with-data']);
  });

  it('busybox:multi with --all-platforms gives a multi-platform target', async () => {
    await cli(['convert', '--source', `${REG}/busybox:multi`, '--target', `${REG}/busybox:multi-nydus`, '--plain-http', '--all-platforms']);
    const index = manifestOf(`${REG}/busybox:multi-nydus`);
    expect(index.manifests!.map((m) => `${m.platform!.os}/${m.platform!.architecture}`).sort()).toEqual(['linux/amd64', 'linux/arm64']);
    await cli(['check', '--source', `${REG}/busybox:multi`, '--target', `${REG}/busybox:multi-nydus`, '--plain-http', '--platform', 'linux/arm64']);
  });

  it('takes nydusify\'s comma-separated --platform: one gives a manifest, more an index of them', async () => {
    const source = manifestOf(`${REG}/busybox:multi`);
    await cli(['convert', '--source', `${REG}/busybox:multi`, '--target', `${REG}/busybox:multi-arm64-nydus`, '--plain-http', '--platform', 'linux/arm64']);
    expect(manifestOf(`${REG}/busybox:multi-arm64-nydus`).layers.at(-1)!.annotations).toMatchObject({ 'containerd.io/snapshot/nydus-bootstrap': 'true' });
    await cli(['convert', '--source', `${REG}/busybox:multi`, '--target', `${REG}/busybox:multi-both-nydus`, '--plain-http', '--platform', 'linux/arm64,linux/amd64']);
    const index = manifestOf(`${REG}/busybox:multi-both-nydus`);
    expect(index.manifests!.map((m) => `${m.platform!.os}/${m.platform!.architecture}`)).toEqual(['linux/arm64', 'linux/amd64']);
    expect(index.manifests!.map((m) => m.digest)).not.toContain(source.manifests![0]!.digest);
    const r = await runCli(['convert', '--source', `${REG}/busybox:multi`, '--target', `${REG}/busybox:x`, '--plain-http', '--platform', 'linux/amd64,linux/s390x']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/no image for platform linux\/s390x \(the index has linux\/amd64, linux\/arm64\)/);
  });

  it('--merge-platform: one index of the source\'s manifests and the Nydus ones (os.features), the source copied over; ours picks the Nydus one', async () => {
    const target = `${REG}/merged/busybox:multi`;
    await cli(['convert', '--source', `${REG}/busybox:multi`, '--target', target, '--plain-http', '--platform', 'linux/amd64,linux/arm64', '--merge-platform']);
    const source = manifestOf(`${REG}/busybox:multi`);
    const index = manifestOf(target);
    const entries = index.manifests! as (Descriptor & { platform: { os: string; architecture: string; 'os.features'?: string[] } })[];
    expect(entries.map((m) => `${m.platform.architecture}${m.platform['os.features'] ? ' nydus' : ''}`)).toEqual(['amd64', 'arm64', 'amd64 nydus', 'arm64 nydus']);
    for (const m of entries.slice(2)) expect(m.platform['os.features']).toEqual(['nydus.remoteimage.v1']);
    // the OCI entries are the source's own manifests, present in the target's repository with their blobs
    const amd64 = source.manifests!.find((m) => m.platform!.architecture === 'amd64')!;
    expect(entries[0]!.digest).toBe(amd64.digest);
    const copied = json<{ layers: Descriptor[] }>(sh('curl', ['-sf', '-H', `Accept: ${amd64.mediaType}`, `http://${REG}/v2/merged/busybox/manifests/${amd64.digest}`]));
    for (const l of copied.layers) sh('curl', ['-sfI', `http://${REG}/v2/merged/busybox/blobs/${l.digest}`]);
    // the image as our tools see it: the Nydus manifest of the platform
    await cli(['check', '--source', `${REG}/busybox:multi`, '--target', target, '--plain-http', '--platform', 'linux/arm64']);
  });

  it('--with-referrer: the Nydus manifest names the source manifest as its subject', async () => {
    await cli(['convert', '--source', `${REG}/busybox:latest`, '--target', `${REG}/busybox:referrer-nydus`, '--plain-http', '--with-referrer']);
    const source = manifestOf(`${REG}/busybox:latest`);
    const sourceDigest = sh('bash', ['-c', `curl -sf -H 'Accept: ${source.mediaType ?? 'application/vnd.oci.image.manifest.v1+json'}' http://${REG}/v2/busybox/manifests/latest | sha256sum`]).slice(0, 64);
    const m = json<{ subject?: Descriptor }>(sh('curl', ['-sf', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json', `http://${REG}/v2/busybox/manifests/referrer-nydus`]));
    expect(m.subject).toMatchObject({ digest: `sha256:${sourceDigest}` });
  });

  it('--chunk-dict: chunks a dictionary image or bootstrap has are referred to in its blobs, which become the image\'s data layers', async () => {
    const dict = `${REG}/dict/busybox:nydus`;
    await cli(['convert', '--source', `${REG}/busybox:latest`, '--target', dict, '--plain-http']);
    const dictBlob = manifestOf(dict).layers[0]!.digest;
    // the same files again, into another repository: nothing left to store but the dictionary's blob, mounted over
    const target = `${REG}/app/busybox:dedup`;
    await cli(['convert', '--source', `${REG}/busybox:latest`, '--target', target, '--plain-http', '--chunk-dict', `bootstrap:registry:${dict}`, '--output-json', p('dict.json')]);
    const stats = json<{ manifests: { layers: { stats: { distinctChunks: number; dictChunks: number } }[] }[] }>(readFileSync(p('dict.json'), 'utf8')).manifests[0]!.layers[0]!.stats;
    expect(stats.distinctChunks).toBe(0);
    expect(stats.dictChunks).toBeGreaterThan(0);
    const m = manifestOf(target);
    expect(m.layers.map((l) => l.digest)).toContain(dictBlob);
    await cli(['check', '--source', `${REG}/busybox:latest`, '--target', target, '--plain-http', '--with-data']);
    // a bootstrap file as the dictionary: its blobs must be in the target's repository already
    sh('bash', ['-c', `curl -sf http://${REG}/v2/dict/busybox/blobs/${manifestOf(dict).layers.at(-1)!.digest} | tar -xzO image/image.boot > ${p('dict.boot')}`]);
    await cli(['convert', '--source', `${REG}/busybox:latest`, '--target', `${REG}/dict/busybox:dedup-local`, '--plain-http', '--chunk-dict', `bootstrap:local:${p('dict.boot')}`]);
    expect(manifestOf(`${REG}/dict/busybox:dedup-local`).layers.map((l) => l.digest)).toContain(dictBlob);
    await cli(['check', '--target', `${REG}/dict/busybox:dedup-local`, '--plain-http', '--with-data']);
    const r = await runCli(['convert', '--source', `${REG}/busybox:latest`, '--target', `${REG}/elsewhere/busybox:x`, '--plain-http', '--chunk-dict', `bootstrap:local:${p('dict.boot')}`]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/the chunk dictionary's blob [0-9a-f]{64} is not in .*elsewhere\/busybox/);
    expect((await runCli(['convert', '--source', `${REG}/busybox:latest`, '--target', `${REG}/x/y:z`, '--chunk-dict', 'dict.boot'])).stderr).toMatch(/expected bootstrap:registry:REF or bootstrap:local:PATH/);
  });

  it('--build-cache: a layer converted before is taken from the cache image, converted the same way only', async () => {
    // a cache of this run alone: the registry outlives test runs
    const cache = `${REG}/cache/nydus:build-cache-${process.pid}-${Date.now()}`;
    type Report = { digest: string; manifests: { layers: { cached?: boolean; blobDigest: string }[] }[] };
    const convert = async (tag: string, extra: string[] = []): Promise<Report> => {
      await cli(['convert', '--source', `${REG}/busybox:latest`, '--target', `${REG}/busybox:${tag}`, '--plain-http', '--build-cache', cache, '--output-json', p(`${tag}.json`), ...extra]);
      return json<Report>(readFileSync(p(`${tag}.json`), 'utf8'));
    };
    const first = await convert('cache-1');
    expect(first.manifests[0]!.layers[0]!.cached).toBeUndefined();
    const again = await convert('cache-2');
    expect(again.manifests[0]!.layers[0]!.cached).toBe(true);
    // the same image, byte for byte: the cached blob and layer bootstrap are the converted ones
    expect(again.digest).toBe(first.digest);
    await cli(['check', '--source', `${REG}/busybox:latest`, '--target', `${REG}/busybox:cache-2`, '--plain-http', '--with-data']);
    // another chunk size is another conversion: converted, and both records kept
    const other = await convert('cache-3', ['--chunk-size', '0x40000']);
    expect(other.manifests[0]!.layers[0]!.cached).toBeUndefined();
    expect((await convert('cache-4', ['--chunk-size', '0x40000'])).manifests[0]!.layers[0]!.cached).toBe(true);
    expect((await convert('cache-5')).manifests[0]!.layers[0]!.cached).toBe(true);
    const records = manifestOf(cache).layers;
    expect(records.map((l) => l.digest)).toEqual(expect.arrayContaining([first.manifests[0]!.layers[0]!.blobDigest, other.manifests[0]!.layers[0]!.blobDigest]));
  });

  it('reaches a loopback registry in plain HTTP without --plain-http, as containerd does', async () => {
    await cli(['convert', '--source', `${REG}/busybox:latest`, '--target', `${REG}/busybox:loopback-nydus`]);
    await cli(['check', '--source', `${REG}/busybox:latest`, '--target', `${REG}/busybox:loopback-nydus`, '--with-data']);
  });

  it('reads nydusify\'s environment variables for flags not given (switches as Go reads them)', async () => {
    const env = { SOURCE: `${REG}/debian-ml:v2s2`, TARGET: `${REG}/debian-ml:env-nydus`, PLAIN_HTTP: 'true', OCI: '1', FS_CHUNK_SIZE: '0x40000' };
    await cli(['convert'], { env });
    expect(manifestOf(`${REG}/debian-ml:env-nydus`).mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    // a flag on the command line wins; OCI=false is false
    await cli(['convert', '--target', `${REG}/debian-ml:env-docker-nydus`], { env: { ...env, OCI: 'false' } });
    expect(manifestOf(`${REG}/debian-ml:env-docker-nydus`).mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    const r = await runCli(['convert'], { env: { ...env, OCI: 'maybe' } });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/OCI="maybe": expected true or false/);
  });

  it('takes nydusify\'s flags: --oci makes a Docker-typed source OCI, --fs-chunk-size, --prefetch-dir; check --target alone, BOOTSTRAP positional, view', async () => {
    const target = `${REG}/debian-ml:v2s2-oci-nydus`;
    await cli(['convert', '--source', `${REG}/debian-ml:v2s2`, '--target', target, '--plain-http', '--oci', '--fs-chunk-size', '0x40000', '--prefetch-dir', '/usr/bin']);
    const m = manifestOf(target);
    expect(m.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(m.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(m.layers.at(-1)!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    // the Nydus image alone, every chunk read
    await cli(['check', '--target', target, '--plain-http', '--with-data']);
    sh('bash', ['-c', `curl -sf http://${REG}/v2/debian-ml/blobs/${m.layers.at(-1)!.digest} | tar -xzO image/image.boot > ${p('oci.boot')}`]);
    const info = json<{ chunkSize: number; prefetch: string[] }>((await runCli(['inspect', '--json', '--no-tree', p('oci.boot')])).stdout);
    expect(info.chunkSize).toBe(0x40000);
    expect(info.prefetch).toEqual(['/usr/bin']);
    // nydus-image's positional bootstrap
    await cli(['check', p('oci.boot')]);
    const r = await runCli(['check', p('oci.boot'), '--target', target, '--plain-http']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/a bootstrap file is checked on its own/);
    expect((await runCli(['view', '--help'])).stdout).toMatch(/--mount-path/);
  });

  describe('debian-ml', () => {
    let reference: Manifest;
    beforeAll(() => {
      sh('umoci', ['unpack', '--image', `${layout}:debian-ml`, p('bundle')]);
      reference = treeManifest(p('bundle', 'rootfs'));
    });

    it.each(['latest', 'v2s2', 'zstd'])('%s: check --with-data passes and the tree equals umoci unpack', async (tag) => {
      await cli(['convert', '--source', `${REG}/debian-ml:${tag}`, '--target', `${REG}/debian-ml:${tag}-nydus`, '--plain-http']);
      await cli(['check', '--source', `${REG}/debian-ml:${tag}`, '--target', `${REG}/debian-ml:${tag}-nydus`, '--plain-http', '--with-data']);
      if (tag === 'v2s2') expect(manifestOf(`${REG}/debian-ml:${tag}-nydus`).mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
      // the same image into an OCI layout, whose blob directory the local tools read
      const out = p(`layout-${tag}`);
      await cli(['convert', '--source', `${REG}/debian-ml:${tag}`, '--target', `oci:${out}:nydus`, '--plain-http']);
      const index = json<{ manifests: Descriptor[] }>(readFileSync(join(out, 'index.json'), 'utf8'));
      const blobs = join(out, 'blobs', 'sha256');
      const m = json<{ layers: Descriptor[] }>(readFileSync(join(blobs, index.manifests[0]!.digest.slice(7)), 'utf8'));
      sh('tar', ['-xzf', join(blobs, m.layers.at(-1)!.digest.slice(7)), '-C', out]);
      await cli(['export', '--block', '--bootstrap', join(out, 'image', 'image.boot'), '--blob-dir', blobs, '--output', p(`${tag}.img`)]);
      const got = erofsImageManifest(p(`${tag}.img`));
      // umoci makes rootfs/ itself, so the root's mtime is not the image's
      expect(diffManifests(reference, got, (path, field) => path === '.' && field === 'mtime')).toEqual([]);
    });
  });
});

describe('convert with auth and failures', () => {
  const dockerConfig = (user: string, pass: string, host: string): NodeJS.ProcessEnv => {
    const dir = mkdtempSync(p('docker-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${pass}`).toString('base64') } } }));
    return { DOCKER_CONFIG: dir };
  };

  it('pushes to a basic-auth registry with docker config credentials; a wrong password is a clear error', async () => {
    await cli(['convert', '--source', `${REG}/busybox:latest`, '--target', '127.0.0.1:5001/busybox:nydus', '--plain-http'], { env: dockerConfig('testuser', 'testpass', '127.0.0.1:5001') });
    const r = await runCli(['convert', '--source', `${REG}/busybox:latest`, '--target', '127.0.0.1:5001/busybox:nydus2', '--plain-http'], { env: dockerConfig('testuser', 'wrong', '127.0.0.1:5001') });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/auth|401|unauthorized/i);
  });

  it('uses token auth (OAuth2 POST with credentials) both ways', async () => {
    const env = dockerConfig('testuser', 'testpass', '127.0.0.1:5003');
    // only this run's token requests: the log keeps those of every run before
    const since = logSize('token-server');
    await cli(['convert', '--source', `${REG}/busybox:latest`, '--target', '127.0.0.1:5003/busybox:nydus', '--plain-http'], { env });
    const pushed = logLines('token-server', since, '"name":"busybox"');
    expect(pushed.some((l) => / POST \/token form:password user=testuser .*"actions":\["pull","push"\]/.test(l))).toBe(true);
    const checked = logSize('token-server');
    await cli(['check', '--source', `${REG}/busybox:latest`, '--target', '127.0.0.1:5003/busybox:nydus', '--plain-http', '--with-data'], { env });
    expect(logLines('token-server', checked, '"name":"busybox"').some((l) => / POST \/token form:password user=testuser /.test(l))).toBe(true);
  });

  it('says the registry is unreachable, after bounded retries', async () => {
    const started = Date.now();
    const r = await runCli(['convert', '--source', '127.0.0.1:5999/busybox:latest', '--target', `${REG}/x:y`, '--plain-http', '--push-retry-count', '1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/unreachable|ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('refuses a corrupt source blob and pushes no manifest', async () => {
    const src = p('corrupt-layout');
    cpSync(layout, src, { recursive: true });
    const index = json<{ manifests: (Descriptor & { annotations: Record<string, string> })[] }>(readFileSync(join(src, 'index.json'), 'utf8'));
    const desc = index.manifests.find((m) => m.annotations['org.opencontainers.image.ref.name'] === 'busybox')!;
    const m = json<{ layers: Descriptor[] }>(readFileSync(join(src, 'blobs', 'sha256', desc.digest.slice(7)), 'utf8'));
    const layerPath = join(src, 'blobs', 'sha256', m.layers[0]!.digest.slice(7));
    const data = readFileSync(layerPath);
    data[data.length - 20]! ^= 0xff;
    writeFileSync(layerPath, data);
    const r = await runCli(['convert', '--source', `oci:${src}:busybox`, '--target', `${REG}/corrupt-test:nydus`, '--plain-http']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/layer 1 .*(digest|corrupt|gzip)/i);
    const status = sh('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${REG}/v2/corrupt-test/manifests/nydus`]);
    expect(status).toBe('404');
  });
});
