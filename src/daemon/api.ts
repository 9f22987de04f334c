// The daemon's HTTP API on a unix socket (mode 0600: only root may drive it), shaped like nydusd's:
//   GET    /api/v1/daemon                       daemon info, state and mounts
//   PUT    /api/v1/daemon/exit                  unmount everything and exit
//   PUT    /api/v1/daemon/fuse/sendfd           hand the FUSE connection and the mounts to --supervisor (upgrade.ts)
//   PUT    /api/v1/daemon/start                 nydusd's start: serving already
//   GET    /api/v1/mount                        the mounts
//   POST   /api/v1/mount?mountpoint=/NAME       mount an image (body: MountSpec JSON)
//   DELETE /api/v1/mount?mountpoint=/NAME       unmount it
//   GET    /metrics                             Prometheus text
//   GET    /api/v1/metrics[?id=ID]              filesystem I/O stats in nydusd's JSON (nydusd-metrics.ts)
//   GET    /api/v1/metrics/backend              backend counters: nydusd's fields and ours, JSON
//   GET    /api/v1/metrics/blobcache            blob cache: nydusd's fields and ours (usage per blob), JSON
//   GET    /api/v1/metrics/files                per-file counters: {} (off, as nydusd's default)
//   GET    /api/v1/metrics/inflight             reads waiting on the backend, nydusd's {values: […]}
//   GET    /api/v1/metrics/pattern?mountpoint=/NAME  the image's access trace so far (trace/access-trace.ts), JSON
//   GET    /api/v1/metrics/pattern[?id=/NAME]   nydusd's access pattern of that (or the only) image
// Errors are JSON {code, message} with a 4xx/5xx status. A bad request is answered, never fatal.
import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { log } from '../util/log.js';
import { fdSendTo } from '../native/index.js';
import { ConfigError, parseMountSpec } from './config.js';
import { accessPatterns } from './nydusd-metrics.js';
import { ChunkConflictError } from '../blobcache/cache.js';
import { ChunkMapConflictError } from '../blobcache/chunk-map.js';
import { RafsFormatError } from '../rafs/errors.js';
import { StargzFormatError } from '../stargz/errors.js';
import { serializeAccessTrace } from '../trace/access-trace.js';
import { type Daemon, MountConflictError, MountNotFoundError } from './daemon.js';

const MAX_BODY = 64 << 10;

export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** A request's body as text; more than `max` bytes is a 413. */
export function readBody(req: IncomingMessage, max = MAX_BODY): Promise<string> {
  return new Promise((done, fail) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      // the rest is read and dropped, so the client still gets the answer
      if (size > max) fail(new HttpError(413, 'BODY_TOO_LARGE', `request body over ${max} bytes`));
      else parts.push(d);
    });
    req.on('end', () => done(Buffer.concat(parts).toString('utf8')));
    req.on('error', fail);
  });
}

/** nydusd's `?id=`: a mount's name (or its /NAME); without one, the daemon's only mount. */
function patternId(url: URL, daemon: Daemon): string {
  const id = url.searchParams.get('id');
  if (id !== null) return id === '/' ? '/' : id.replace(/^\//, '');
  const names = daemon.mountNames();
  if (names.length !== 1) throw new HttpError(400, 'INVALID_ARGUMENT', `the daemon serves ${names.length} images: say which with ?id=`);
  return names[0]!;
}

/** `?mountpoint=/NAME` → NAME ("/" stays "/": the dedicated mount's root). */
function mountName(url: URL): string {
  const mp = url.searchParams.get('mountpoint');
  if (mp === null || !mp.startsWith('/')) throw new HttpError(400, 'INVALID_ARGUMENT', 'query parameter mountpoint=/NAME is required');
  return mp === '/' ? '/' : mp.slice(1);
}

/** Answers `body` (JSON unless a string); a 413 closes the connection rather than read the rest of the body. */
export function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text), ...(status === 413 ? { connection: 'close' } : {}) });
  res.end(text);
}

/**
 * The request target: a path and query (origin form). Resolved against a base, "//x/..." would be a
 * URL with host x (or an invalid one); glued after the origin it stays a path.
 */
function requestUrl(target: string | undefined): URL {
  if (!target?.startsWith('/')) throw new HttpError(400, 'INVALID_ARGUMENT', `request target ${JSON.stringify(target?.slice(0, 100))} is not a path`);
  return new URL(`http://daemon${target}`);
}

async function route(daemon: Daemon, req: IncomingMessage, res: ServerResponse, exit: () => void, options: ApiOptions): Promise<void> {
  const url = requestUrl(req.url);
  const key = `${req.method} ${url.pathname}`;
  switch (key) {
    case 'GET /api/v1/daemon':
      return send(res, 200, daemon.info());
    // nydusd's: serving already (a successor that took over starts as it takes over)
    case 'PUT /api/v1/daemon/start':
      return send(res, 204, '');
    case 'PUT /api/v1/daemon/fuse/sendfd': {
      if (options.supervisor === undefined) throw new HttpError(400, 'NO_SUPERVISOR', 'the daemon was started without --supervisor: nowhere to send its FUSE connection');
      const { fd, state } = daemon.handoverState();
      fdSendTo(options.supervisor, fd, Buffer.from(JSON.stringify(state)));
      log.info('FUSE connection sent to the supervisor', { supervisor: options.supervisor, mounts: state.mounts.map((m) => m.name) });
      return send(res, 204, '');
    }
    case 'PUT /api/v1/daemon/fuse/takeover':
      throw new HttpError(409, 'RUNNING', 'this daemon serves its own FUSE connection: a successor started with --upgrade takes one over');
    case 'PUT /api/v1/daemon/exit':
      send(res, 204, '');
      return exit();
    case 'GET /api/v1/mount':
      return send(res, 200, daemon.info().mounts);
    case 'POST /api/v1/mount': {
      const name = mountName(url);
      let body: unknown;
      try {
        body = JSON.parse(await readBody(req));
      } catch (err) {
        if (err instanceof HttpError) throw err;
        throw new HttpError(400, 'INVALID_ARGUMENT', `body is not JSON: ${(err as Error).message}`);
      }
      return send(res, 200, await daemon.mount(name, parseMountSpec(body)));
    }
    case 'DELETE /api/v1/mount':
      await daemon.umount(mountName(url));
      return send(res, 204, '');
    case 'GET /metrics':
      return send(res, 200, await daemon.metrics(), 'text/plain; version=0.0.4');
    case 'GET /api/v1/metrics':
      return send(res, 200, daemon.nydusdFsMetrics(url.searchParams.get('id') ?? daemon.opts.id));
    case 'GET /api/v1/metrics/backend':
      return send(res, 200, daemon.nydusdBackendMetrics());
    case 'GET /api/v1/metrics/blobcache':
      return send(res, 200, await daemon.nydusdBlobcacheMetrics());
    case 'GET /api/v1/metrics/files':
      return send(res, 200, {});
    case 'GET /api/v1/metrics/inflight':
      return send(res, 200, daemon.nydusdInflight());
    case 'GET /api/v1/metrics/pattern':
      if (url.searchParams.has('mountpoint')) return send(res, 200, serializeAccessTrace(await daemon.accessTrace(mountName(url))));
      return send(res, 200, accessPatterns(await daemon.accessTrace(patternId(url, daemon))));
    default:
      throw new HttpError(404, 'NOT_FOUND', `no ${key}`);
  }
}

function errorStatus(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const message = (err as Error).message ?? String(err);
  if (err instanceof ConfigError) return new HttpError(400, 'INVALID_ARGUMENT', message);
  if (err instanceof MountConflictError || err instanceof ChunkConflictError || err instanceof ChunkMapConflictError) return new HttpError(409, 'CONFLICT', message);
  if (err instanceof MountNotFoundError) return new HttpError(404, 'NOT_FOUND', message);
  // the image is at fault (a bootstrap or TOC that is malformed, hostile, or not the one its manifest names)
  if (err instanceof RafsFormatError || err instanceof StargzFormatError) return new HttpError(422, 'INVALID_IMAGE', message);
  return new HttpError(500, 'INTERNAL', message);
}

/** Whether something answers on the unix socket `path`. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((done) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      done(true);
    });
    s.once('error', () => done(false));
  });
}

/** Where a daemon hands its FUSE connection over (nydusd's --supervisor), if anywhere. */
export interface ApiOptions {
  supervisor?: string;
}

/** Serves the API on `path`; a stale socket file (nobody listening) is replaced, a live one refused. */
export async function serveApi(daemon: Daemon, path: string, exit: () => void, options: ApiOptions = {}): Promise<Server> {
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket`);
    if (await socketAnswers(path)) throw new Error(`another daemon answers on ${path}`);
    unlinkSync(path);
  }
  const server = createServer((req, res) => {
    route(daemon, req, res, exit, options).catch((err: unknown) => {
      const e = errorStatus(err);
      if (e.status >= 500) log.error('API request failed', { method: req.method, url: req.url, error: err });
      if (!res.headersSent) send(res, e.status, { code: e.code, message: e.message });
      else res.destroy();
    });
  });
  await listenOwnerOnly(server, path);
  return server;
}

/** Listens on unix socket `path`, which only its owner may connect to from the moment it exists. */
export async function listenOwnerOnly(server: Server, path: string): Promise<void> {
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    // created with no access for others before anyone can connect
    const umask = process.umask(0o177);
    server.listen(path, () => {
      process.umask(umask);
      done();
    });
  });
  chmodSync(path, 0o600);
}
