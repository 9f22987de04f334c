// Where an NBD server listens or a client connects: `unix:/path/to.sock` or `tcp:HOST:PORT`. TCP without a
// host (`tcp::PORT`, `tcp:PORT`) means loopback: exposing an image to the network is a choice, not a default.
import { isIP } from 'node:net';

export type NbdAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export const DEFAULT_TCP_HOST = '127.0.0.1';

export class NbdAddressError extends Error {}

function port(text: string, whole: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw new NbdAddressError(`${JSON.stringify(whole)}: port must be 0-65535, got ${JSON.stringify(text)}`);
  return Number(text);
}

function host(text: string, whole: string): string {
  if (text === '') return DEFAULT_TCP_HOST;
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (isIP(bare) === 6 && bare !== text) return bare;
  if (isIP(text) === 4 || /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(text)) return text;
  throw new NbdAddressError(`${JSON.stringify(whole)}: bad host ${JSON.stringify(text)} (IPv6 goes in brackets: tcp:[::1]:10809)`);
}

/** Parses `unix:PATH`, `tcp:HOST:PORT`, `tcp:[IPV6]:PORT`, `tcp::PORT` or `tcp:PORT`. */
export function parseNbdAddress(s: string): NbdAddress {
  if (s.startsWith('unix:')) {
    const path = s.slice('unix:'.length);
    if (path === '' || path.includes('\0')) throw new NbdAddressError(`${JSON.stringify(s)}: unix: needs a socket path`);
    return { kind: 'unix', path };
  }
  if (s.startsWith('tcp:')) {
    const rest = s.slice('tcp:'.length);
    const colon = rest.lastIndexOf(':');
    if (colon < 0) return { kind: 'tcp', host: DEFAULT_TCP_HOST, port: port(rest, s) };
    return { kind: 'tcp', host: host(rest.slice(0, colon), s), port: port(rest.slice(colon + 1), s) };
  }
  throw new NbdAddressError(`${JSON.stringify(s)}: an NBD address is unix:/path/to.sock or tcp:HOST:PORT`);
}

export function formatNbdAddress(a: NbdAddress): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return `tcp:${isIP(a.host) === 6 ? `[${a.host}]` : a.host}:${a.port}`;
}
