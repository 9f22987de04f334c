// containerd's registry host configuration (hosts.toml, the directory nydus-snapshotter's [remote]
// mirrors_config.dir names): DIR/HOST/hosts.toml, else DIR/_default/hosts.toml, lists the mirrors of
// registry HOST as [host."SCHEME://MIRROR"] tables. A mirror that can pull becomes a mirror of the
// image's daemon (tried before the registry, which stays the last resort); its scheme says plain HTTP,
// skip_verify an unverified TLS. What a mirror entry says that this daemon does not do (headers, a
// client certificate, a path prefix) is an error naming it rather than a mirror used otherwise.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { ConfigError } from '../daemon/config-error.js';
import type { RegistryMirror } from '../image/remote.js';

/** A hosts.toml is a few tables: more is not one. */
const MAX_HOSTS_TOML = 1 << 20;

/** The mirrors containerd's hosts.toml in `dir` gives registry `host` (host[:port]), in file order. */
export function hostsTomlMirrors(dir: string, host: string): RegistryMirror[] {
  // a host name never holds a path: it names a directory under dir and nothing else
  if (!/^[A-Za-z0-9.-]+(:\d+)?$/.test(host)) throw new ConfigError(`${host}: not a registry host`);
  for (const name of [host, '_default']) {
    const file = join(dir, name, 'hosts.toml');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new ConfigError(`${file}: ${(err as Error).message}`);
    }
    if (text.length > MAX_HOSTS_TOML) throw new ConfigError(`${file}: larger than ${MAX_HOSTS_TOML} bytes`);
    return mirrorsOf(file, text);
  }
  return [];
}

function mirrorsOf(file: string, text: string): RegistryMirror[] {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`${file}: not TOML: ${(err as Error).message}`);
  }
  const hosts = doc.host;
  if (hosts === undefined) return [];
  if (typeof hosts !== 'object' || hosts === null || Array.isArray(hosts)) throw new ConfigError(`${file}: host: expected tables of mirrors`);
  return Object.entries(hosts as Record<string, unknown>).flatMap(([url, value]) => mirror(`${file}: host."${url}"`, url, value));
}

function mirror(where: string, url: string, value: unknown): RegistryMirror[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${where}: expected a table`);
  const t = value as Record<string, unknown>;
  const capabilities = t.capabilities ?? ['pull', 'resolve', 'push'];
  if (!Array.isArray(capabilities) || !capabilities.every((c) => typeof c === 'string')) throw new ConfigError(`${where}.capabilities: expected a list of names`);
  if (!capabilities.includes('pull')) return [];
  for (const key of ['header', 'client', 'ca', 'override_path']) if (t[key] !== undefined) throw new ConfigError(`${where}.${key}: not done by this daemon's mirrors`);
  const m = /^(https?):\/\/([A-Za-z0-9.-]+(?::\d+)?)(\/v2)?\/?$/.exec(url);
  if (!m) throw new ConfigError(`${where}: expected http(s)://HOST[:PORT] (a path prefix is not served)`);
  if (t.skip_verify !== undefined && typeof t.skip_verify !== 'boolean') throw new ConfigError(`${where}.skip_verify: expected true or false`);
  return [{ host: m[2]!, plainHttp: m[1] === 'http', insecure: t.skip_verify === true }];
}
