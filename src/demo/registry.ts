// A throwaway docker-registry (Debian's `docker-registry`) on a free loopback port, storing in a
// directory of the caller's: the demo pushes its sample image there and pulls it back lazily.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';
const START_TIMEOUT_MS = 15_000;

export interface LocalRegistry {
  /** `127.0.0.1:PORT`, plain HTTP. */
  host: string;
  stop(): Promise<void>;
}

/** A port nobody listens on now (the registry takes it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function startLocalRegistry(dir: string): Promise<LocalRegistry> {
  const host = `127.0.0.1:${await freePort()}`;
  const config = join(dir, 'registry.yml');
  await writeFile(config, [
    'version: 0.1',
    'log: {level: error, accesslog: {disabled: true}}',
    `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}, redirect: {disable: true}}`,
    `http: {addr: "${host}", secret: demo-not-secret}`,
    '',
  ].join('\n'));
  const child = spawn(REGISTRY_BINARY, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    await waitUntilServing(host, child, () => stderr);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, stop };
}

async function waitUntilServing(host: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`docker-registry exited before serving: ${stderr()}`);
    const ok = await fetch(`http://${host}/v2/`).then((r) => r.status === 200, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${host} within ${START_TIMEOUT_MS / 1000} s: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
