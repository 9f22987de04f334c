// The snapshotter over gRPC: containerd's snapshots service (our snapshots.proto) on a unix socket,
// each call handed to the Snapshotter. Every request is answered: a typed error becomes its gRPC
// status (which containerd maps back to its errdefs), anything else INTERNAL, and a thrown error
// never leaves a handler.
import { existsSync, lstatSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { log } from '../util/log.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from './errors.js';
import type { Kind } from './metadata.js';
import type { SnapshotInfo, Snapshotter } from './snapshotter.js';

// the .proto sits in src/snapshotter; this file runs from src/ (tests) or dist/ (both two levels down)
const PROTO = fileURLToPath(new URL('../../src/snapshotter/snapshots.proto', import.meta.url));

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
          log.debug('snapshotter call failed', { op: name, key: call.request.key ?? call.request.name, error: err });
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

/** Serves `sn` on the unix socket `path` (a stale socket file there is replaced). */
export async function serveSnapshotter(sn: Snapshotter, path: string): Promise<grpc.Server> {
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket`);
    rmSync(path);
  }
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 << 20 });
  server.addService(snapshotsService, handlers(sn));
  await new Promise<void>((done, fail) => server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? fail(err) : done())));
  return server;
}
