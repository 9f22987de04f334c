// The daemon config and mount requests: defaults, overrides, and a clear error for anything wrong.
import { describe, expect, it } from 'vitest';
import { checkImageName, ConfigError, DEFAULT_CONFIG, parseDaemonConfig, parseMountSpec } from '../../src/daemon/config.js';

describe('parseDaemonConfig', () => {
  it('fills in the defaults and keeps what is given', () => {
    expect(parseDaemonConfig({})).toEqual(DEFAULT_CONFIG);
    const c = parseDaemonConfig({ cacheDir: '/c', threads: 4, registry: { plainHttp: true, mirrors: [{ host: 'mirror:5000' }] }, prefetch: { all: true, bandwidth: 1000 }, fetch: { amplify: 0 } });
    expect(c).toMatchObject({ cacheDir: '/c', threads: 4, fetchTimeout: 30, prefetch: { all: true, bandwidth: 1000 }, fetch: { amplify: 0, readahead: 0 } });
    expect(c.registry).toEqual({ plainHttp: true, insecure: false, retries: 3, mirrors: [{ host: 'mirror:5000', plainHttp: false, insecure: false }] });
  });

  it.each([
    [[], /expected an object/],
    [{ cacheDirr: '/x' }, /unknown key "cacheDirr"/],
    [{ threads: 0 }, /threads: expected an integer from 1 to 64/],
    [{ threads: 2.5 }, /threads: expected an integer/],
    [{ fetchTimeout: 'soon' }, /fetchTimeout: expected a number/],
    [{ registry: { mirrors: 'm' } }, /mirrors: expected a list/],
    [{ registry: { mirrors: [{ host: 'a b' }] } }, /mirrors\[0\]\.host: expected host\[:port\]/],
    [{ prefetch: { all: 'yes' } }, /prefetch\.all: expected true or false/],
    [{ cacheDir: '' }, /cacheDir: expected a non-empty string/],
  ])('refuses %j', (value, message) => {
    expect(() => parseDaemonConfig(value)).toThrow(ConfigError);
    expect(() => parseDaemonConfig(value)).toThrow(message);
  });
});

describe('parseMountSpec', () => {
  it("takes ours and nydusd's names", () => {
    expect(parseMountSpec({ target: 'r/x:y', prefetch: true })).toEqual({ target: 'r/x:y', prefetch: true });
    expect(parseMountSpec({ source: '/b.boot', fs_type: 'rafs', blobDir: '/blobs' })).toEqual({ bootstrap: '/b.boot', blobDir: '/blobs' });
    // nydus-snapshotter's request: the nydusd config as a string, an empty prefetch_files
    const config = JSON.stringify({ device: { backend: { type: 'localfs', config: { dir: '/blobs' } }, cache: { type: 'blobcache', config: { work_dir: '/c' } } }, mode: 'direct', fs_prefetch: { enable: true } });
    expect(parseMountSpec({ source: '/b.boot', fs_type: 'rafs', config, prefetch_files: [] })).toEqual({ bootstrap: '/b.boot', blobDir: '/blobs', prefetch: true });
    // nydusd's own prefetch list for the mount: those files instead of the image's table
    expect(parseMountSpec({ source: '/b.boot', fs_type: 'rafs', prefetch_files: ['/usr/bin', '/etc/passwd'] })).toEqual({ bootstrap: '/b.boot', prefetch: true, prefetchFiles: ['/usr/bin', '/etc/passwd'] });
    const registry = JSON.stringify({ device: { backend: { type: 'registry', config: { scheme: 'http', skip_verify: true } } } });
    expect(parseMountSpec({ target: 'r/x:y', config: registry })).toEqual({ target: 'r/x:y', plainHttp: true, insecure: true });
    // the snapshotter's per-image config names the image's repository: the bootstrap's blobs come from there
    const repo = JSON.stringify({ device: { backend: { type: 'registry', config: { scheme: 'https', host: 'reg.example', repo: 'team/app' } } } });
    expect(parseMountSpec({ source: '/b.boot', fs_type: 'rafs', config: repo })).toEqual({ bootstrap: '/b.boot', blobRepository: 'reg.example/team/app', plainHttp: false });
    expect(parseMountSpec({ target: 'r/x:y', trace: '/var/traces/x.json' })).toEqual({ target: 'r/x:y', trace: '/var/traces/x.json' });
    // a snapshotter's: the pull secret of the image's registry, and the files containerd reads first
    expect(parseMountSpec({ target: 'r/x:y', auth: { username: 'u', password: 'p' }, runtimeFiles: ['/etc/passwd'] })).toEqual({ target: 'r/x:y', auth: { username: 'u', password: 'p' }, runtimeFiles: ['/etc/passwd'] });
    // a snapshotter's hosts.toml mirrors for the target's registry
    expect(parseMountSpec({ target: 'r/x:y', mirrors: [{ host: '127.0.0.1:5010', plainHttp: true }] })).toEqual({ target: 'r/x:y', mirrors: [{ host: '127.0.0.1:5010', plainHttp: true, insecure: false }] });
    // a spec as a record holds it (the snapshotter's, with a system API prefetch list)
    expect(parseMountSpec({ target: 'r/x:y', prefetch: true, prefetchFiles: ['/bin/sh'] })).toEqual({ target: 'r/x:y', prefetch: true, prefetchFiles: ['/bin/sh'] });
  });

  it.each([
    [{}, /either target/],
    [{ target: 'r/x', bootstrap: '/b' }, /either target/],
    [{ target: 'r/x', blobDir: '/d' }, /blobDir goes with bootstrap/],
    [{ bootstrap: '/b', fs_type: 'fscache' }, /only "rafs"/],
    [{ bootstrap: '/b', config: '{}' }, /mount\.config: expected a nydusd config/],
    [{ bootstrap: '/b', config: '{"device":' }, /mount\.config: not JSON/],
    [{ bootstrap: '/b', config: JSON.stringify({ device: { backend: { type: 'oss', config: {} } } }) }, /mount\.config\.device\.backend\.type: backend "oss"/],
    [{ bootstrap: '/b', prefetch_files: ['usr/bin/node'] }, /mount\.prefetch_files\[0\]: expected an absolute path/],
    [{ bootstrap: '/b', prefetch_files: '/usr/bin/node' }, /mount\.prefetch_files: expected a list/],
    [{ bootstrap: '/b', config: JSON.stringify({ device: { backend: { type: 'registry', config: { host: 'reg.example', repo: 'UPPER CASE' } } } }) }, /mount\.config \(registry host\/repo\)/],
    [{ bootstrap: 'a\0b' }, /non-empty string/],
    [{ target: 'r/x', trace: 'trace.json' }, /trace: expected an absolute path/],
    [{ target: 'r/x', trace: 7 }, /trace: expected a non-empty string/],
    [{ bootstrap: '/b', auth: { username: 'u', password: 'p' } }, /mount\.auth: credentials go with target/],
    [{ target: 'r/x', auth: { username: 'u' } }, /mount\.auth: expected username and password/],
    [{ target: 'r/x', auth: { username: 'u', password: 'p', registryToken: 't' } }, /unknown key "registryToken"/],
    [{ target: 'r/x', runtimeFiles: ['etc/passwd'] }, /mount\.runtimeFiles\[0\]: expected an absolute path/],
    [{ target: 'r/x', prefetchFiles: ['/a'], prefetch_files: ['/b'] }, /prefetch_files and prefetchFiles are one list/],
    [{ bootstrap: '/b', mirrors: [] }, /mount\.mirrors: mirrors go with target/],
    [{ target: 'r/x', mirrors: [{ host: 'http://m' }] }, /mount\.mirrors\[0\]\.host: expected host\[:port\]/],
  ])('refuses %j', (value, message) => {
    expect(() => parseMountSpec(value)).toThrow(message);
  });
});

describe('checkImageName', () => {
  it('takes one path component and nothing that climbs out', () => {
    expect(checkImageName('app-1.2_x')).toBe('app-1.2_x');
    for (const bad of ['', '.', '..', '../x', 'a/b', '-x', '.hidden', 'x'.repeat(129), 'sp ace']) expect(() => checkImageName(bad), bad).toThrow(ConfigError);
  });
});
