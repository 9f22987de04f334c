// containerd's hosts.toml read for a registry's mirrors: the host's own file, else _default; pull
// mirrors only; scheme and skip_verify; what this daemon's mirrors would not do is refused by name.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostsTomlMirrors } from '../../src/snapshotter/hosts-toml.js';

function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'nydusify-hosts-'));
  for (const [host, text] of Object.entries(files)) {
    mkdirSync(join(dir, host));
    writeFileSync(join(dir, host, 'hosts.toml'), text);
  }
  return dir;
}

describe('hostsTomlMirrors', () => {
  it('gives the pull mirrors of the host\'s hosts.toml, in order, else _default\'s', () => {
    const dir = dirWith({
      '127.0.0.1:5000': [
        'server = "http://127.0.0.1:5000"',
        '[host."http://127.0.0.1:5010"]', 'capabilities = ["pull", "resolve"]',
        '[host."https://mirror.example:8443/v2"]', 'capabilities = ["pull"]', 'skip_verify = true',
        '[host."https://push.example"]', 'capabilities = ["push"]',
      ].join('\n'),
      _default: '[host."https://default.example"]\n',
    });
    expect(hostsTomlMirrors(dir, '127.0.0.1:5000')).toEqual([
      { host: '127.0.0.1:5010', plainHttp: true, insecure: false },
      { host: 'mirror.example:8443', plainHttp: false, insecure: true },
    ]);
    expect(hostsTomlMirrors(dir, 'docker.io')).toEqual([{ host: 'default.example', plainHttp: false, insecure: false }]);
    expect(hostsTomlMirrors(dirWith({}), 'docker.io')).toEqual([]);
  });

  it('refuses what the mirrors here would not do, and a host that is not one', () => {
    const bad = (text: string, message: RegExp) => expect(() => hostsTomlMirrors(dirWith({ 'r.example': text }), 'r.example')).toThrow(message);
    bad('[host."https://m.example"]\n[host."https://m.example".header]\nx = "y"\n', /host\."https:\/\/m\.example"\.header: not done/);
    bad('[host."https://m.example"]\nca = "/etc/ca.pem"\n', /\.ca: not done/);
    bad('[host."https://m.example/prefix"]\n', /a path prefix is not served/);
    bad('[host."https://m.example"]\nskip_verify = "yes"\n', /skip_verify: expected true or false/);
    bad('host = 3\n', /expected tables of mirrors/);
    bad('[host."https://m.example"\n', /not TOML/);
    expect(() => hostsTomlMirrors(dirWith({}), '../etc')).toThrow(/not a registry host/);
  });
});
