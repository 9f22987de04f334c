// Fuzzing the daemon's HTTP API (src/daemon/api.ts): a real Daemon in this process (dedicated, not
// yet serving, so no mount ever reaches FUSE or the network) behind serveApi on a temp unix socket,
// sent raw HTTP requests with generated methods, paths, queries, headers and bodies, and mutations
// of valid ones. Every complete request gets a well-formed answer (a known status; errors as JSON
// {code, message}; never a 500, which means an untyped error escaped), the server keeps answering,
// and no case takes a second.
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi } from '../../src/daemon/api.js';
import { DEFAULT_CONFIG } from '../../src/daemon/config.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { applyMutations, caseCount, describeEdits, fuzz, mutationsArb, timeoutFor } from './harness.js';

const RUNS = caseCount(1500);
const work = mkdtempSync(join(tmpdir(), 'fuzz-api-'));
const sock = join(work, 'api.sock');
let server: Server;
let exits = 0;

beforeAll(async () => {
  const daemon = new Daemon({ id: 'fuzz', mode: 'dedicated', mountpoint: join(work, 'mnt'), config: { ...DEFAULT_CONFIG, cacheDir: join(work, 'cache') }, signals: [] });
  server = await serveApi(daemon, sock, () => exits++);
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  rmSync(work, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/**
 * Sends `raw` and reads until the server closes; undefined when it closed without answering. With
 * `halfClose` the client also ends its side, which an incomplete request needs to end at all (Node
 * then drops the connection of a request whose answer is not ready yet).
 */
function exchange(raw: Buffer, halfClose = false): Promise<Answer | undefined> {
  return new Promise((done, fail) => {
    const s = connect(sock);
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : fail(err)));
    s.on('close', () => {
      const all = Buffer.concat(parts);
      done(all.length === 0 ? undefined : parseAnswer(all));
    });
    if (halfClose) s.end(raw);
    else s.write(raw);
  });
}

function parseAnswer(all: Buffer): Answer {
  // an interim "100 Continue" comes before the answer
  if (all.toString('latin1', 0, 13) === 'HTTP/1.1 100 ') return parseAnswer(all.subarray(all.indexOf('\r\n\r\n') + 4));
  const end = all.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`answer without a header end: ${all.toString('latin1').slice(0, 300)}`);
  const [statusLine, ...lines] = all.toString('latin1', 0, end).split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine!);
  if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
  const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  const rest = all.subarray(end + 4);
  // a mutated request may leave bytes that are answered as a second request: the first answer counts
  const length = headers.get('content-length');
  const body = headers.get('transfer-encoding') === 'chunked' ? dechunk(rest) : length !== undefined ? rest.subarray(0, Number(length)) : rest;
  return { status: Number(m[1]), headers, body };
}

/** A chunked body's bytes (Node answers so when the handler never set a length). */
function dechunk(buf: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; ;) {
    const eol = buf.indexOf('\r\n', at);
    const size = parseInt(buf.toString('latin1', at, eol), 16);
    if (eol < 0 || Number.isNaN(size)) throw new Error(`bad chunked body ${buf.toString('latin1').slice(0, 300)}`);
    if (size === 0) return Buffer.concat(parts);
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

const STATUSES = new Set([200, 204, 400, 404, 409, 413]);
/** Node's own answers to requests it refuses before the handler sees them (no body). */
const NODE_STATUSES = new Set([400, 417, 431, 505]);

/** A well-formed answer to a complete request: known status, exact length, JSON errors. */
function checkAnswer(a: Answer | undefined, request: string, method = ''): void {
  const fail = (why: string): never => {
    throw new Error(`${why}; request ${JSON.stringify(request.slice(0, 600))}`);
  };
  if (a === undefined) return fail('closed without an answer');
  if (NODE_STATUSES.has(a.status) && a.body.length === 0) return;
  if (!STATUSES.has(a.status)) fail(`status ${a.status}: ${a.body.toString().slice(0, 300)}`);
  const length = a.headers.get('content-length');
  // the answer to HEAD has the length of the body it leaves out
  if (method !== 'HEAD' && length !== undefined && Number(length) !== a.body.length) fail(`content-length ${length}, body of ${a.body.length} bytes`);
  if (method === 'HEAD') return;
  if (a.status >= 400) {
    const e = JSON.parse(a.body.toString()) as { code?: unknown; message?: unknown };
    if (typeof e.code !== 'string' || typeof e.message !== 'string') fail(`error body ${a.body.toString().slice(0, 300)}`);
  } else if (a.headers.get('content-type') === 'application/json' && a.status === 200) JSON.parse(a.body.toString());
}

function httpRequest(method: string, target: string, headers: [string, string][], body: Buffer): Buffer {
  const head = [`${method} ${target} HTTP/1.1`, 'Host: daemon', 'Connection: close', `Content-Length: ${body.length}`, ...headers.map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  return Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'latin1'), body]);
}

const PATHS = ['/api/v1/daemon', '/api/v1/daemon/exit', '/api/v1/mount', '/api/v1/metrics', '/metrics', '/api/v1/metrics/backend', '/api/v1/metrics/blobcache', '/', '/api/v1/', '//api/v1/mount', '/api/v1/mount/', '/API/V1/MOUNT', '*'];
const MOUNTPOINTS = ['/', '/a', '/app', '', 'a', '/../etc', '/a/b', '/.hidden', '/-x', '/%00', `/${'n'.repeat(300)}`, '/a%2Fb', '/ä'];
const queryArb = fc.oneof(
  fc.constant(''),
  fc.constantFrom(...MOUNTPOINTS).map((m) => `?mountpoint=${encodeURIComponent(m)}`),
  fc.constantFrom(...MOUNTPOINTS).map((m) => `?mountpoint=${m}`),
  fc.string({ maxLength: 40 }).map((q) => `?${encodeURI(q)}`),
  fc.constantFrom('?mountpoint', '?mountpoint=/a&mountpoint=/b', '?=', '?&&', '#frag', '?mountpoint=%zz'),
);
const specArb = fc.oneof(
  fc.record({ bootstrap: fc.constantFrom('/nonexistent/boot', '', '../x'), blobDir: fc.constantFrom('/nonexistent', 5), prefetch: fc.constantFrom(true, 'yes') }, { requiredKeys: [] }),
  fc.record({ target: fc.constantFrom('127.0.0.1:9/x:y', 'not a ref', '', 'oci:/nonexistent'), fs_type: fc.constantFrom('rafs', 'fscache'), plainHttp: fc.boolean() }, { requiredKeys: [] }),
  fc.jsonValue({ maxDepth: 3 }),
).map((v) => Buffer.from(JSON.stringify(v) ?? ''));
/** 'over the limit' stands for a body one byte over the API's 64 KiB (it would flood failure reports). */
const bodyArb = fc.oneof(fc.constant(Buffer.alloc(0)), specArb, fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), fc.constant('over the limit' as const));
const bodyOf = (b: Buffer | 'over the limit'): Buffer => (b === 'over the limit' ? Buffer.alloc((64 << 10) + 1, 0x20) : b);
const requestArb = fc.record({
  method: fc.oneof(fc.constantFrom('GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'get'), fc.stringMatching(/^[A-Z]{1,10}$/)),
  path: fc.oneof(fc.constantFrom(...PATHS), fc.webPath()),
  query: queryArb,
  headers: fc.array(fc.tuple(fc.constantFrom('Content-Type', 'Transfer-Encoding', 'Expect', 'X-Any'), fc.constantFrom('application/json', 'chunked', '100-continue', 'x')), { maxLength: 2 }),
  body: bodyArb,
});

describe('fuzz: daemon API requests', () => {
  it('answers the valid requests', async () => {
    const info = await exchange(httpRequest('GET', '/api/v1/daemon', [], Buffer.alloc(0)));
    expect(info?.status).toBe(200);
    expect(JSON.parse(info!.body.toString()).state).toBe('INIT');
    const mount = await exchange(httpRequest('POST', '/api/v1/mount?mountpoint=/', [], Buffer.from('{"bootstrap":"/nonexistent"}')));
    expect(mount?.status).toBe(409);
    const bad = await exchange(httpRequest('POST', '/api/v1/mount?mountpoint=/', [], Buffer.from('{"bootstrap":5}')));
    expect(bad?.status).toBe(400);
  });

  it(`answers generated requests well-formed (${RUNS} cases)`, async () => {
    const stats = await fuzz('API: generated requests', requestArb, async (r) => {
      // a chunked body sent with a Content-Length is refused by Node's parser: still an answer
      const raw = httpRequest(r.method, r.path + r.query, r.headers, bodyOf(r.body));
      checkAnswer(await exchange(raw), raw.toString('latin1'), r.method);
    }, { runs: RUNS, seed: 0xa91, describe: (r) => JSON.stringify({ ...r, body: bodyOf(r.body).subarray(0, 200).toString('latin1') }) });
    expect(stats.cases).toBe(RUNS);
  }, timeoutFor(RUNS, 5));

  it(`survives mutated requests (${RUNS} cases)`, async () => {
    const seeds = [
      httpRequest('POST', '/api/v1/mount?mountpoint=/app', [['Content-Type', 'application/json']], Buffer.from('{"target":"127.0.0.1:9/x:y","prefetch":true}')),
      httpRequest('DELETE', '/api/v1/mount?mountpoint=/app', [], Buffer.alloc(0)),
      httpRequest('GET', '/api/v1/metrics/blobcache', [], Buffer.alloc(0)),
    ];
    const arb = fc.record({ seed: fc.nat(seeds.length - 1), edits: mutationsArb([], { shifts: true, max: 4 }) });
    const stats = await fuzz('API: mutated requests', arb, async ({ seed, edits }) => {
      // a mutated request may be incomplete (then closing without an answer is right): the
      // answer, if any, must be well-formed, and the server must go on answering
      const answer = await exchange(applyMutations(seeds[seed]!, edits), true);
      if (answer !== undefined) checkAnswer(answer, describeEdits(`request ${seed}`, edits));
    }, { runs: RUNS, seed: 0xa92, describe: ({ seed, edits }) => describeEdits(`request ${seed}`, edits) });
    expect(stats.cases).toBe(RUNS);
    expect((await exchange(httpRequest('GET', '/api/v1/daemon', [], Buffer.alloc(0))))?.status).toBe(200);
  }, timeoutFor(RUNS, 5));
});
