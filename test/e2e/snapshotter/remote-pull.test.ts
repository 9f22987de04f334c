// Pulls driven over the snapshotter's gRPC socket as containerd drives them, and its system API. A private image through
// the snapshotter with the credentials of nydus-snapshotter's pull secret
// labels (containerd.io/snapshot/pullusername and pullsecret, as a Kubernetes node's client sets them
// on the pull's Prepare calls). Needs root, /dev/fuse and the e2e registries: busybox is converted
// into the basic-auth registry (docker-registry with an htpasswd: nothing anonymous; the token-auth one
// of the e2e setup allows anonymous pulls, and its plain-HTTP realm on another port would not be sent
// a password by our client unless declared plain HTTP too). Our snapshotter runs with no docker config
// at all, and is driven over its gRPC socket as containerd drives it: each layer prepared with its
// remote labels (committed at once), then a container's snapshot on top, whose overlay the kernel
// mounts and a program of the image runs in. Without the labels the same image cannot be mounted,
// and nothing is left behind. And regression: a Cleanup (containerd's garbage collection runs when
// it will) during a pull, or after it, leaves the image mounted at pull for its container (it was
// unmounted, holding every other call for seconds).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { DaemonClient } from '../../../src/daemon/api-client.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Label } from '../../../src/snapshotter/labels.js';
import { cliAsync } from '../../helpers/cli.js';
import { runAsync } from '../../helpers/run.js';
import { freePort } from '../../helpers/free-port.js';
import { waitFor } from '../../helpers/wait-for.js';
import { snapshotsClient, type SnapshotsClient } from '../../snapshotter/grpc-client.js';
import { killLeftovers, registryLogOffset, registryLogSince, type SnapshotterProcess, spawnSnapshotter } from '../../snapshotter/env.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const PRIVATE_REGISTRY = '127.0.0.1:5001';
const TARGET = `${PRIVATE_REGISTRY}/busybox:pull-secret-test`;
const USER = 'testuser';
const PASSWORD = 'testpass';
const work = mkdtempSync(join(tmpdir(), 'nydusify-pull-secret-'));
const p = (...parts: string[]) => join(work, ...parts);
const root = p('root');
const socket = p('snapshotter.sock');
const systemSocket = p('system.sock');
let metricsPort = 0;

/** A request to the system API: its status and JSON body. */
function system(method: string, path: string, body?: string): Promise<{ status: number; body: unknown }> {
  return new Promise((done, fail) => {
    const req = request({ socketPath: systemSocket, method, path }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => done({ status: res.statusCode!, body: text === '' ? undefined : JSON.parse(text) }));
    });
    req.on('error', fail);
    req.end(body);
  });
}

let client: SnapshotsClient | undefined;
let snapshotter: SnapshotterProcess | undefined;
const mounted: string[] = [];

const call = <T>(method: string, req: unknown): Promise<T> => client!.call<T>(method, req);

/** The image's layers, read with the test's own credentials (the registry gives nothing without). */
async function layers(): Promise<{ digest: string; annotations?: Record<string, string> }[]> {
  const url = `http://${PRIVATE_REGISTRY}/v2/busybox/manifests/pull-secret-test`;
  const accept = 'application/vnd.oci.image.manifest.v1+json';
  expect((await fetch(url, { headers: { accept } })).status).toBe(401);
  const res = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`, accept } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { layers: { digest: string; annotations?: Record<string, string> }[] }).layers;
}

/**
 * Prepares the image's layers as containerd's unpacker does for a remote snapshotter (each one
 * committed at once: ALREADY_EXISTS), under chain names starting with `chain`; returns the top one.
 */
async function pullRemotely(chain: string, extra: Record<string, string>): Promise<string> {
  let parent = '';
  for (const [i, layer] of (await layers()).entries()) {
    const role = layer.annotations?.[Label.NYDUS_BOOTSTRAP] === 'true' ? Label.NYDUS_BOOTSTRAP : Label.NYDUS_BLOB;
    const name = `${chain}-${i}`;
    const labels = { [Label.TARGET]: name, [role]: 'true', [Label.STARGZ_REF]: TARGET, [Label.STARGZ_DIGEST]: layer.digest, ...extra };
    await expect(call('Prepare', { key: `extract-${i} ${name}`, parent, labels })).rejects.toMatchObject({ code: grpc.status.ALREADY_EXISTS });
    parent = name;
  }
  return parent;
}

beforeAll(async () => {
  // the conversion's credentials: a docker config of the test's own, never the snapshotter's
  const dockerConfig = p('docker');
  mkdirSync(dockerConfig);
  writeFileSync(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [PRIVATE_REGISTRY]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
  await Promise.all([
    cliAsync(['convert', '--source', '127.0.0.1:5000/busybox:latest', '--target', TARGET, '--plain-http'], { env: { DOCKER_CONFIG: dockerConfig } }),
    runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:busybox`, p('bundle')]),
  ]);
  mkdirSync(p('no-docker-config'));
  metricsPort = await freePort();
  // containerd's hosts.toml: the plain e2e registry (the same storage, no auth) mirrors the private one
  mkdirSync(p('hosts', PRIVATE_REGISTRY), { recursive: true });
  writeFileSync(p('hosts', PRIVATE_REGISTRY, 'hosts.toml'), `server = "http://${PRIVATE_REGISTRY}"\n[host."http://127.0.0.1:5000"]\ncapabilities = ["pull", "resolve"]\n`);
  snapshotter = await spawnSnapshotter(root, ['--address', socket, '--root', root, '--plain-http', '--system-address', systemSocket, '--mirrors-dir', p('hosts'), '--metrics-address', `127.0.0.1:${metricsPort}`], { DOCKER_CONFIG: p('no-docker-config') });
  client = snapshotsClient(socket);
}, 120_000);

afterAll(async () => {
  for (const m of mounted) await runAsync('umount', [m]).catch(() => undefined);
  client?.close();
  snapshotter?.child.kill('SIGTERM');
  await snapshotter?.exit;
  await killLeftovers(root);
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('pull secret labels', () => {
  it('cannot mount the private image without them, and leaves nothing behind', async () => {
    const top = await pullRemotely('plain', {});
    await expect(call('Prepare', { key: 'ctr-plain', parent: top, labels: {} })).rejects.toMatchObject({ message: expect.stringMatching(/mounting 127\.0\.0\.1:5001\/busybox:pull-secret-test/) });
    await expect(call('Stat', { key: 'ctr-plain' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  }, 60_000);

  it('mounts it lazily with the credentials they give, for the container on top; the system API describes its daemon', async () => {
    // an NRI plugin's prefetch list for the image: its next mount fetches those files first
    expect((await system('PUT', '/api/v1/prefetch', JSON.stringify([{ image: TARGET, prefetch: '/bin/busybox' }]))).status).toBe(200);
    const logAt = registryLogOffset();
    const top = await pullRemotely('secret', { [Label.PULL_USERNAME]: USER, [Label.PULL_SECRET]: PASSWORD });
    // the image is mounted as its pull ends, before any container asks; a Cleanup while it is being
    // mounted, or once it is, keeps it
    const fuseMounts = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(`${root}/mnt/`) && l.includes(' fuse'));
    await call('Cleanup', {});
    await waitFor(() => fuseMounts().length === 1, 'the image mounted at pull', 20_000, 50);
    await call('Cleanup', {});
    expect(fuseMounts()).toHaveLength(1);
    const { mounts } = await call<{ mounts: { type: string; source: string; options: string[] }[] }>('Prepare', { key: 'ctr-secret', parent: top, labels: {} });
    expect(mounts[0]!.type).toBe('overlay');
    const at = p('rootfs');
    mkdirSync(at);
    await runAsync('mount', ['-t', 'overlay', 'overlay', '-o', mounts[0]!.options.join(','), at]);
    mounted.push(at);
    expect(readFileSync(join(at, 'bin', 'busybox')).equals(readFileSync(p('bundle', 'rootfs', 'bin', 'busybox')))).toBe(true);
    // its blob came from the mirror hosts.toml names (the plain registry logs it), not from the private registry
    const blob = (await layers())[0]!.digest;
    expect(registryLogSince(logAt).some((l) => l.includes(`/v2/busybox/blobs/${blob}`))).toBe(true);
    expect(execFileSync('chroot', [at, '/bin/busybox', 'echo', 'runs'], { encoding: 'utf8' }).trim()).toBe('runs');
    // the password is the snapshot's (containerd keeps labels too), and in no log
    expect(snapshotter!.log()).not.toContain(PASSWORD);
    // the system API: the image's daemon, the container's snapshot reading through it, and its API socket
    const { body: daemons } = await system('GET', '/api/v1/daemons') as { body: { id: string; pid: number; api_socket: string; reference: number; memory_rss_kb: number; instances: Record<string, { image_id: string }> }[] };
    expect(daemons).toHaveLength(1);
    expect(daemons[0]!).toMatchObject({ reference: 1, instances: { 'ctr-secret': { image_id: TARGET } } });
    expect(daemons[0]!.pid).toBeGreaterThan(0);
    expect(daemons[0]!.memory_rss_kb).toBeGreaterThan(0);
    expect((await system('GET', `/api/v1/daemons/${daemons[0]!.id}/backend`)).body).toMatchObject({ type: 'registry', config: { images: [TARGET] } });
    // what the prefetch list named came in as prefetch
    const trace = await new DaemonClient(daemons[0]!.api_socket).accessTrace('/');
    expect(trace.fetches.some((f) => f.kind === 'prefetch' && trace.files[f.file!]?.path === '/bin/busybox')).toBe(true);
    // bad requests are answered, and it keeps serving
    expect((await system('PUT', '/api/v1/prefetch', '{"image":')).status).toBe(400);
    expect((await system('PUT', '/api/v1/prefetch', JSON.stringify([{ image: TARGET, prefetch: 'bin/busybox' }]))).status).toBe(400);
    expect((await system('GET', '/api/v1/daemons/nope/backend')).status).toBe(404);
    expect((await system('PUT', '/api/v1/daemons/upgrade', '{}')).status).toBe(501);
    expect((await system('GET', '/api/v1/nothing')).status).toBe(404);
    expect((await system('GET', '/api/v1/daemons/records')).body).toHaveLength(1);
    // Prometheus: the snapshotter's counts, and the daemon's own samples under its id
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/v1/metrics`)).text();
    expect(metrics).toMatch(/^nydusify_snapshotter_daemons 1$/m);
    expect(metrics).toMatch(new RegExp(`^nydusify_fuse_requests_total\\{daemon_id="${daemons[0]!.id}",`, 'm'));
    expect(metrics.match(/^# TYPE nydusify_fuse_requests_total /gm)).toHaveLength(1);
    // the container gone, its image is unmounted, and a Cleanup does not bring it back
    await runAsync('umount', [at]);
    mounted.splice(mounted.indexOf(at), 1);
    await call('Remove', { key: 'ctr-secret' });
    expect(fuseMounts()).toHaveLength(0);
    await call('Cleanup', {});
    expect(fuseMounts()).toHaveLength(0);
  }, 60_000);
});
