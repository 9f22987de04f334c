// An image converted by stargz-snapshotter's own tool (`ctr-remote image convert`), into the
// registry of the global setup, through the containerd of the snapshotter tests (test/snapshotter/env.ts),
// in a namespace of our own so their image clean-ups and ours never meet. Converting debian-ml takes
// about 50 s, so a target tag already in the registry is kept.
import { CONTAINERD_SOCK, containerdUp, run } from '../snapshotter/env.js';

const NAMESPACE = 'nydusify-stargz-convert';

/** Whether the registry has `ref` (HOST/REPO:TAG), as an OCI or Docker manifest. */
export async function registryHasTag(ref: string): Promise<boolean> {
  const slash = ref.indexOf('/');
  const colon = ref.lastIndexOf(':');
  const accept = 'application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json';
  const res = await fetch(`http://${ref.slice(0, slash)}/v2/${ref.slice(slash + 1, colon)}/manifests/${ref.slice(colon + 1)}`, { method: 'HEAD', headers: { accept } });
  return res.ok;
}

async function mustCtr(cmd: 'ctr' | 'ctr-remote', args: string[]): Promise<void> {
  const r = await run(cmd, ['--address', CONTAINERD_SOCK, '-n', NAMESPACE, ...args], {}, 300_000);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
}

/**
 * Pushes `target`: `source` (plain-http registry references both) converted by
 * `ctr-remote image convert FLAGS --oci`, e.g. ['--estargz'] or ['--zstdchunked']; nothing when
 * `target` exists. The images are removed from containerd afterwards (their content goes with them).
 */
export async function ctrRemoteConvert(source: string, target: string, flags: string[]): Promise<void> {
  if (await registryHasTag(target)) return;
  await containerdUp();
  try {
    await mustCtr('ctr', ['images', 'pull', '--plain-http', source]);
    await mustCtr('ctr-remote', ['image', 'convert', ...flags, '--oci', source, target]);
    await mustCtr('ctr', ['images', 'push', '--plain-http', target]);
  } finally {
    await run('ctr', ['--address', CONTAINERD_SOCK, '-n', NAMESPACE, 'images', 'rm', source, target]);
  }
}
