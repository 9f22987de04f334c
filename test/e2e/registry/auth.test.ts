// Registry authentication end to end: Basic, docker config, token server (OAuth2 POST, GET, refresh_token,
// fallback to GET when POST is refused), token cache and expiry, and the errors for bad or missing credentials.
import { createSign, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Authenticator, repositoryScope } from '../../../src/registry/auth.js';
import { AuthenticationError } from '../../../src/registry/errors.js';
import { HttpTransport } from '../../../src/registry/transport.js';
import { forward, startServer, type TestServer } from '../../registry/http-fixtures.js';
import { BASIC, e2eDir, logLines, logSize, makeImage, pushImage, readAll, repo, run, sha256, TOKEN_REGISTRY, TOKEN_SERVER, USER, useRegistries } from '../../registry/registry-fixtures.js';

const ctx = useRegistries();

describe('authentication', () => {
  it('basic auth: credentials work, a wrong password and no credentials are clear errors', async () => {
    const image = makeImage(2000);
    const name = `${BASIC}/${repo('basic')}`;
    const good = ctx.client({ credentials: { [BASIC]: USER } }).repository(name);
    await pushImage(good, image, 'v1');
    expect((await good.getManifest('v1')).digest).toBe(image.manifestDigest);

    const wrong = ctx.client({ credentials: { [BASIC]: { username: 'testuser', password: 'nope' } } }).repository(name);
    const err = await wrong.getManifest('v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect((err as Error).message).toMatch(/^authentication failed for 127\.0\.0\.1:5001: 401 UNAUTHORIZED/);

    await expect(ctx.client().repository(name).getManifest('v1')).rejects.toThrow('authentication required by 127.0.0.1:5001 (Basic) and no username/password is configured for it');
  });

  it('reads credentials from a docker config file', async () => {
    const path = join(ctx.work, 'docker-config.json');
    writeFileSync(path, JSON.stringify({ auths: { [`http://${BASIC}`]: { auth: Buffer.from('testuser:testpass').toString('base64') } } }));
    const store = ctx.client({ dockerConfig: path }).repository(`${BASIC}/${repo('dockercfg')}`);
    await pushImage(store, makeImage(1000), 'v1');
    expect((await store.getManifest('v1')).kind).toBe('manifest');
  });

  it('token auth: OAuth2 POST with a password, anonymous GET for pulls, and refresh_token from an identity token', async () => {
    const name = repo('token');
    const image = makeImage(3000);
    const since = logSize('token-server');
    const pusher = ctx.client({ credentials: { [TOKEN_REGISTRY]: USER } }).repository(`${TOKEN_REGISTRY}/${name}`);
    await pushImage(pusher, image, 'v1');
    const layer = { digest: sha256(image.layer), size: image.layer.length };
    const mounted = ctx.client({ credentials: { [TOKEN_REGISTRY]: USER } }).repository(`${TOKEN_REGISTRY}/${repo('token-mount')}`);
    expect(await mounted.putBlob(layer, image.layer, { mountFrom: pusher })).toBe('mounted');
    const anonymous = ctx.client().repository(`${TOKEN_REGISTRY}/${name}`);
    expect(sha256(await readAll(await anonymous.getBlob(sha256(image.layer))))).toBe(sha256(image.layer));
    const path = join(ctx.work, 'docker-config-token.json');
    writeFileSync(path, JSON.stringify({ auths: { [TOKEN_REGISTRY]: { auth: Buffer.from('<token>:').toString('base64'), identitytoken: 'e2e-refresh-testuser' } } }));
    const refresher = ctx.client({ dockerConfig: path }).repository(`${TOKEN_REGISTRY}/${repo('token-refresh')}`);
    await pushImage(refresher, makeImage(1000), 'v1');

    const lines = logLines('token-server', since, `"name":"nydusify-ts-test/`).filter((l) => l.includes(run));
    expect(lines.some((l) => / POST \/token form:password user=testuser .*"actions":\["pull","push"\]/.test(l) && l.includes(name))).toBe(true);
    expect(lines.some((l) => / GET \/token\?\S+ +anonymous .*"actions":\["pull"\]/.test(l) && l.includes(name))).toBe(true);
    expect(lines.some((l) => / POST \/token form:refresh_token user=testuser /.test(l) && l.includes(repo('token-refresh')))).toBe(true);
    // one token for the mount: push on the target and pull on the source
    expect(lines.some((l) => l.includes(`{"type":"repository","name":"${repo('token-mount')}","actions":["pull","push"]}`) && l.includes(`{"type":"repository","name":"${name}","actions":["pull"]}`))).toBe(true);
  });

  it('caches tokens by scope and renews them when their announced lifetime runs out', async () => {
    let now = Date.now();
    const transport = new HttpTransport({ plainHttp: true });
    const auth = new Authenticator(transport, async () => USER, () => now);
    try {
      await auth.unauthorized(TOKEN_REGISTRY, `Bearer realm="http://${TOKEN_SERVER}/token",service="e2e-registry"`, undefined, '');
      const pull = [repositoryScope(repo('clock'), ['pull'])];
      const pullPush = [repositoryScope(repo('clock'), ['pull', 'push'])];
      const first = await auth.authorization(TOKEN_REGISTRY, pull);
      expect(first).toMatch(/^Bearer /);
      expect(await auth.authorization(TOKEN_REGISTRY, pull)).toBe(first);
      const wider = await auth.authorization(TOKEN_REGISTRY, pullPush);
      expect(wider).not.toBe(first);
      now += 296_000; // token-server.mjs announces 300 s; renewal starts 5 s before
      const renewed = await auth.authorization(TOKEN_REGISTRY, pull);
      expect([first, wider]).not.toContain(renewed);
      auth.forget(TOKEN_REGISTRY, renewed);
      expect(await auth.authorization(TOKEN_REGISTRY, pull)).not.toBe(renewed);
    } finally {
      await transport.close();
    }
  });

  it('token auth: a wrong password fails at the token server; an anonymous push is refused', async () => {
    const name = `${TOKEN_REGISTRY}/${repo('token-denied')}`;
    const wrong = ctx.client({ credentials: { [TOKEN_REGISTRY]: { username: 'testuser', password: 'nope' } } }).repository(name);
    await expect(wrong.getManifest('v1')).rejects.toThrow(`authentication failed for ${TOKEN_REGISTRY}: token server http://${TOKEN_SERVER}/token answered 401: bad credentials`);
    const blob = randomBytes(100);
    const err = await ctx.client().repository(name).putBlob({ digest: sha256(blob), size: 100 }, blob).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect((err as Error).message).toContain(`authentication failed for ${TOKEN_REGISTRY}: 401 UNAUTHORIZED`);
    expect((err as Error).message).toContain('(no credentials are configured for 127.0.0.1:5003)');
  });

  describe('through a proxy that owns the token realm', () => {
    let proxy: TestServer;
    const tokenRequests: string[] = [];
    let handOutExpired = false;
    let refusePost = false;

    /** An RS256 JWT the registry trusts (same key and x5c as token-server.mjs) that expired a minute ago. */
    function expiredToken(repository: string): string {
      const dir = join(e2eDir, 'registry');
      const cert = new X509Certificate(readFileSync(join(dir, 'token-cert.pem'))).raw.toString('base64');
      const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url');
      const now = Math.floor(Date.now() / 1000);
      const claims = { iss: 'e2e-issuer', sub: 'testuser', aud: 'e2e-registry', exp: now - 60, nbf: now - 600, iat: now - 600, jti: randomBytes(8).toString('hex'), access: [{ type: 'repository', name: repository, actions: ['pull', 'push'] }] };
      const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', x5c: [cert] }))}.${b64url(JSON.stringify(claims))}`;
      const signature = createSign('RSA-SHA256').update(input).sign(readFileSync(join(dir, 'token-key.pem')));
      return `${input}.${b64url(signature)}`;
    }

    beforeAll(async () => {
      proxy = await startServer((req, res) => {
        if (req.url?.startsWith('/token')) {
          tokenRequests.push(req.method ?? '');
          if (refusePost && req.method === 'POST') return void res.writeHead(405).end();
          if (handOutExpired) {
            handOutExpired = false;
            const token = expiredToken(repo('expired'));
            // the server claims a long life: only the registry's 401 tells the client it is stale
            return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300, issued_at: new Date().toISOString() }));
          }
          return forward(req, res, TOKEN_SERVER);
        }
        forward(req, res, TOKEN_REGISTRY, (headers) => {
          const challenge = headers['www-authenticate'];
          if (typeof challenge === 'string') headers['www-authenticate'] = challenge.replace(`http://${TOKEN_SERVER}/token`, `http://${proxy.host}/token`);
          return headers;
        });
      });
      ctx.track(proxy);
    });

    it('falls back to the GET token flow with Basic credentials when the realm refuses POST', async () => {
      refusePost = true;
      tokenRequests.length = 0;
      const since = logSize('token-server');
      try {
        const store = ctx.client({ credentials: { [proxy.host]: USER } }).repository(`${proxy.host}/${repo('get-fallback')}`);
        await pushImage(store, makeImage(1000), 'v1');
      } finally {
        refusePost = false;
      }
      expect(tokenRequests.slice(0, 2)).toEqual(['POST', 'GET']);
      const lines = logLines('token-server', since, repo('get-fallback'));
      expect(lines.some((l) => / GET \/token\?\S+ +user=testuser .*"actions":\["pull","push"\]/.test(l))).toBe(true);
    });

    it('drops a token the registry calls expired, fetches a new one and retries once', async () => {
      const image = makeImage(1000);
      await pushImage(ctx.client({ credentials: { [proxy.host]: USER } }).repository(`${proxy.host}/${repo('expired')}`), image, 'v1');
      const c = ctx.client({ credentials: { [proxy.host]: USER } });
      await c.repository(`${proxy.host}/${repo('expired-warmup')}`).hasBlob(sha256(image.layer)); // learns the realm
      tokenRequests.length = 0;
      handOutExpired = true;
      // the realm is known now, so the token is fetched before the request; the expired one gets a 401
      expect((await c.repository(`${proxy.host}/${repo('expired')}`).getManifest('v1')).digest).toBe(image.manifestDigest);
      expect(handOutExpired).toBe(false);
      expect(tokenRequests).toEqual(['POST', 'POST']);
    });
  });
});
