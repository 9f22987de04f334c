// End to end, regression for cross-image cache poisoning (issue #11, item 1), with the registry of
// the global setup and real FUSE mounts: a hostile image lists an honest image's blob (by its public
// id) with a bootstrap of its own whose chunk table claims another chunk's bytes as one of the
// honest file's chunks. Whatever order they are mounted in, in one daemon or in two that share a
// cache directory, the honest image reads its own bytes or EIO, never the hostile image's.
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapLayer, nydusConfig, sha256Digest } from '../../../src/convert/nydus-image.js';
import { connectNydusImage } from '../../../src/image/remote.js';
import { clientForReferences } from '../../../src/registry/client.js';
import { openImageStore } from '../../../src/registry/index.js';
import { writeBootstrap } from '../../../src/rafs/writer.js';
import type { TreeNode } from '../../../src/rafs/tree.js';
import { killApiDaemons, startApiDaemon, stopApiDaemon } from '../../helpers/api-daemon.js';
import { cliAsync } from '../../helpers/cli.js';
import { writeOciLayout } from '../../helpers/oci-layout.js';

const REGISTRY = '127.0.0.1:5000';
const HONEST = `${REGISTRY}/cross-image:honest-${process.pid}`;
const HOSTILE = `${REGISTRY}/cross-image:hostile-${process.pid}`;
const work = mkdtempSync(join(tmpdir(), 'nydusify-cross-image-'));
const p = (...parts: string[]) => join(work, ...parts);
const FILES: Record<string, Buffer> = {
  'etc/os-release': Buffer.from('ID=cross-image\n'),
  'bin/victim': randomBytes(1 << 20),
  'bin/donor': randomBytes(1 << 20),
};

function child(node: TreeNode, name: string): TreeNode {
  const found = node.children?.get(name);
  if (!found) throw new Error(`no ${name}`);
  return found;
}

/**
 * Pushes HOSTILE: the honest image's blob layer and config, with a bootstrap in which bin/victim's
 * first chunk keeps its index and place but names bin/donor's first chunk's stored bytes and digest.
 */
async function pushHostile(): Promise<void> {
  const { image, close } = await connectNydusImage(HONEST, { plainHttp: true });
  const { store, reference } = await openImageStore(HOSTILE, clientForReferences([[HOSTILE, false]], true));
  try {
    const tree = image.rafs.toBootstrap();
    const bin = child(tree.root, 'bin');
    const victim = child(bin, 'victim').inode.chunks;
    const donor = child(bin, 'donor').inode.chunks[0]!;
    victim[0] = { ...donor, ciIndex: victim[0]!.ciIndex, uncompressedOffset: victim[0]!.uncompressedOffset, fileOffset: 0 };
    const boot = await bootstrapLayer(writeBootstrap(tree), false);
    const blobLayer = image.manifest.layers[0]!;
    const config = Buffer.from(JSON.stringify(nydusConfig({ architecture: 'amd64', os: 'linux' }, [blobLayer.digest, boot.diffId])));
    const configDescriptor = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(config), size: config.length };
    await store.putBlob(boot.descriptor, boot.blob);
    await store.putBlob(configDescriptor, config);
    const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDescriptor, layers: [blobLayer, boot.descriptor] };
    await store.putManifest(Buffer.from(JSON.stringify(manifest)), manifest.mediaType, reference);
  } finally {
    await close();
  }
}

/** Every file of the honest image as its mount at `root` reads it: its bytes, or the error code. */
async function readAll(root: string): Promise<Record<string, Buffer | string>> {
  const out: Record<string, Buffer | string> = {};
  for (const f of Object.keys(FILES)) out[f] = await readFile(join(root, f)).catch((err: NodeJS.ErrnoException) => err.code ?? String(err));
  return out;
}

/** Never the hostile bytes: the victim's own bytes or EIO, every other file exact. */
function expectNoForeignBytes(got: Record<string, Buffer | string>): void {
  for (const [f, want] of Object.entries(FILES)) {
    const v = got[f]!;
    if (f === 'bin/victim' && typeof v === 'string') expect(v).toBe('EIO');
    else expect(Buffer.isBuffer(v) && v.equals(want), `${f}: ${typeof v === 'string' ? v : 'wrong bytes'}`).toBe(true);
  }
}

beforeAll(async () => {
  writeOciLayout(p('oci'), FILES);
  await cliAsync(['convert', '--source', `oci:${p('oci')}:v1`, '--target', HONEST, '--plain-http']);
  await pushHostile();
}, 120_000);

afterAll(() => {
  killApiDaemons();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(work)) execFileSync('umount', ['-i', '-l', mp]);
  }
  rmSync(work, { recursive: true, force: true });
});

describe('regression: cross-image cache poisoning, end to end', () => {
  it('the hostile image reads the donor bytes as its victim file (the attack is real)', async () => {
    const d = await startApiDaemon(work, 'hostile-alone', HOSTILE, ['--amplify', '0']);
    const victim = await readFile(join(d.mnt, 'bin/victim'));
    expect(victim.equals(FILES['bin/victim']!)).toBe(false);
    expect(victim.subarray(0, 64).equals(FILES['bin/donor']!.subarray(0, 64))).toBe(true);
    expect(await stopApiDaemon(d)).toBe(0);
  }, 60_000);

  it('a shared daemon serving the hostile image refuses the honest one (409), and the reverse', async () => {
    const d = await startApiDaemon(work, 'shared', null, ['--amplify', '0']);
    await d.client.mount('hostile', { target: HOSTILE });
    await readFile(join(d.mnt, 'hostile', 'bin/victim'));
    await expect(d.client.mount('honest', { target: HONEST })).rejects.toThrow(/409|described differently/);
    await d.client.umount('hostile');
    await d.client.mount('honest', { target: HONEST });
    await expect(d.client.mount('hostile2', { target: HOSTILE })).rejects.toThrow(/409|described differently/);
    expectNoForeignBytes(await readAll(join(d.mnt, 'honest')));
    expect(await stopApiDaemon(d)).toBe(0);
  }, 60_000);

  it('daemons sharing a cache dir: the hostile one stores first, the honest one reads its own bytes or EIO', async () => {
    const cache = ['--cache-dir', p('one-cache'), '--amplify', '0'];
    const hostile = await startApiDaemon(work, 'first-hostile', HOSTILE, cache);
    await readFile(join(hostile.mnt, 'bin/victim'));
    const honest = await startApiDaemon(work, 'then-honest', HONEST, cache);
    expectNoForeignBytes(await readAll(honest.mnt));
    expect(await stopApiDaemon(hostile)).toBe(0);
    expect(await stopApiDaemon(honest)).toBe(0);
  }, 60_000);

  it('daemons sharing a cache dir: the honest one stores first and keeps its bytes while the hostile one reads', async () => {
    const cache = ['--cache-dir', p('two-cache'), '--amplify', '0'];
    const honest = await startApiDaemon(work, 'first-honest', HONEST, cache);
    const hostile = await startApiDaemon(work, 'then-hostile', HOSTILE, cache);
    expect((await readFile(join(honest.mnt, 'bin/victim'))).equals(FILES['bin/victim']!)).toBe(true);
    await readFile(join(hostile.mnt, 'bin/victim')).catch(() => undefined);
    execFileSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
    expect((await readFile(join(honest.mnt, 'bin/victim'))).equals(FILES['bin/victim']!)).toBe(true);
    const restarted = await startApiDaemon(work, 'honest-again', HONEST, cache);
    expectNoForeignBytes(await readAll(restarted.mnt));
    for (const d of [honest, hostile, restarted]) expect(await stopApiDaemon(d)).toBe(0);
  }, 60_000);
});
