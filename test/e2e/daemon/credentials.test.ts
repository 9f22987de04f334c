// End to end, credentials from a nydusd config (needs root, /dev/fuse and the registries of the global
// setup): busybox converted into the token-auth registry (docker-registry behind the e2e token
// server), then mounted lazily with no docker config at all: with the config's registry_token (a
// token fetched from the token server, sent as it is), and refused with a token the registry does not
// accept. (The config's `auth` is traded for tokens at the realm the registry names; the client sends
// no password over plain HTTP to a realm host it was not told is plain HTTP, as here: unit-tested.)
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync } from '../../helpers/cli.js';
import { cleanUp, type Daemon, startDaemon, stopWithStats, waitMounted } from '../../helpers/daemon.js';
import { runAsync } from '../../helpers/run.js';

const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const TOKEN_REGISTRY = '127.0.0.1:5003';
const TOKEN_SERVER = 'http://127.0.0.1:5002/token';
const TARGET = `${TOKEN_REGISTRY}/busybox:credentials-test`;
const work = mkdtempSync(join(tmpdir(), 'nydusify-credentials-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];
/** No credentials from any docker config: only the nydusd config's. */
const NO_DOCKER_CONFIG = { DOCKER_CONFIG: p('no-docker-config') };

function config(name: string, registry: Record<string, unknown>): string {
  const file = p(`${name}.json`);
  writeFileSync(file, JSON.stringify({
    device: { backend: { type: 'registry', config: { scheme: 'http', timeout: 5, retry_limit: 0, ...registry } }, cache: { type: 'blobcache', config: { work_dir: p(`${name}-cache`) } } },
    mode: 'direct',
  }));
  return file;
}

beforeAll(async () => {
  const dockerConfig = p('docker');
  writeFileSync(join(work, 'unused'), '');
  await runAsync('mkdir', ['-p', dockerConfig, NO_DOCKER_CONFIG.DOCKER_CONFIG]);
  writeFileSync(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [TOKEN_REGISTRY]: { auth: Buffer.from('testuser:testpass').toString('base64') } } }));
  await Promise.all([
    cliAsync(['convert', '--source', '127.0.0.1:5000/busybox:latest', '--target', TARGET, '--plain-http'], { env: { DOCKER_CONFIG: dockerConfig } }),
    runAsync('umoci', ['unpack', '--image', `${join(e2eDir, 'images', 'oci')}:busybox`, p('bundle')]),
  ]);
}, 90_000);

afterAll(() => cleanUp(daemons, work));

async function mountAndRead(name: string, registry: Record<string, unknown>): Promise<void> {
  const d = startDaemon(['--target', TARGET, '--config', config(name, registry)], p(name), undefined, NO_DOCKER_CONFIG);
  daemons.push(d);
  await waitMounted(d);
  expect(readFileSync(join(d.mnt, 'bin', 'busybox')).equals(readFileSync(p('bundle', 'rootfs', 'bin', 'busybox')))).toBe(true);
  expect((await stopWithStats(d)).code).toBe(0);
}

describe('credentials in a nydusd config', () => {
  it('registry_token: a bearer token sent as it is', async () => {
    const res = await fetch(`${TOKEN_SERVER}?service=e2e-registry&scope=repository:busybox:pull`, { headers: { authorization: `Basic ${Buffer.from('testuser:testpass').toString('base64')}` } });
    const { token } = (await res.json()) as { token: string };
    await mountAndRead('token', { registry_token: token });
  }, 60_000);

  it('a token the registry does not take: the mount fails, saying so', async () => {
    const d = startDaemon(['--target', TARGET, '--config', config('bad', { registry_token: 'not-a-token' })], p('bad'), undefined, NO_DOCKER_CONFIG);
    daemons.push(d);
    const { code } = await d.exit;
    expect(code).not.toBe(0);
    expect(d.stderr()).toMatch(/401|unauthorized|denied|auth/i);
  }, 60_000);
});
