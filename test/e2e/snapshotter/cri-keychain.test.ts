// The CRI keychain end to end (needs root, /dev/fuse, runc and the e2e registries): a containerd of
// this test's own with its CRI plugin on, whose image pulls go to our snapshotter (a proxy plugin,
// snapshot annotations on, as a Kubernetes node has it), and our snapshotter with --cri-keychain in
// front of containerd's image service, as kubelet's --image-service-endpoint would point at it. A
// Nydus busybox lives in the basic-auth registry (nothing anonymous); the snapshotter has no docker
// config and CRI passes no pull secret labels, so the only credentials it can have are those of the
// PullImage request, which this test sends through the snapshotter's socket as kubelet would. The
// pull is lazy (remote layers committed, the image mounted at pull), a container of the image runs,
// the image service's answers and errors come back unchanged, and RemoveImage passes through.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageMounts } from '../../../src/snapshotter/image-mounts.js';
import { cliAsync } from '../../helpers/cli.js';
import { waitFor } from '../../helpers/wait-for.js';
import { imageServiceClient } from '../../snapshotter/cri-api.js';
import { E2E_DIR, killLeftovers, run, type SnapshotterProcess, spawnSnapshotter } from '../../snapshotter/env.js';

const PRIVATE_REGISTRY = '127.0.0.1:5001';
const TARGET = `${PRIVATE_REGISTRY}/busybox:cri-keychain-test`;
const USER = 'testuser';
const PASSWORD = 'testpass';
const SNAPSHOTTER = 'nydusify-cri';
const work = mkdtempSync(`${E2E_DIR}-cri-`);
const p = (...parts: string[]) => join(work, ...parts);
const root = p('root');
const snapshotterSock = p('snapshotter.sock');
const containerdSock = p('containerd', 'containerd.sock');
let containerd: ChildProcess | undefined;
let sn: SnapshotterProcess | undefined;
let cri: ReturnType<typeof imageServiceClient> | undefined;

const ctr = (args: string[]) => run('ctr', ['--address', containerdSock, '-n', 'k8s.io', ...args], {}, 120_000);

/** containerd with its CRI plugin: images pulled through CRI are unpacked by our snapshotter; the private registry is plain HTTP. */
async function startContainerd(): Promise<void> {
  mkdirSync(p('certs.d', PRIVATE_REGISTRY), { recursive: true });
  writeFileSync(p('certs.d', PRIVATE_REGISTRY, 'hosts.toml'), `server = "http://${PRIVATE_REGISTRY}"\n[host."http://${PRIVATE_REGISTRY}"]\n  capabilities = ["pull", "resolve"]\n`);
  writeFileSync(p('containerd.toml'), [
    'version = 2', `root = "${p('containerd', 'root')}"`, `state = "${p('containerd', 'state')}"`,
    '[grpc]', `  address = "${containerdSock}"`, '[ttrpc]', `  address = "${containerdSock}.ttrpc"`,
    '[plugins."io.containerd.grpc.v1.cri"]', '  stream_server_address = "127.0.0.1"', '  stream_server_port = "0"',
    '[plugins."io.containerd.grpc.v1.cri".containerd]', `  snapshotter = "${SNAPSHOTTER}"`, '  disable_snapshot_annotations = false',
    '[plugins."io.containerd.grpc.v1.cri".cni]', `  conf_dir = "${p('cni')}"`,
    '[plugins."io.containerd.grpc.v1.cri".registry]', `  config_path = "${p('certs.d')}"`,
    '[proxy_plugins]', `  [proxy_plugins.${SNAPSHOTTER}]`, '    type = "snapshot"', `    address = "${snapshotterSock}"`, '',
  ].join('\n'));
  mkdirSync(p('containerd'), { recursive: true });
  const log = openSync(p('containerd.log'), 'a');
  containerd = spawn('containerd', ['--config', p('containerd.toml')], { stdio: ['ignore', log, log] });
  closeSync(log);
  await waitFor(async () => (await ctr(['version'])).code === 0, 'containerd answering', 30_000, 200);
}

beforeAll(async () => {
  // the conversion's credentials: a docker config of the test's own, never the snapshotter's
  mkdirSync(p('docker'));
  writeFileSync(p('docker', 'config.json'), JSON.stringify({ auths: { [PRIVATE_REGISTRY]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
  mkdirSync(p('no-docker-config'));
  await cliAsync(['convert', '--source', '127.0.0.1:5000/busybox:latest', '--target', TARGET, '--plain-http'], { env: { DOCKER_CONFIG: p('docker') } });
  await startContainerd();
  sn = await spawnSnapshotter(root, ['--address', snapshotterSock, '--root', root, '--plain-http', '--cri-keychain', '--image-service-address', containerdSock], { DOCKER_CONFIG: p('no-docker-config') });
  cri = imageServiceClient(snapshotterSock);
}, 180_000);

afterAll(async () => {
  cri?.close();
  await ctr(['containers', 'rm', 'cri-keychain']).catch(() => undefined);
  await ctr(['images', 'rm', '--sync', TARGET]).catch(() => undefined);
  sn?.child.kill('SIGTERM');
  await sn?.exit;
  if (containerd && containerd.exitCode === null) {
    const exited = new Promise((r) => containerd!.once('exit', r));
    containerd.kill('SIGTERM');
    await exited;
  }
  await killLeftovers(root);
  await killLeftovers(p('containerd'));
  rmSync(work, { recursive: true, force: true });
}, 120_000);

describe('the CRI keychain', () => {
  it('refuses nothing itself: a pull without credentials fails as containerd says, and nothing is mounted', async () => {
    await expect(cri!.call('PullImage', { image: { image: TARGET } })).rejects.toMatchObject({ details: expect.stringMatching(/401|unauthorized|authoriz/i) });
    expect(sn!.log()).not.toContain('remote layer committed');
  }, 120_000);

  it('pulls a private image lazily with the credentials of kubelet\'s PullImage, and a container of it runs', async () => {
    const pulled = await cri!.call<{ imageRef: string }>('PullImage', { image: { image: TARGET }, auth: { username: USER, password: PASSWORD } });
    expect(pulled.imageRef).toMatch(/^sha256:[0-9a-f]{64}$/);
    // committed remotely (containerd unpacked nothing), and the image mounted as the pull ended
    const committed = sn!.log().split('\n').filter((l) => l.includes('"remote layer committed"')).map((l) => JSON.parse(l) as { ref: string; digest: string; role: 'bootstrap' | 'blob' });
    expect(committed.length).toBeGreaterThan(0);
    expect(committed.every((c) => c.ref === TARGET)).toBe(true);
    const bootstrap = committed.find((c) => c.role === 'bootstrap')!;
    await waitFor(() => sn!.log().includes(`"msg":"image daemon started","image":"${ImageMounts.nameOf(bootstrap)}"`), 'the image mounted at pull', 30_000, 50);
    const status = await cri!.call<{ image: { repoTags: string[] } }>('ImageStatus', { image: { image: TARGET } });
    expect(status.image.repoTags).toContain(TARGET);
    const r = await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, TARGET, 'cri-keychain', '/bin/busybox', 'sh', '-c', 'echo runs; wc -c < /bin/busybox']);
    expect(r.stdout, `ctr run exited ${r.code}: ${r.stderr}`).toMatch(/^runs\n\d+\n$/);
    expect(sn!.log()).not.toContain(PASSWORD);
  }, 180_000);

  it('passes RemoveImage on (the image is gone) and answers a bad request without going down', async () => {
    await cri!.call('RemoveImage', { image: { image: TARGET } });
    expect((await cri!.call<{ images: { repoTags: string[] }[] }>('ListImages', {})).images.flatMap((i) => i.repoTags)).not.toContain(TARGET);
    // containerd's own refusal of a bad reference comes back as containerd gave it
    await expect(cri!.call('PullImage', { image: { image: 'UPPER/case:bad' } })).rejects.toMatchObject({ code: grpc.status.UNKNOWN });
    await expect(cri!.call('ImageStatus', { image: { image: TARGET } })).resolves.toBeDefined();
  }, 60_000);
});
