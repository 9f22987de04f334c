// How a mount connects to its image in a registry: the daemon's registry settings with the mount's own
// overrides, and the connection (manifest, bootstrap, an optimized image's hot regions read ahead).
// Its own module, light on imports: a dedicated daemon told its image when it is started (the
// manager's --mount-spec) starts this before it loads its FUSE, cache and API code, so the
// registry's round trips and the bootstrap's bytes come in while that code loads.
import type { ConnectedNydusImage, RegistryAccess } from '../image/remote.js';
import type { DaemonConfig, MountSpec } from './config.js';

/** The daemon's registry settings, with the mount's own overrides. */
export function mountAccess(spec: MountSpec, registry: DaemonConfig['registry']): RegistryAccess {
  return {
    ...registry, plainHttp: spec.plainHttp ?? registry.plainHttp, insecure: spec.insecure ?? registry.insecure, ...(spec.auth ? { auth: spec.auth } : {}),
    mirrors: [...(spec.mirrors ?? []), ...registry.mirrors],
  };
}

/**
 * Connects to the registry image `spec.target` names; a stargz chain's bootstrap is kept in (or
 * taken from) `cacheDir`. Resolves once the registry code is loaded and the connection is under way,
 * to the connection (a caller then loads what else it needs while the registry answers).
 */
export async function startConnecting(spec: MountSpec, config: DaemonConfig, cacheDir: string): Promise<{ connected: Promise<ConnectedNydusImage> }> {
  if (spec.target === undefined) throw new Error('the mount names no registry image (target)');
  const [{ connectNydusImage }, { BuiltBootstraps }] = await Promise.all([import('../image/remote.js'), import('../blobcache/built-bootstraps.js')]);
  return { connected: connectNydusImage(spec.target, mountAccess(spec, config.registry), spec.upToLayer, new BuiltBootstraps(cacheDir), config.fetch.hotRegion, spec.platform) };
}

/** startConnecting's connection. */
export async function connectTarget(spec: MountSpec, config: DaemonConfig, cacheDir: string): Promise<ConnectedNydusImage> {
  return (await startConnecting(spec, config, cacheDir)).connected;
}
