// nydus-snapshotter's config.toml read as our snapshotter's settings. The sample has the keys and
// layout of upstream's misc/snapshotter/config.toml (containerd/nydus-snapshotter at 0167b96), values ours.
import { parse as parseToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { snapshotterSettings } from '../../src/snapshotter/snapshotter-config.js';

const sample = `
version = 1
root = "/var/lib/containerd-nydus"
address = "/run/containerd-nydus/containerd-nydus-grpc.sock"
daemon_mode = "multiple"
cleanup_on_close = false

[system]
enable = true
address = "/run/containerd-nydus/system.sock"

[daemon]
nydusd_config = "/etc/nydus/nydusd-config.fusedev.json"
nydusd_path = "/usr/local/bin/nydusd"
fs_driver = "fusedev"
recover_policy = "failover"
threads_number = 4

[log]
log_to_stdout = false
level = "debug"

[metrics]
address = ":9110"

[remote]
convert_vpc_registry = false
skip_ssl_verify = true

[remote.mirrors_config]

[cache_manager]
disable = false
gc_period = "24h"
cache_dir = "/var/cache/nydus"

[experimental]
enable_stargz = false
enable_referrer_detect = false
`;

describe('snapshotterSettings', () => {
  it('reads what applies from nydus-snapshotter\'s config.toml and lists the rest', () => {
    const s = snapshotterSettings(parseToml(sample), 'config.toml');
    expect(s).toMatchObject({
      root: '/var/lib/containerd-nydus', address: '/run/containerd-nydus/containerd-nydus-grpc.sock', daemonMode: 'dedicated',
      daemonConfig: '/etc/nydus/nydusd-config.fusedev.json', fsDriver: 'fuse', recoverPolicy: 'failover', threads: 4,
      logLevel: 'debug', cacheDir: '/var/cache/nydus', insecure: true, stargz: false, systemAddress: '/run/containerd-nydus/system.sock', metricsAddress: ':9110',
    });
    expect(s.ignored).toEqual(['version', 'cleanup_on_close', 'daemon.nydusd_path', 'log.log_to_stdout', 'cache_manager.disable', 'cache_manager.gc_period', 'remote.convert_vpc_registry', 'experimental.enable_referrer_detect']);
  });

  it('takes blockdev as our block driver, shared mode, an empty cache_dir as the default', () => {
    expect(snapshotterSettings({ daemon_mode: 'shared', daemon: { fs_driver: 'blockdev', threads_number: 0 }, cache_manager: { cache_dir: '' } })).toEqual({ daemonMode: 'shared', fsDriver: 'block', ignored: [] });
  });

  it('reads [remote.auth] enable_cri_keychain and image_service_address', () => {
    expect(snapshotterSettings({ remote: { auth: { enable_cri_keychain: true, image_service_address: '/run/k/containerd.sock' } } })).toMatchObject({ criKeychain: true, imageServiceAddress: '/run/k/containerd.sock', ignored: [] });
    expect(snapshotterSettings({ remote: { auth: { enable_cri_keychain: false, image_service_address: '' } } })).toEqual({ criKeychain: false, ignored: [] });
  });

  it('reads [remote] mirrors_config.dir as containerd\'s hosts.toml directories', () => {
    expect(snapshotterSettings({ remote: { mirrors_config: { dir: '/etc/nydus/certs.d' } } }).mirrorsDir).toBe('/etc/nydus/certs.d');
  });

  it('refuses what it would serve otherwise than asked, naming the key', () => {
    const bad = (v: unknown, m: RegExp) => expect(() => snapshotterSettings(v, 'c.toml')).toThrow(m);
    bad({ daemon_mode: 'none' }, /c\.toml\.daemon_mode: "none" is not served here/);
    bad({ daemon: { fs_driver: 'fscache' } }, /c\.toml\.daemon\.fs_driver: "fscache"/);
    bad({ daemon: { recover_policy: 'none' } }, /recover_policy: "none"/);
    bad({ daemon: { threads_number: -1 } }, /threads_number: expected 0 to 1024/);
    bad({ remote: { mirrors_config: { dir: 7 } } }, /mirrors_config\.dir: expected a non-empty string/);
    bad({ remote: { auth: { enable_kubeconfig_keychain: true } } }, /remote\.auth\.enable_kubeconfig_keychain: that keychain is not here/);
    bad({ remote: { auth: { enable_cri_keychain: 'yes' } } }, /remote\.auth\.enable_cri_keychain: expected true or false/);
    bad({ experimental: { enable_stargz: 'yes' } }, /enable_stargz: expected true or false/);
    bad({ daemon: 'fusedev' }, /c\.toml\.daemon: expected a table/);
  });
});
