// NBD addresses: unix sockets, TCP with loopback as the default host, and clear refusals of the rest.
import { describe, expect, it } from 'vitest';
import { formatNbdAddress, NbdAddressError, parseNbdAddress } from '../../../src/block/nbd/address.js';

describe('parseNbdAddress', () => {
  it('unix:PATH', () => {
    expect(parseNbdAddress('unix:/run/nydus/img.sock')).toEqual({ kind: 'unix', path: '/run/nydus/img.sock' });
  });

  it('tcp:HOST:PORT, tcp:[IPV6]:PORT, and loopback when the host is left out', () => {
    expect(parseNbdAddress('tcp:10.0.0.1:10809')).toEqual({ kind: 'tcp', host: '10.0.0.1', port: 10809 });
    expect(parseNbdAddress('tcp:localhost:1')).toEqual({ kind: 'tcp', host: 'localhost', port: 1 });
    expect(parseNbdAddress('tcp:[::1]:10809')).toEqual({ kind: 'tcp', host: '::1', port: 10809 });
    expect(parseNbdAddress('tcp::10809')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 10809 });
    expect(parseNbdAddress('tcp:10809')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 10809 });
    expect(parseNbdAddress('tcp:0')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 0 });
  });

  it.each([
    ['', /unix:\/path/],
    ['/run/x.sock', /unix:\/path/],
    ['unix:', /socket path/],
    ['udp:1:2', /unix:\/path/],
    ['tcp:', /port/],
    ['tcp:host:', /port/],
    ['tcp:host:65536', /port/],
    ['tcp:host:-1', /port/],
    ['tcp:host:12ab', /port/],
    ['tcp:::1:10809', /bad host/],
    ['tcp:a b:1', /bad host/],
    ['tcp:-x:1', /bad host/],
  ])('refuses %j', (text, message) => {
    expect(() => parseNbdAddress(text)).toThrow(NbdAddressError);
    expect(() => parseNbdAddress(text)).toThrow(message);
  });

  it('formats back to what it parses', () => {
    for (const s of ['unix:/a b/c.sock', 'tcp:127.0.0.1:1', 'tcp:[::1]:10809', 'tcp:example.org:10809']) {
      expect(formatNbdAddress(parseNbdAddress(s))).toBe(s);
    }
  });
});
