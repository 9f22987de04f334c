import { describe, expect, it } from 'vitest';
import { formatImageLocation, formatReference, manifestReference, parseImageLocation, parseReference } from '../../src/registry/reference.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('parseReference', () => {
  it.each([
    ['busybox', { registry: 'docker.io', host: 'registry-1.docker.io', repository: 'library/busybox', tag: 'latest' }],
    ['busybox:1.36', { registry: 'docker.io', host: 'registry-1.docker.io', repository: 'library/busybox', tag: '1.36' }],
    ['docker.io/busybox', { registry: 'docker.io', host: 'registry-1.docker.io', repository: 'library/busybox', tag: 'latest' }],
    ['index.docker.io/library/busybox', { registry: 'docker.io', host: 'registry-1.docker.io', repository: 'library/busybox', tag: 'latest' }],
    ['dragonflyoss/nydus-snapshotter:v0.15', { registry: 'docker.io', host: 'registry-1.docker.io', repository: 'dragonflyoss/nydus-snapshotter', tag: 'v0.15' }],
    ['ghcr.io/org/sub/image:v1', { registry: 'ghcr.io', host: 'ghcr.io', repository: 'org/sub/image', tag: 'v1' }],
    ['127.0.0.1:5000/busybox', { registry: '127.0.0.1:5000', host: '127.0.0.1:5000', repository: 'busybox', tag: 'latest' }],
    ['127.0.0.1/a/b:t', { registry: '127.0.0.1', host: '127.0.0.1', repository: 'a/b', tag: 't' }],
    ['localhost/busybox', { registry: 'localhost', host: 'localhost', repository: 'busybox', tag: 'latest' }],
    ['localhost:5000/x/y', { registry: 'localhost:5000', host: 'localhost:5000', repository: 'x/y', tag: 'latest' }],
    ['[::1]:5000/x', { registry: '[::1]:5000', host: '[::1]:5000', repository: 'x', tag: 'latest' }],
    ['my-registry.example.com:8443/a.b/c_d/e--f:tag_1.0-rc', { registry: 'my-registry.example.com:8443', host: 'my-registry.example.com:8443', repository: 'a.b/c_d/e--f', tag: 'tag_1.0-rc' }],
    [`127.0.0.1:5000/busybox@${DIGEST}`, { registry: '127.0.0.1:5000', host: '127.0.0.1:5000', repository: 'busybox', digest: DIGEST }],
    [`127.0.0.1:5000/busybox:v1@${DIGEST}`, { registry: '127.0.0.1:5000', host: '127.0.0.1:5000', repository: 'busybox', tag: 'v1', digest: DIGEST }],
  ])('%s', (input, want) => {
    expect(parseReference(input)).toEqual(want);
  });

  it.each([
    ['', /empty/],
    ['Busybox', /bad repository component "Busybox"/],
    ['127.0.0.1:5000/', /no repository/],
    ['busybox:', /bad tag ""/],
    ['busybox:-x', /bad tag/],
    ['a//b', /bad repository component ""/],
    ['busybox@sha256:abc', /sha256 needs 64/],
    [`busybox@md5:${'a'.repeat(32)}`, /unsupported algorithm md5/],
    [`busybox@sha256:${'AB'.repeat(32)}`, /lowercase hex/],
    ['exa_mple.com/x', /bad registry host/],
    [`busybox:${'t'.repeat(129)}`, /bad tag/],
  ])('rejects %j', (input, message) => {
    expect(() => parseReference(input)).toThrow(message);
  });

  it('formats back and picks the digest over the tag', () => {
    const ref = parseReference(`127.0.0.1:5000/a/b:v1@${DIGEST}`);
    expect(formatReference(ref)).toBe(`127.0.0.1:5000/a/b:v1@${DIGEST}`);
    expect(manifestReference(ref)).toBe(DIGEST);
    expect(manifestReference(parseReference('busybox'))).toBe('latest');
    expect(formatReference(parseReference('busybox'))).toBe('docker.io/library/busybox:latest');
  });
});

describe('parseImageLocation', () => {
  it('reads oci:DIR[:TAG]', () => {
    expect(parseImageLocation('oci:/tmp/layout')).toEqual({ kind: 'oci-layout', dir: '/tmp/layout' });
    expect(parseImageLocation('oci:/tmp/layout:busybox')).toEqual({ kind: 'oci-layout', dir: '/tmp/layout', tag: 'busybox' });
    expect(parseImageLocation('oci:relative/dir:v1.0')).toEqual({ kind: 'oci-layout', dir: 'relative/dir', tag: 'v1.0' });
    expect(formatImageLocation(parseImageLocation('oci:/d:t'))).toBe('oci:/d:t');
  });

  it('treats anything else as a registry reference', () => {
    expect(parseImageLocation('127.0.0.1:5000/x:y')).toEqual({ kind: 'registry', registry: '127.0.0.1:5000', host: '127.0.0.1:5000', repository: 'x', tag: 'y' });
  });

  it('rejects an empty directory or tag', () => {
    expect(() => parseImageLocation('oci:')).toThrow(/needs a directory/);
    expect(() => parseImageLocation('oci::tag')).toThrow(/needs a directory/);
    expect(() => parseImageLocation('oci:/dir:')).toThrow(/empty tag/);
  });
});
