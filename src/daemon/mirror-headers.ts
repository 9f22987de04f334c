// The headers a registry mirror is sent with every request (ours: registry.mirrors[].headers;
// nydusd's: mirrors[].headers), as Dragonfly's dfdaemon wants X-Dragonfly-Registry naming the origin.
import { ConfigError } from './config-error.js';

/** Headers a mirror is sent: names and values HTTP allows, none that the client sets itself. */
export function mirrorHeaders(value: unknown, where: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${where}: expected {"Name": "value"}`);
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > 32) throw new ConfigError(`${where}: more than 32 headers`);
  for (const [name, v] of entries) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/.test(name)) throw new ConfigError(`${where}: ${JSON.stringify(name.slice(0, 64))} is not a header name`);
    if (['authorization', 'host', 'range', 'content-length', 'transfer-encoding', 'connection'].includes(name.toLowerCase())) throw new ConfigError(`${where}: ${name} is the client's to set`);
    if (typeof v !== 'string' || v.length > 4096 || /[\r\n\0]/.test(v)) throw new ConfigError(`${where}.${name}: expected a one-line string`);
  }
  return Object.fromEntries(entries) as Record<string, string>;
}
