import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getLogLevel, setLogLevel } from '../../src/util/log.js';
import { credentialHelperFor, dockerConfigCredentials, dockerConfigPath, inlineCredentials, type DockerConfig } from '../../src/registry/docker-config.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-dockercfg-'));
const logLevel = getLogLevel();
// the broken-helper case warns by design
beforeAll(() => setLogLevel('error'));
afterAll(() => {
  setLogLevel(logLevel);
  rmSync(work, { recursive: true, force: true });
});
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('docker config', () => {
  const config: DockerConfig = {
    auths: {
      '127.0.0.1:5001': { auth: b64('testuser:pa:ss') },
      'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') },
      'http://registry.example:8080/v2/': { username: 'u', password: 'p' },
      '127.0.0.1:5003': { auth: b64('<token>:'), identitytoken: 'refresh-me' },
      'empty.example': {},
    },
  };

  it('decodes auth (password may contain colons), username/password and identitytoken', () => {
    expect(inlineCredentials(config, '127.0.0.1:5001')).toEqual({ username: 'testuser', password: 'pa:ss' });
    expect(inlineCredentials(config, 'registry.example:8080')).toEqual({ username: 'u', password: 'p' });
    expect(inlineCredentials(config, '127.0.0.1:5003')).toEqual({ username: '<token>', password: '', identityToken: 'refresh-me' });
  });

  it('finds Docker Hub under every name it goes by', () => {
    for (const host of ['docker.io', 'registry-1.docker.io', 'index.docker.io']) {
      expect(inlineCredentials(config, host)).toEqual({ username: 'hubuser', password: 'hubpass' });
    }
  });

  it('gives nothing for unknown hosts and empty entries', () => {
    expect(inlineCredentials(config, '127.0.0.1:5000')).toBeUndefined();
    expect(inlineCredentials(config, 'empty.example')).toBeUndefined();
    expect(inlineCredentials({}, 'x')).toBeUndefined();
  });

  it('picks credHelpers[host] over credsStore', () => {
    const helpers: DockerConfig = { credsStore: 'desktop', credHelpers: { 'gcr.io': 'gcloud' } };
    expect(credentialHelperFor(helpers, 'gcr.io')).toBe('gcloud');
    expect(credentialHelperFor(helpers, 'ghcr.io')).toBe('desktop');
    expect(credentialHelperFor({}, 'ghcr.io')).toBeUndefined();
  });

  it('honours $DOCKER_CONFIG', () => {
    expect(dockerConfigPath({ DOCKER_CONFIG: '/etc/dc' })).toBe('/etc/dc/config.json');
    expect(dockerConfigPath({})).toMatch(/\.docker\/config\.json$/);
  });

  it('reads the file, asks a credential helper first and falls back to inline auths when it fails', async () => {
    const bin = join(work, 'bin');
    mkdirSync(bin);
    // a fake helper: knows one server, says "not found" for the rest, as docker-credential-* do
    writeFileSync(
      join(bin, 'docker-credential-e2e'),
      '#!/bin/sh\nread server\nif [ "$server" = "helped.example" ]; then echo \'{"ServerURL":"helped.example","Username":"hu","Secret":"hs"}\'; ' +
        'elif [ "$server" = "token.example" ]; then echo \'{"Username":"<token>","Secret":"idtok"}\'; ' +
        'else echo "credentials not found in native keychain"; exit 1; fi\n',
    );
    chmodSync(join(bin, 'docker-credential-e2e'), 0o755);
    const path = join(work, 'config.json');
    writeFileSync(path, JSON.stringify({ credsStore: 'e2e', credHelpers: { 'broken.example': 'missing' }, auths: { 'inline.example': { auth: b64('iu:ip') }, 'broken.example': { auth: b64('bu:bp') } } }));
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      expect(await dockerConfigCredentials('helped.example', path)).toEqual({ username: 'hu', password: 'hs' });
      expect(await dockerConfigCredentials('token.example', path)).toEqual({ identityToken: 'idtok' });
      expect(await dockerConfigCredentials('inline.example', path)).toEqual({ username: 'iu', password: 'ip' });
      expect(await dockerConfigCredentials('broken.example', path)).toEqual({ username: 'bu', password: 'bp' });
      expect(await dockerConfigCredentials('nothing.example', path)).toBeUndefined();
    } finally {
      process.env.PATH = oldPath;
    }
    expect(await dockerConfigCredentials('x', join(work, 'absent.json'))).toBeUndefined();
    writeFileSync(join(work, 'bad.json'), '{not json');
    await expect(dockerConfigCredentials('x', join(work, 'bad.json'))).rejects.toThrow(/not valid JSON/);
  });
});
