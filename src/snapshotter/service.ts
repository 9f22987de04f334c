// The snapshotter over gRPC: containerd's snapshots service (our snapshots.proto) on a unix socket,
// each call handed to the Snapshotter. Every request is answered: a typed error becomes its gRPC
// status (which containerd maps back to its errdefs), anything else INTERNAL, and a thrown error
// never leaves a handler.
import { lstatSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { log } from '../util/log.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from './errors.js';
import type { Kind } from './metadata.js';
import type { SnapshotInfo, Snapshotter } from './snapshotter.js';
import type { CriImageProxy } from './cri-image-proxy.js';

// the .proto sits in src/snapshotter; this file runs from src/ (tests) or dist/ (both two levels down)
const PROTO = fileURLToPath(new URL('../../src/snapshotter/snapshots.proto', import.meta.url));

const PROBE_TIMEOUT_MS = 3000;

const KIND: Record<Kind, string> = { view: 'VIEW', active: 'ACTIVE', committed: 'COMMITTED' };

function loadService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync(PROTO, { keepCase: false, longs: Number, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { containerd: { services: { snapshots: { v1: { Snapshots: grpc.ServiceClientConstructor } } } } };
  return pkg.containerd.services.snapshots.v1.Snapshots.service;
}

/** The service definition, also for clients (tests). */
export const snapshotsService = loadService();

function statusOf(err: unknown): grpc.ServiceError {
  const message = err instanceof Error ? err.message : String(err);
  const code = err instanceof NotFoundError ? grpc.status.NOT_FOUND
    : err instanceof AlreadyExistsError ? grpc.status.ALREADY_EXISTS
    : err instanceof FailedPreconditionError ? grpc.status.FAILED_PRECONDITION
    : err instanceof InvalidArgumentError ? grpc.status.INVALID_ARGUMENT
    : grpc.status.INTERNAL;
  if (code === grpc.status.INTERNAL) log.error('snapshotter request failed', { error: err });
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() });
}

const timestamp = (d: Date): { seconds: number; nanos: number } => ({ seconds: Math.floor(d.getTime() / 1000), nanos: (d.getTime() % 1000) * 1e6 });

function infoMessage(i: SnapshotInfo): Record<string, unknown> {
  return { name: i.name, parent: i.parent ?? '', kind: KIND[i.kind], createdAt: timestamp(i.createdAt), updatedAt: timestamp(i.updatedAt), labels: i.labels };
}

type Req = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** A unary handler: the request to a promise of the reply, errors to statuses. */
function unary(fn: (req: Req) => Promise<unknown>, name: string): grpc.handleUnaryCall<Req, unknown> {
  return (call, callback) => {
    const started = Date.now();
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (reply) => {
          log.debug('snapshotter call', { op: name, key: call.request.key ?? call.request.name, ms: Date.now() - started });
          callback(null, reply);
        },
        (err: unknown) => {
          log.debug('snapshotter call failed', { op: name, key: call.request.key ?? call.request.name, ms: Date.now() - started, error: err });
          callback(statusOf(err));
        },
      );
  };
}

/** Labels the list answers at most per message, so a reply stays far below the 4 MiB limit. */
const LIST_BATCH = 100;

export function handlers(sn: Snapshotter): grpc.UntypedServiceImplementation {
  return {
    Prepare: unary(async (r) => ({ mounts: await sn.prepare(str(r.key), str(r.parent), r.labels) }), 'Prepare'),
    View: unary(async (r) => ({ mounts: await sn.view(str(r.key), str(r.parent), r.labels) }), 'View'),
    Mounts: unary(async (r) => ({ mounts: await sn.mounts(str(r.key)) }), 'Mounts'),
    Commit: unary(async (r) => (await sn.commit(str(r.name), str(r.key), r.labels), {}), 'Commit'),
    Remove: unary(async (r) => (await sn.remove(str(r.key)), {}), 'Remove'),
    Stat: unary(async (r) => ({ info: infoMessage(await sn.stat(str(r.key))) }), 'Stat'),
    Update: unary(async (r) => {
      const info = (r.info ?? {}) as Req;
      const mask = (r.updateMask ?? {}) as { paths?: unknown };
      const paths = Array.isArray(mask.paths) ? mask.paths.filter((p): p is string => typeof p === 'string') : [];
      return { info: infoMessage(await sn.update({ name: str(info.name), labels: info.labels }, paths)) };
    }, 'Update'),
    Usage: unary(async (r) => sn.usage(str(r.key)), 'Usage'),
    Cleanup: unary(async () => (await sn.cleanup(), {}), 'Cleanup'),
    List: (call: grpc.ServerWritableStream<Req, unknown>) => {
      const filters = Array.isArray(call.request.filters) ? call.request.filters.filter((f): f is string => typeof f === 'string') : [];
      sn.list(filters).then(
        (infos) => {
          for (let i = 0; i < infos.length; i += LIST_BATCH) call.write({ info: infos.slice(i, i + LIST_BATCH).map(infoMessage) });
          call.end();
        },
        (err: unknown) => call.destroy(statusOf(err)),
      );
    },
  };
}

/** Whether something listens on the unix socket `path` (a connection is accepted). */
function listening(path: string): Promise<boolean> {
  return new Promise((done, fail) => {
    const probe = createConnection(path);
    probe.setTimeout(PROBE_TIMEOUT_MS, () => probe.destroy(new Error(`${path}: no answer within ${PROBE_TIMEOUT_MS} ms`)));
    probe.once('connect', () => {
      probe.destroy();
      done(true);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? done(false) : fail(err)));
  });
}

/**
 * Makes `path` free for our socket: a socket nobody listens on (left by a crash) is removed; one
 * another process serves is left alone, and we refuse to start.
 */
export async function claimSocketPath(path: string): Promise<void> {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return;
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket`);
  if (await listening(path)) throw new Error(`${path} is served by another process (another snapshotter?): stop it first, or give another --address`);
  rmSync(path, { force: true });
}

/** The gRPC server over our own unix socket listener, which its shutdown closes (removing the socket). */
class SocketServer extends grpc.Server {
  private listener: Server | undefined;

  listen(path: string): Promise<void> {
    const injector = this.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const listener = createServer((socket) => injector.injectConnection(socket));
    this.listener = listener;
    return new Promise((done, fail) => {
      listener.once('error', fail);
      // owner only, whatever the umask: containerd (root) connects. listen() binds synchronously,
      // so the umask applies to this socket and to nothing else.
      const umask = process.umask(0o177);
      try {
        listener.listen(path, () => {
          listener.off('error', fail).on('error', (err) => log.error('snapshotter socket failed', { error: err }));
          done();
        });
      } finally {
        process.umask(umask);
      }
    });
  }

  override tryShutdown(callback: (error?: Error) => void): void {
    this.listener?.close();
    super.tryShutdown(callback);
  }

  override forceShutdown(): void {
    this.listener?.close();
    super.forceShutdown();
  }
}

/** Serves `sn` on the unix socket `path` (mode 0600); a stale socket there is replaced, a live one is an error. */
export async function serveSnapshotter(sn: Snapshotter, path: string, imageProxy?: CriImageProxy): Promise<grpc.Server> {
  await claimSocketPath(path);
  const server = new SocketServer({ 'grpc.max_receive_message_length': 16 << 20 });
  server.addService(snapshotsService, handlers(sn));
  imageProxy?.addTo(server);
  await server.listen(path);
  return server;
}
