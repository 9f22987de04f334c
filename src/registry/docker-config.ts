// Registry credentials from Docker's config file ($DOCKER_CONFIG/config.json, else ~/.docker/config.json):
// `auths[host].auth` (base64 user:pass), `username`/`password`, `identitytoken` (an OAuth2 refresh token),
// and the `credHelpers` / `credsStore` programs (docker-credential-NAME get).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { log } from '../util/log.js';
import { DOCKER_HUB, DOCKER_HUB_HOST } from './reference.js';

export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (`identitytoken` in config.json), used with grant_type=refresh_token. */
  identityToken?: string;
  /** A bearer token sent as it is on every request (nydusd's registry_token): no challenge, no token server. */
  registryToken?: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

export interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** Docker stores Docker Hub credentials under its legacy index URL. */
const DOCKER_HUB_INDEX = 'https://index.docker.io/v1/';
const DOCKER_HUB_NAMES = new Set(['index.docker.io', DOCKER_HUB, DOCKER_HUB_HOST]);
const helperLog = log.child({ component: 'docker-config' });

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG || join(homedir(), '.docker'), 'config.json');
}

/** The parsed config, or undefined when the file does not exist. A file that exists but is not JSON is an error. */
export async function readDockerConfig(path = dockerConfigPath()): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as DockerConfig;
  } catch (err) {
    throw new Error(`docker config ${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/** `https://host:port/v1/` → `host:port`, and every Docker Hub spelling → docker.io. */
function normalizeKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  return DOCKER_HUB_NAMES.has(host) ? DOCKER_HUB : host;
}

function entryCredentials(entry: AuthEntry): Credentials | undefined {
  const creds: Credentials = {};
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      creds.username = decoded.slice(0, colon);
      creds.password = decoded.slice(colon + 1);
    }
  }
  if (entry.username) creds.username = entry.username;
  if (entry.password) creds.password = entry.password;
  if (entry.identitytoken) creds.identityToken = entry.identitytoken;
  return creds.password !== undefined || creds.identityToken !== undefined ? creds : undefined;
}

/** Credentials stored inline in `auths` for `host` (host[:port], or docker.io / registry-1.docker.io). */
export function inlineCredentials(config: DockerConfig, host: string): Credentials | undefined {
  const want = normalizeKey(host);
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (normalizeKey(key) !== want) continue;
    const creds = entryCredentials(entry);
    if (creds) return creds;
  }
  return undefined;
}

/** The credential helper responsible for `host`, if any: credHelpers[host], else credsStore. */
export function credentialHelperFor(config: DockerConfig, host: string): string | undefined {
  const want = normalizeKey(host);
  for (const [key, helper] of Object.entries(config.credHelpers ?? {})) if (normalizeKey(key) === want) return helper;
  return config.credsStore || undefined;
}

/** Runs `docker-credential-NAME get` for `server`; a helper that knows nothing about it yields undefined. */
export function runCredentialHelper(helper: string, server: string): Promise<Credentials | undefined> {
  return new Promise((resolve, reject) => {
    const program = `docker-credential-${helper}`;
    const child = execFile(program, ['get'], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) {
        // helpers exit non-zero with "credentials not found in native keychain" for unknown servers
        if (/not found/i.test(`${stdout}${stderr}`)) return resolve(undefined);
        return reject(new Error(`${program} get ${server}: ${(stderr || err.message).trim()}`));
      }
      try {
        const answer = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (!answer.Secret) return resolve(undefined);
        // Docker's convention: Username "<token>" means Secret is an identity (refresh) token
        resolve(answer.Username === '<token>' ? { identityToken: answer.Secret } : { username: answer.Username ?? '', password: answer.Secret });
      } catch (parseErr) {
        reject(new Error(`${program} get ${server}: unreadable answer: ${(parseErr as Error).message}`));
      }
    });
    child.stdin?.end(server);
  });
}

/** The server name a helper is asked about: Docker Hub's legacy index URL, else the host. */
function helperServerName(host: string): string {
  return normalizeKey(host) === DOCKER_HUB ? DOCKER_HUB_INDEX : host;
}

/**
 * Credentials for `host` from the docker config at `path` (read on each call): the helper named for the
 * host or the default store first, as docker does, then the inline `auths` entry. A helper that fails (often
 * a `credsStore` copied from a desktop machine) is logged and skipped, so public images still pull.
 */
export async function dockerConfigCredentials(host: string, path = dockerConfigPath()): Promise<Credentials | undefined> {
  const config = await readDockerConfig(path);
  if (!config) return undefined;
  const helper = credentialHelperFor(config, host);
  if (helper) {
    try {
      const fromHelper = await runCredentialHelper(helper, helperServerName(host));
      helperLog.debug('credential helper asked', { helper, host, found: fromHelper !== undefined });
      if (fromHelper) return fromHelper;
    } catch (err) {
      helperLog.warn('credential helper failed; using the inline entry if any', { helper, host, error: err });
    }
  }
  return inlineCredentials(config, host);
}
