// Choosing one image out of an index by `os/arch[/variant]`, with containerd's normalisation of the
// common aliases (x86_64 = amd64, aarch64 = arm64, arm64 defaults to v8, arm to v7).
import type { Descriptor, ImageIndex, Platform } from './media-types.js';
import { NYDUS_OS_FEATURE } from './nydus-layers.js';

export const DEFAULT_PLATFORM = 'linux/amd64';

const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', armhf: 'arm', armel: 'arm' };

function normalize(p: Platform): { os: string; architecture: string; variant: string } {
  const os = p.os.toLowerCase();
  const architecture = ARCH_ALIASES[p.architecture.toLowerCase()] ?? p.architecture.toLowerCase();
  let variant = (p.variant ?? '').toLowerCase();
  if (architecture === 'arm64' && variant === 'v8') variant = '';
  if (architecture === 'arm' && variant === '') variant = 'v7';
  if (architecture === 'amd64' && variant === 'v1') variant = '';
  return { os, architecture, variant };
}

/** `linux/arm64/v8` → { os, architecture, variant }. */
export function parsePlatform(spec: string): Platform {
  const parts = spec.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((part) => part === '')) {
    throw new Error(`invalid platform "${spec}": expected os/arch[/variant], e.g. linux/amd64`);
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** True when `have` is the platform `want` asks for, after normalisation. */
export function platformMatches(want: Platform, have: Platform): boolean {
  const a = normalize(want);
  const b = normalize(have);
  return a.os === b.os && a.architecture === b.architecture && a.variant === b.variant;
}

/**
 * The platforms an index offers, in index order. Entries without a platform and BuildKit's attestation
 * manifests (`unknown/unknown`) are left out: they are not images anyone runs.
 */
export function listPlatforms(index: ImageIndex): { platform: string; descriptor: Descriptor & { platform: Platform } }[] {
  return index.manifests
    .filter((d): d is Descriptor & { platform: Platform } => d.platform !== undefined && d.platform.os !== 'unknown')
    .map((descriptor) => ({ platform: formatPlatform(descriptor.platform), descriptor }));
}

/**
 * The index entry for `platform` (default linux/amd64), its Nydus manifest where it has one beside
 * an OCI one; throws listing what the index has when none matches.
 */
export function selectPlatform(index: ImageIndex, platform: string | Platform = DEFAULT_PLATFORM): Descriptor {
  const want = typeof platform === 'string' ? parsePlatform(platform) : platform;
  const offered = listPlatforms(index);
  // an index merged with its Nydus manifests (convert --merge-platform) offers each platform twice: ours is the Nydus one
  const matches = offered.filter((entry) => platformMatches(want, entry.descriptor.platform));
  const match = matches.find((entry) => entry.descriptor.platform['os.features']?.includes(NYDUS_OS_FEATURE)) ?? matches[0];
  if (!match) {
    const list = offered.map((entry) => entry.platform).join(', ') || 'none';
    throw new Error(`no image for platform ${formatPlatform(want)} in the index (it has: ${list})`);
  }
  return match.descriptor;
}
