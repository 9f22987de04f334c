// The token server distribution's "token" auth needs and Debian does not ship (Node stdlib only).
//   node token-server.mjs --listen 127.0.0.1:5002 --key key.pem --cert cert.pem \
//        [--issuer e2e-issuer] [--service e2e-registry] [--user testuser:testpass] [--anon-pull]
// Both flows clients use:
//   GET  /token?service=…&scope=…   Basic credentials in Authorization, or none (docker token spec)
//   POST /token  form grant_type=password (username, password) or grant_type=refresh_token
//                (refresh_token), scope and service in the form (OAuth2; containerd with credentials)
// Tokens are RS256 JWTs whose x5c header carries the certificate the registry trusts
// (auth.token.rootcertbundle). The user gets every action asked for; anonymous callers get pull only
// with --anon-pull, else nothing. Tokens live 300 s; a password grant also returns the refresh token
// "e2e-refresh-<user>". Each request is logged on one line that tests read:
//   <time> <METHOD> <url> [form:<grant_type>] user=<name>|anonymous <granted access as JSON>
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

const TOKEN_LIFETIME_S = 300;
const MAX_FORM_BYTES = 64 * 1024;

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) continue;
    const name = argv[i].slice(2);
    out[name] = argv[i + 1] !== undefined && !argv[i + 1].startsWith('--') ? argv[++i] : true;
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const [host, port] = String(args.listen ?? '127.0.0.1:5002').split(':');
const signingKey = fs.readFileSync(args.key, 'utf8');
const certificate = new crypto.X509Certificate(fs.readFileSync(args.cert)).raw.toString('base64');
const issuer = args.issuer ?? 'e2e-issuer';
const service = args.service ?? 'e2e-registry';
const [username, password] = String(args.user ?? 'testuser:testpass').split(':');
const anonymousPull = args['anon-pull'] === true;
const refreshTokenOf = (user) => `e2e-refresh-${user}`;

const base64url = (data) => Buffer.from(data).toString('base64url');

function issue(subject, access) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'RS256', typ: 'JWT', x5c: [certificate] };
  const claims = { iss: issuer, sub: subject, aud: service, iat: now, nbf: now - 10, exp: now + TOKEN_LIFETIME_S, jti: crypto.randomBytes(12).toString('hex'), access };
  const signed = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  return `${signed}.${base64url(crypto.sign('RSA-SHA256', Buffer.from(signed), signingKey))}`;
}

/** The user the request authenticates as, null for anonymous, or undefined when its credentials are wrong. */
function authenticate(req, form) {
  const header = req.headers.authorization ?? '';
  if (header.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString();
    const colon = decoded.indexOf(':');
    return decoded.slice(0, colon) === username && decoded.slice(colon + 1) === password ? username : undefined;
  }
  switch (form?.get('grant_type')) {
    case 'password':
      return form.get('username') === username && form.get('password') === password ? username : undefined;
    case 'refresh_token':
      return form.get('refresh_token') === refreshTokenOf(username) ? username : undefined;
    default:
      return null;
  }
}

/** "repository:some/name:pull,push" entries (space-separated, possibly repeated) -> granted access. */
function grant(scopes, user) {
  const access = [];
  for (const scope of scopes.flatMap((s) => s.split(' ')).filter(Boolean)) {
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    const wanted = scope.slice(last + 1).split(',');
    const actions = user ? wanted : anonymousPull ? wanted.filter((a) => a === 'pull') : [];
    access.push({ type: scope.slice(0, first), name: scope.slice(first + 1, last), actions });
  }
  return access;
}

function answer(req, res, form) {
  const url = new URL(req.url, 'http://token-server');
  if (url.pathname !== '/token') return void res.writeHead(404).end();
  const user = authenticate(req, form);
  if (user === undefined) {
    res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ details: 'bad credentials' }));
    return;
  }
  const access = grant((form ?? url.searchParams).getAll('scope'), user);
  const token = issue(user ?? '', access);
  const body = { token, access_token: token, expires_in: TOKEN_LIFETIME_S, issued_at: new Date().toISOString() };
  if (form && user) body.refresh_token = refreshTokenOf(user);
  console.log(new Date().toISOString(), req.method, req.url, form ? `form:${form.get('grant_type')}` : '', user ? `user=${user}` : 'anonymous', JSON.stringify(access));
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') return answer(req, res, null);
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) req.destroy();
    else chunks.push(chunk);
  });
  req.on('end', () => answer(req, res, new URLSearchParams(Buffer.concat(chunks).toString())));
});
server.listen(Number(port), host, () => console.log(`token server on ${host}:${port}, issuer ${issuer}, service ${service}`));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
