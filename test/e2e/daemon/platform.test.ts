// End to end, `mount --platform` (needs root, /dev/fuse and the registry of the global setup): the
// multi-platform busybox converted with --all-platforms, mounted once as linux/arm64 and once with no
// platform (linux/amd64): the registry's log shows each mount read its platform's Nydus manifest (the
// test image's arm64 entry holds the same layer as amd64's, so the files cannot tell them apart).
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync, runCliAsync } from '../../helpers/cli.js';
import { cleanUp, type Daemon, startDaemon, stopWithStats, waitMounted } from '../../helpers/daemon.js';
import { registryLogOffset, registryLogSince } from '../../snapshotter/env.js';

const REGISTRY = '127.0.0.1:5000';
const TARGET = `${REGISTRY}/busybox:platform-test`;
const work = mkdtempSync(join(tmpdir(), 'nydusify-platform-'));
const daemons: Daemon[] = [];

/** The converted index's manifest digest for `arch`. */
async function manifestFor(arch: string): Promise<string> {
  const res = await fetch(`http://${REGISTRY}/v2/busybox/manifests/platform-test`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
  const index = (await res.json()) as { manifests: { digest: string; platform: { architecture: string } }[] };
  return index.manifests.find((m) => m.platform.architecture === arch)!.digest;
}

beforeAll(async () => {
  await cliAsync(['convert', '--source', `${REGISTRY}/busybox:multi`, '--target', TARGET, '--plain-http', '--all-platforms']);
}, 60_000);

afterAll(() => cleanUp(daemons, work));

describe('mount --platform', () => {
  it.each([[['--platform', 'linux/arm64'], 'arm64', 'amd64'], [[], 'amd64', 'arm64']])('mounts the platform asked for (%j)', async (flags, arch, other) => {
    const [want, notWant] = [await manifestFor(arch), await manifestFor(other)];
    const at = registryLogOffset();
    const d = startDaemon(['--target', TARGET, '--plain-http', '--cache-dir', join(work, `cache-${arch}`), ...flags], join(work, `mnt-${arch}`));
    daemons.push(d);
    await waitMounted(d);
    const log = registryLogSince(at);
    expect(log.some((l) => l.includes(`/v2/busybox/manifests/${want}`))).toBe(true);
    expect(log.some((l) => l.includes(`/v2/busybox/manifests/${notWant}`))).toBe(false);
    expect((await stopWithStats(d)).code).toBe(0);
  }, 60_000);

  it('refuses a platform the image does not have, naming the ones it has', async () => {
    const mnt = join(work, 'none');
    mkdirSync(mnt);
    const r = await runCliAsync(['mount', '--target', TARGET, '--plain-http', '--platform', 'linux/s390x', '--mount-path', mnt, '--state-dir', join(work, 'state')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/linux\/s390x/);
  }, 60_000);
});
