// The snapshotter core on a temporary root (no containerd, no mounts made): containerd's snapshot
// semantics, the remote commit of Nydus layers, durability across a new instance, and the gRPC
// service answering bad requests with statuses while it keeps serving.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseDaemonConfig } from '../../src/daemon/config.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../src/snapshotter/errors.js';
import { ImageMounts } from '../../src/snapshotter/image-mounts.js';
import { Label } from '../../src/snapshotter/labels.js';
import { serveSnapshotter } from '../../src/snapshotter/service.js';
import { Snapshotter } from '../../src/snapshotter/snapshotter.js';
import { PlainPulls } from '../../src/snapshotter/plain-pulls.js';
import { snapshotsClient, type SnapshotsClient } from './grpc-client.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-snap-'));
const D = (c: string) => `sha256:${c.repeat(64)}`;

describe('snapshotter core', () => {
  const root = join(work, 'core');
  let sn: Snapshotter;
  beforeAll(() => {
    sn = new Snapshotter(root);
  });

  it('prepares, commits and stacks layers like overlayfs', async () => {
    const m1 = await sn.prepare('k1', '', { a: '1' });
    expect(m1).toEqual([{ type: 'bind', source: expect.stringMatching(/snapshots\/\d+\/fs$/), options: ['rw', 'rbind'] }]);
    writeFileSync(join(m1[0]!.source, 'f'), 'x'.repeat(10000));
    await sn.commit('l1', 'k1', { b: '2' });
    expect((await sn.stat('l1')).kind).toBe('committed');
    expect((await sn.stat('l1')).labels).toEqual({ b: '2' });
    expect((await sn.usage('l1')).size).toBeGreaterThanOrEqual(10000);
    await expect(sn.stat('k1')).rejects.toThrow(NotFoundError);
    const m2 = await sn.prepare('k2', 'l1', {});
    expect(m2[0]!.type).toBe('overlay');
    expect(m2[0]!.options).toContain(`lowerdir=${join(root, 'snapshots', '1', 'fs')}`);
    await sn.commit('l2', 'k2', {});
    const view = await sn.view('v', 'l2', {});
    expect(view[0]!.options).toEqual(['index=off', expect.stringMatching(/^lowerdir=.*\/2\/fs:.*\/1\/fs$/)]);
    expect(await sn.mounts('v')).toEqual(view);
    const single = await sn.view('v1', 'l1', {});
    expect(single).toEqual([{ type: 'bind', source: join(root, 'snapshots', '1', 'fs'), options: ['ro', 'rbind'] }]);
  });

  it('refuses what containerd refuses', async () => {
    await expect(sn.prepare('k1x', 'nope', {})).rejects.toThrow(NotFoundError);
    await expect(sn.prepare('v', 'l1', {})).rejects.toThrow(AlreadyExistsError);
    await expect(sn.prepare('x', 'v', {})).rejects.toThrow(InvalidArgumentError);
    await expect(sn.commit('l3', 'v', {})).rejects.toThrow(FailedPreconditionError);
    await expect(sn.remove('l1')).rejects.toThrow(FailedPreconditionError);
    await expect(sn.mounts('l1')).rejects.toThrow(FailedPreconditionError);
    await expect(sn.prepare('', '', {})).rejects.toThrow(InvalidArgumentError);
  });

  it('updates labels by field mask and lists with filters', async () => {
    await sn.update({ name: 'l1', labels: { c: '3' } }, ['labels.c']);
    expect((await sn.stat('l1')).labels).toEqual({ b: '2', c: '3' });
    await sn.update({ name: 'l1', labels: {} }, ['labels.b']);
    expect((await sn.stat('l1')).labels).toEqual({ c: '3' });
    await expect(sn.update({ name: 'l1', labels: {} }, ['parent'])).rejects.toThrow(InvalidArgumentError);
    expect((await sn.list(['kind==committed'])).map((i) => i.name).sort()).toEqual(['l1', 'l2']);
    expect((await sn.list(['labels.c==3'])).map((i) => i.name)).toEqual(['l1']);
  });

  it('keeps its state durably, and Cleanup removes orphan directories', async () => {
    mkdirSync(join(root, 'snapshots', '999', 'fs'), { recursive: true });
    const again = new Snapshotter(root);
    expect((await again.list([])).map((i) => i.name).sort()).toEqual(['l1', 'l2', 'v', 'v1']);
    await again.cleanup();
    await expect(again.remove('v')).resolves.toBeUndefined();
    await expect(again.remove('v1')).resolves.toBeUndefined();
    await again.remove('l2');
    await again.remove('l1');
    expect(await again.list([])).toEqual([]);
  });

  it('commits a Nydus layer remotely: AlreadyExists, committed under the target name with its parent', async () => {
    const r = join(work, 'remote');
    const images = new ImageMounts({ root: r, mode: 'dedicated', config: parseDaemonConfig({}), policy: 'restart' });
    const remote = new Snapshotter(r, images);
    const labels = (target: string, role: string, digest: string) => ({ [Label.TARGET]: target, [role]: 'true', [Label.STARGZ_REF]: '127.0.0.1:5000/x/y:z', [Label.STARGZ_DIGEST]: digest });
    await expect(remote.prepare('extract-1 c1', '', labels('c1', Label.NYDUS_BLOB, D('1')))).rejects.toThrow(AlreadyExistsError);
    await expect(remote.prepare('extract-2 c2', 'c1', labels('c2', Label.NYDUS_BOOTSTRAP, D('2')))).rejects.toThrow(AlreadyExistsError);
    const c2 = await remote.stat('c2');
    expect(c2).toMatchObject({ kind: 'committed', parent: 'c1' });
    expect(c2.labels[Label.TARGET]).toBe('c2');
    // containerd finds it with this filter
    expect((await remote.list([`labels."containerd.io/snapshot.ref"==c2,parent=="c1"`])).map((i) => i.name)).toEqual(['c2']);
    await expect(remote.stat('extract-2 c2')).rejects.toThrow(NotFoundError);
    // an ordinary layer with a target label is unpacked as usual
    expect((await remote.prepare('extract-3 c3', '', { [Label.TARGET]: 'c3' }))[0]!.type).toBe('bind');
    // a container on the image needs its daemon: a mount that fails (no such image) is an error
    // and leaves no snapshot and no daemon behind
    await expect(remote.prepare('ctr', 'c2', {})).rejects.toThrow(/mounting 127.0.0.1:5000\/x\/y:z/);
    await expect(remote.stat('ctr')).rejects.toThrow(NotFoundError);
    expect(images.mounted()).toEqual([]);
    await images.close();
  });

  /**
   * Runs `check` on a fast-pulling snapshotter whose plain pulls only record the layers asked
   * about (`asked`: ref and digest of each) and fail, so containerd would pull them itself.
   */
  async function withRecordedPulls(name: string, opts: { mirrorsDir?: string }, check: (sn: Snapshotter, asked: string[]) => Promise<void>): Promise<void> {
    const r = join(work, name);
    const images = new ImageMounts({ root: r, mode: 'dedicated', config: parseDaemonConfig({}), policy: 'restart', ...opts });
    const sn = new Snapshotter(r, images, undefined, { fastPull: true });
    const asked: string[] = [];
    const layer = vi.spyOn(PlainPulls.prototype, 'layer').mockImplementation(async (source) => {
      asked.push(`${source.ref} ${source.digest}`);
      throw new Error('no registry here');
    });
    try {
      await check(sn, asked);
    } finally {
      layer.mockRestore();
      await images.close();
    }
  }

  it('pulls a plain layer itself only on plain layers (regression: a layer on a remote image read its lower dirs\' attributes from the host\'s paths)', async () => {
    const REF = '127.0.0.1:5000/x/y:z';
    await withRecordedPulls('fast-pull', {}, async (sn, asked) => {
      const plain = (target: string, digest: string) => ({ [Label.TARGET]: target, [Label.STARGZ_REF]: REF, [Label.STARGZ_DIGEST]: digest });
      // the pull failing, containerd unpacks the layer itself: an ordinary active snapshot
      expect((await sn.prepare('extract-p1 p1', '', plain('p1', D('a'))))[0]!.type).toBe('bind');
      expect(asked).toEqual([`${REF} ${D('a')}`]);
      await expect(sn.prepare('extract-n1 n1', '', { [Label.TARGET]: 'n1', [Label.NYDUS_BOOTSTRAP]: 'true', [Label.STARGZ_REF]: REF, [Label.STARGZ_DIGEST]: D('b') })).rejects.toThrow(AlreadyExistsError);
      await sn.prepare('extract-p2 p2', 'n1', plain('p2', D('c'))).catch(() => undefined);
      expect(asked).toEqual([`${REF} ${D('a')}`]);
    });
  });

  it('leaves a registry with hosts.toml mirrors to containerd\'s pull, which reads them', async () => {
    const hosts = join(work, 'fast-pull-mirrors-hosts');
    mkdirSync(join(hosts, 'registry.example:5000'), { recursive: true });
    writeFileSync(join(hosts, 'registry.example:5000', 'hosts.toml'), 'server = "https://registry.example:5000"\n[host."http://127.0.0.1:5000"]\ncapabilities = ["pull", "resolve"]\n');
    await withRecordedPulls('fast-pull-mirrors', { mirrorsDir: hosts }, async (sn, asked) => {
      const plain = (target: string, ref: string) => ({ [Label.TARGET]: target, [Label.STARGZ_REF]: ref, [Label.STARGZ_DIGEST]: D('d') });
      expect((await sn.prepare('extract-m1 m1', '', plain('m1', 'registry.example:5000/x/y:z')))[0]!.type).toBe('bind');
      expect((await sn.prepare('extract-m2 m2', '', plain('m2', 'other.example/x/y:z')))[0]!.type).toBe('bind');
      expect(asked).toEqual([`other.example/x/y:z ${D('d')}`]);
    });
  });
});

describe('gRPC service', () => {
  const root = join(work, 'grpc');
  const socket = join(work, 'snap.sock');
  let server: grpc.Server;
  let client: SnapshotsClient;
  const call = (method: string, req: unknown) => client.call(method, req);

  beforeAll(async () => {
    server = await serveSnapshotter(new Snapshotter(root), socket);
    client = snapshotsClient(socket);
  });
  afterAll(() => {
    client.close();
    server.forceShutdown();
  });

  it('answers calls and maps errors to gRPC statuses', async () => {
    const prep = (await call('Prepare', { key: 'a', parent: '', labels: { x: 'y' } })) as { mounts: { type: string }[] };
    expect(prep.mounts[0]!.type).toBe('bind');
    await call('Commit', { name: 'A', key: 'a' });
    const stat = (await call('Stat', { key: 'A' })) as { info: { kind: string; name: string } };
    expect(stat.info).toMatchObject({ name: 'A', kind: 'COMMITTED' });
    const usage = (await call('Usage', { key: 'A' })) as { inodes: number };
    expect(usage.inodes).toBeGreaterThanOrEqual(1);
    await expect(call('Stat', { key: 'nope' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(call('Prepare', { key: 'A', parent: '' })).rejects.toMatchObject({ code: grpc.status.ALREADY_EXISTS });
    await expect(call('Prepare', { key: '', parent: '' })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(call('Prepare', { key: 'b', parent: '', labels: { k: 'v'.repeat(5000) } })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(call('Remove', { key: 'nope' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(call('Update', { info: { name: 'A' }, updateMask: { paths: ['kind'] } })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    // and it still serves
    expect(await client.list()).toHaveLength(1);
    await call('Remove', { key: 'A' });
    await call('Cleanup', {});
  });
});

describe('keys chosen by requests', () => {
  it('regression: snapshots and labels named __proto__, constructor and toString are kept across a restart', async () => {
    const root = join(work, 'proto');
    const names = ['__proto__', 'constructor', 'toString'];
    // computed keys: own properties, as a request's map would decode
    const own = (k: string, v: string): Record<string, string> => Object.defineProperty({}, k, { value: v, enumerable: true, writable: true, configurable: true });
    const sn = new Snapshotter(root);
    for (const n of names) {
      await sn.prepare(`a-${n}`, '', own(n, 'active'));
      await sn.commit(n, `a-${n}`, own(n, n));
      await sn.prepare(`b-${n}`, n, {});
    }
    await sn.update({ name: '__proto__', labels: own('__proto__', 'updated') }, ['labels.__proto__']);
    for (const s of [sn, new Snapshotter(root)]) {
      expect((await s.list([])).map((i) => i.name).sort()).toEqual([...names, ...names.map((n) => `b-${n}`)].sort());
      for (const n of names) {
        const info = await s.stat(n);
        expect(Object.entries(info.labels)).toEqual([[n, n === '__proto__' ? 'updated' : n]]);
        expect((await s.stat(`b-${n}`)).parent).toBe(n);
        // only the snapshot carrying the label has it: nothing inherited answers a filter
        expect((await s.list([`labels.${n}`])).map((i) => i.name)).toEqual([n]);
      }
    }
    const again = new Snapshotter(root);
    for (const n of names) {
      await again.remove(`b-${n}`);
      await again.remove(n);
    }
    expect(await new Snapshotter(root).list([])).toEqual([]);
  });
});

describe('the snapshotter socket', () => {
  /** A List through a fresh client: the server at `socket` answers. */
  const answers = async (socket: string): Promise<void> => {
    const client = snapshotsClient(socket);
    try {
      await client.list();
    } finally {
      client.close();
    }
  };

  it('regression: is 0600 whatever the umask, and removed at shutdown', async () => {
    const socket = join(work, 'umask.sock');
    const umask = process.umask(0);
    let server: grpc.Server;
    try {
      server = await serveSnapshotter(new Snapshotter(join(work, 'umask')), socket);
    } finally {
      process.umask(umask);
    }
    try {
      expect(statSync(socket).mode & 0o777).toBe(0o600);
      await answers(socket);
    } finally {
      server.forceShutdown();
    }
    expect(existsSync(socket)).toBe(false);
  });

  it('regression: refuses to start on a socket another snapshotter serves, which keeps serving', async () => {
    const socket = join(work, 'live.sock');
    const first = await serveSnapshotter(new Snapshotter(join(work, 'live-1')), socket);
    try {
      await expect(serveSnapshotter(new Snapshotter(join(work, 'live-2')), socket)).rejects.toThrow(/is served by another process/);
      await answers(socket);
    } finally {
      first.forceShutdown();
    }
  });

  it('replaces a stale socket left by a killed process', async () => {
    const socket = join(work, 'stale.sock');
    const killed = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(killed.signal).toBe('SIGKILL');
    expect(lstatSync(socket).isSocket()).toBe(true);
    const server = await serveSnapshotter(new Snapshotter(join(work, 'stale')), socket);
    try {
      await answers(socket);
    } finally {
      server.forceShutdown();
    }
  });
});
