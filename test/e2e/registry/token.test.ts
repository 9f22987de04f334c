// Where a password may travel for a Bearer token: a registry names its token realm, so a hostile (or
// misconfigured) one could name a plain-HTTP realm and collect its users' passwords in clear text. Local
// servers play the registry (HTTPS with the e2e self-signed certificate, or plain HTTP) and the token server.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuthenticationError } from '../../../src/registry/errors.js';
import { MediaType } from '../../../src/registry/media-types.js';
import { startServer, type TestServer } from '../../registry/http-fixtures.js';
import { e2eDir, fastRetry, makeImage, USER, useRegistries } from '../../registry/registry-fixtures.js';

const ctx = useRegistries();
const manifest = makeImage(10).manifest;

interface TokenServer {
  server: TestServer;
  /** Method, Authorization header and body of every request it got. */
  seen: string[];
}

async function tokenServer(): Promise<TokenServer> {
  const seen: string[] = [];
  const server = ctx.track(
    await startServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        seen.push(`${req.method} ${req.headers.authorization ?? 'none'} ${body}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 't0ken' }));
      });
    }),
  );
  return { server, seen };
}

/** Serves one manifest to requests bearing the token, a Bearer challenge naming `realm` to the others. */
function bearerRegistry(realm: string) {
  return (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.authorization !== 'Bearer t0ken') return void res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="s"` }).end();
    res.writeHead(200, { 'content-type': MediaType.ociManifest }).end(manifest);
  };
}

async function httpsRegistry(realm: string): Promise<TestServer> {
  const dir = join(e2eDir, 'registry');
  const server = createHttpsServer({ key: readFileSync(join(dir, 'token-key.pem')), cert: readFileSync(join(dir, 'token-cert.pem')) }, bearerRegistry(realm));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return ctx.track({
    port,
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

const once = { plainHttp: false, retry: { ...fastRetry, attempts: 1 } };

describe('token realm', () => {
  it('regression: an HTTPS registry naming a plain-HTTP token realm never gets the password sent there', async () => {
    const tokens = await tokenServer();
    const registry = await httpsRegistry(`http://${tokens.server.host}/token`);
    const tls = { [registry.host]: { insecure: true } };
    const withPassword = ctx.client({ ...once, hosts: tls, credentials: { [registry.host]: USER } });
    const err = await withPassword.repository(`${registry.host}/secret`).getManifest('v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect((err as Error).message).toBe(`${registry.host}: refusing to send credentials to token realm http://${tokens.server.host}/token: plain HTTP from an HTTPS registry`);
    expect(tokens.seen).toEqual([]);

    // without credentials there is nothing to leak: the anonymous token is fetched as before
    const anonymous = ctx.client({ ...once, hosts: tls });
    expect((await anonymous.repository(`${registry.host}/secret`).getManifest('v1')).bytes.equals(manifest)).toBe(true);
    expect(tokens.seen).toEqual(['GET none ']);
  });

  it('regression: a plain-HTTP registry sends the password to a plain-HTTP realm on another host only when that host is declared plain HTTP', async () => {
    const tokens = await tokenServer();
    const registry = ctx.track(await startServer(bearerRegistry(`http://${tokens.server.host}/token`)));
    const credentials = { [registry.host]: USER };
    const registryOnly = ctx.client({ ...once, hosts: { [registry.host]: { plainHttp: true } }, credentials });
    await expect(registryOnly.repository(`${registry.host}/secret`).getManifest('v1')).rejects.toThrow(
      `${registry.host}: refusing to send credentials to token realm http://${tokens.server.host}/token: plain HTTP to ${tokens.server.host}, which is not a plain-HTTP host of this client`,
    );
    expect(tokens.seen).toEqual([]);

    const both = ctx.client({ ...once, hosts: { [registry.host]: { plainHttp: true }, [tokens.server.host]: { plainHttp: true } }, credentials });
    expect((await both.repository(`${registry.host}/secret`).getManifest('v1')).bytes.equals(manifest)).toBe(true);
    expect(tokens.seen).toHaveLength(1);
    expect(tokens.seen[0]).toMatch(/^POST none .*grant_type=password&username=testuser&password=testpass/);
  });
});
