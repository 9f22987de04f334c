// Upstream nydusd configs read as ours. The configs below have the keys and shapes of upstream's
// samples (dragonflyoss/nydus misc/configs/nydusd-config.json and nydusd-config-v2.toml at 0063e89,
// containerd/nydus-snapshotter misc/snapshotter/nydusd-config.fusedev.json and
// nydusd-config-localfs.json at 5a8d76a), values ours.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_CONFIG, loadDaemonConfig, parseDaemonConfig } from '../../src/daemon/config.js';
import { isNydusdConfig, nydusdToOurs } from '../../src/daemon/nydusd-config.js';

const v1 = {
  device: {
    backend: {
      type: 'registry',
      config: {
        scheme: 'http', timeout: 5, connect_timeout: 5, retry_limit: 2, skip_verify: false,
        ca_cert_files: ['/etc/ssl/certs/ca.pem'], client_cert_file: '/etc/ssl/c.pem', client_key_file: '/etc/ssl/k.pem',
        mirrors: [{ host: 'http://127.0.0.1:65001', ping_url: 'http://127.0.0.1:65001/ping', health_check_interval: 5, failure_limit: 5 }],
      },
    },
    cache: { type: 'blobcache', config: { work_dir: '/var/lib/nydus/cache' } },
  },
  mode: 'direct',
  digest_validate: false,
  iostats_files: false,
  enable_xattr: true,
  amplify_io: 524288,
  fs_prefetch: { enable: true, threads_count: 8, merging_size: 1048576, bandwidth_rate: 10_000_000, prefetch_all: true },
};

const v2Toml = `
version = 2
id = "my_id"

[backend]
type = "registry"

[backend.registry]
scheme = "https"
host = "registry.example:5000"
repo = "nydus"
auth = "${Buffer.from('alice:s3cr:et').toString('base64')}"
skip_verify = true
timeout = 10
connect_timeout = 10
retry_limit = 5
registry_token = "bearer_token"

[backend.registry.proxy]
url = "localhost:6789"
fallback = true

[[backend.registry.mirrors]]
host = "https://mirror.example"
failure_limit = 5

[backend.registy]
scheme = "https"

[cache]
type = "filecache"
compressed = true

[cache.filecache]
work_dir = "/var/cache/nydus"

[rafs]
mode = "direct"
batch_size = 1000000
validate = true
enable_xattr = true

[rafs.prefetch]
enable = true
threads = 8
bandwidth_limit = 10000000
prefetch_all = false
`;

describe('nydusd configs', () => {
  it('reads a v1 registry config: scheme, timeout, retries, mirrors, cache dir, prefetch, amplify; lists the rest as ignored', () => {
    expect(isNydusdConfig(v1)).toBe(true);
    const c = parseDaemonConfig(v1, 'v1.json');
    expect(c.registry).toEqual({ plainHttp: true, insecure: false, retries: 2, mirrors: [{ host: '127.0.0.1:65001', plainHttp: true, insecure: false }], mirrorFailureLimit: 5, mirrorRecheckMs: 5000 });
    expect(c.cacheDir).toBe('/var/lib/nydus/cache');
    expect(c.fetchTimeout).toBe(5);
    expect(c.prefetch).toEqual({ enable: true, all: true, bandwidth: 10_000_000 });
    expect(c.fetch.amplify).toBe(524288);
    expect(nydusdToOurs(v1).ignored).toEqual([
      'device.backend.config.connect_timeout', 'device.backend.config.ca_cert_files', 'device.backend.config.client_cert_file', 'device.backend.config.client_key_file',
      'device.backend.config.mirrors[0].ping_url',
      'mode', 'digest_validate', 'iostats_files', 'enable_xattr', 'fs_prefetch.threads_count', 'fs_prefetch.merging_size',
    ]);
  });

  it('reads a v2 TOML config: credentials for its host, the chosen cache\'s work dir, rafs prefetch and batch size', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nydusd-config-'));
    writeFileSync(join(dir, 'nydusd.toml'), v2Toml);
    const c = loadDaemonConfig(join(dir, 'nydusd.toml'));
    expect(c.registry).toEqual({
      plainHttp: false, insecure: true, retries: 5, mirrors: [{ host: 'mirror.example', plainHttp: false, insecure: false }],
      // registry_token wins over auth: it is what nydusd sends
      auth: { host: 'registry.example:5000', registryToken: 'bearer_token' },
      proxy: { url: 'http://localhost:6789', fallback: true },
      mirrorFailureLimit: 5,
    });
    expect(c.cacheDir).toBe('/var/cache/nydus');
    expect(c.blobRepository).toBe('registry.example:5000/nydus');
    expect(c.fetchTimeout).toBe(10);
    expect(c.fetch.amplify).toBe(1_000_000);
    expect(c.prefetch).toEqual({ enable: true, all: false, bandwidth: 10_000_000 });
  });

  it('lists what a v2 config says that changes nothing here, the misspelt section too', () => {
    expect(nydusdToOurs(parseToml(v2Toml)).ignored).toEqual([
      'id', 'backend.registry.connect_timeout',
      'backend.registy', 'cache.compressed', 'rafs.mode', 'rafs.validate', 'rafs.enable_xattr', 'rafs.prefetch.threads',
    ]);
  });

  it('takes a localfs backend\'s dir as the blob directory of local bootstraps (the snapshotter\'s localfs sample)', () => {
    const c = parseDaemonConfig({
      device: { backend: { type: 'localfs', config: { dir: '/var/lib/nydus/blobs' } }, cache: { type: 'blobcache', config: { work_dir: '/var/lib/nydus/cache' } } },
      mode: 'direct', digest_validate: false, iostats_files: false, enable_xattr: true, fs_prefetch: { enable: true, threads_count: 2 },
    });
    expect(c.blobDir).toBe('/var/lib/nydus/blobs');
    expect(c.prefetch.enable).toBe(true);
    expect(c.registry).toEqual(DEFAULT_CONFIG.registry);
  });

  it('reads a localfs dir given beside blob_file (nydusd would read the one file) and says so; keys upstream reads nowhere are ignored', () => {
    const { ours, ignored } = nydusdToOurs({
      version: 2, backend: { type: 'localfs', localfs: { blob_file: '/tmp/nydus.blob.data', dir: '/tmp' } },
      cache: { type: 'filecache', enable_encryption: true, filecache: { work_dir: '/c', enable_encryption: false } },
    });
    expect(ours).toMatchObject({ blobDir: '/tmp', cacheDir: '/c' });
    expect(ignored).toEqual(['backend.localfs.blob_file (the blobs are read from dir, by their ids)', 'cache.enable_encryption']);
  });

  it('refuses what would make the daemon do something other than asked, naming the key', () => {
    const bad = (config: unknown, message: RegExp) => expect(() => parseDaemonConfig(config, 'c.json')).toThrow(message);
    bad({ device: { backend: { type: 'oss', config: {} } } }, /c\.json\.device\.backend\.type: backend "oss" is not one this daemon has/);
    bad({ version: 2, backend: { type: 's3', s3: {} } }, /c\.json\.backend\.type: backend "s3"/);
    bad({ device: { backend: { type: 'registry', config: {} }, cache: { type: 'fscache', config: {} } } }, /c\.json\.device\.cache\.type: cache "fscache"/);
    bad({ device: { backend: { type: 'localfs', config: { blob_file: '/tmp/x.blob' } } } }, /blob_file: one blob file is not served here/);
    bad({ device: { backend: { type: 'localfs', config: {} } } }, /a localfs backend needs its dir/);
    bad({ device: { backend: { type: 'registry', config: { scheme: 'ftp' } } } }, /scheme: expected "http" or "https"/);
    bad({ device: { backend: { type: 'registry', config: { auth: Buffer.from('nocolon').toString('base64') } } } }, /auth: expected base64 of user:password/);
    bad({ device: { backend: { type: 'registry', config: { mirrors: [{ host: 'mirror.example' }] } } } }, /mirrors\[0\]\.host: expected a URL/);
    bad({ device: { backend: { type: 'registry', config: { retry_limit: -1 } } } }, /retry_limit: expected a number/);
    bad({ device: 'registry' }, /c\.json\.device: expected an object/);
    bad({ device: { backend: { type: 'registry', config: {} }, cache: { type: 'blobcache', config: { work_dir: '/c', enable_encryption: true } } } }, /device\.cache\.config\.enable_encryption: an encrypted cache is not kept here/);
    bad({ type: 'bootstrap', id: 'b', domain_id: 'd', config: { backend_type: 'localfs', cache_type: 'fscache' } }, /c\.json: a blob cache entry of nydusd's fscache mode \(type "bootstrap"\), not a daemon config/);
    bad({ type: 'blob', config_v2: { version: 2 } }, /a blob cache entry of nydusd's fscache mode \(type "blob"\)/);
    expect(() => parseDaemonConfig({ device: { backend: { type: 'oss', config: {} } } })).toThrow(ConfigError);
  });

  it('sends a mirror the headers the config gives it (Dragonfly\'s X-Dragonfly-Registry), refusing the client\'s own', () => {
    const mirrors = (headers: unknown) => nydusdToOurs({ device: { backend: { type: 'registry', config: { mirrors: [{ host: 'http://127.0.0.1:65001', headers }] } } } }).ours.registry.mirrors;
    expect(mirrors({ 'X-Dragonfly-Registry': 'https://index.docker.io' })).toEqual([{ host: '127.0.0.1:65001', plainHttp: true, headers: { 'X-Dragonfly-Registry': 'https://index.docker.io' } }]);
    expect(() => mirrors({ Authorization: 'Basic x' })).toThrow(/Authorization is the client's to set/);
    expect(() => mirrors({ 'X-A': 'one\ntwo' })).toThrow(/expected a one-line string/);
    expect(() => mirrors({ 'bad name': 'v' })).toThrow(/is not a header name/);
  });

  it('leaves our own configs alone', () => {
    expect(isNydusdConfig({ cacheDir: '/x' })).toBe(false);
    expect(isNydusdConfig({ version: 1, device: undefined })).toBe(true);
    expect(() => parseDaemonConfig({ cacheDir: '/x', device: 1, bogus: 1 })).toThrow(/device: expected an object/);
    expect(() => parseDaemonConfig({ cacheDir: '/x', bogus: 1 })).toThrow(/unknown key "bogus"/);
  });
});
