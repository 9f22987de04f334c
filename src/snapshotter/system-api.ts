// The snapshotter's system API (nydus-snapshotter's [system] address), on a unix socket of its own
// that only its owner may use, in upstream's JSON shapes:
//   GET /api/v1/daemons               the daemons it runs: id, pid, API socket, mountpoint, how many
//                                     snapshots read through each (reference, instances), RSS, data read
//   GET /api/v1/daemons/records       the daemons' records as this snapshotter keeps them
//   GET /api/v1/daemons/{id}/backend  where a daemon's images come from: {type, config}
//   PUT /api/v1/prefetch              [{image, prefetch}] (an NRI plugin's): the files fetched first when
//                                     that image is next mounted, once (paths separated by spaces or lines)
//   PUT /api/v1/daemons/upgrade       a live upgrade: answered 501 (restart the snapshotter with the
//                                     failover recover policy: its daemons' connections are taken over)
// A bad request is a 4xx with {code, message}, never the snapshotter's end.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { pathList } from '../daemon/config.js';
import { HttpError, listenOwnerOnly, readBody, send } from '../daemon/api.js';
import type { ImageMounts } from './image-mounts.js';
import type { PrefetchLists } from './prefetch-lists.js';
import type { Snapshotter } from './snapshotter.js';
import { log } from '../util/log.js';

/** Bigger prefetch bodies are refused: they are lists of paths for a few images. */
const MAX_PREFETCH_BODY = 4 << 20;
const METRICS_TIMEOUT_MS = 2000;

export interface SystemApiParts {
  images: ImageMounts;
  snapshotter: Snapshotter;
  prefetch: PrefetchLists;
}

export async function serveSystemApi(address: string, parts: SystemApiParts): Promise<Server> {
  const server = createServer((req, res) => {
    route(req, parts).then((body) => send(res, 200, body ?? ''), (err: unknown) => {
      const e = err instanceof HttpError ? err : new HttpError(500, 'INTERNAL', (err as Error).message);
      if (e.status >= 500) log.warn('system API request failed', { method: req.method, url: req.url, error: e.message });
      send(res, e.status, { code: e.code, message: e.message });
    });
  });
  await listenOwnerOnly(server, address);
  return server;
}

async function route(req: IncomingMessage, parts: SystemApiParts): Promise<unknown> {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const backend = /^\/api\/v1\/daemons\/([^/]+)\/backend$/.exec(path);
  if (req.method === 'GET' && path === '/api/v1/daemons') return describeDaemons(parts);
  if (req.method === 'GET' && path === '/api/v1/daemons/records') return parts.images.manager.records();
  if (req.method === 'GET' && backend) return backendOf(parts, decodeURIComponent(backend[1]!));
  if (req.method === 'PUT' && path === '/api/v1/prefetch') return setPrefetch(req, parts.prefetch);
  if (req.method === 'PUT' && path === '/api/v1/daemons/upgrade') {
    throw new HttpError(501, 'NOT_IMPLEMENTED', 'no live upgrade here: restart the snapshotter with the failover recover policy, whose daemons\' FUSE connections are taken over');
  }
  throw new HttpError(404, 'NOT_FOUND', `${req.method} ${path}: see GET /api/v1/daemons, /api/v1/daemons/records, /api/v1/daemons/{id}/backend, PUT /api/v1/prefetch`);
}

async function describeDaemons({ images, snapshotter }: SystemApiParts): Promise<unknown[]> {
  const snapshots = snapshotter.store.entries().filter(([, r]) => r.image !== undefined);
  return Promise.all(images.manager.records().map(async (record) => {
    const served = new Set(record.mode === 'dedicated' ? [record.id] : record.mounts.map((m) => m.name));
    const instances = Object.fromEntries(snapshots.filter(([, r]) => served.has(r.image!)).map(([key, r]) => [key, {
      snapshot_id: r.id, snapshot_dir: snapshotter.dirOf(r.id), mountpoint: images.dir(r.image!), image_id: record.mounts.find((m) => m.name === (record.mode === 'dedicated' ? '/' : r.image))?.spec.target ?? '',
    }]));
    return {
      id: record.id, pid: record.pid ?? 0, api_socket: images.manager.apisock(record.id), supervisor_path: '', reference: Object.keys(instances).length,
      mountpoint: record.mountpoint, startup_cpu_utilization: 0, memory_rss_kb: rssKb(record.pid), read_data_kb: await readDataKb(images, record.id), instances,
    };
  }));
}

/** VmRSS of a process in KiB (0 if it cannot be read). */
function rssKb(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The daemon's data read so far (its nydusd metrics' data_read), in KiB; 0 if it does not answer. */
async function readDataKb(images: ImageMounts, id: string): Promise<number> {
  try {
    const metrics = JSON.parse(await images.manager.client(id).call('GET', '/api/v1/metrics', undefined, METRICS_TIMEOUT_MS)) as { data_read?: number };
    return typeof metrics.data_read === 'number' ? metrics.data_read / 1024 : 0;
  } catch {
    return 0;
  }
}

function backendOf({ images }: SystemApiParts, id: string): unknown {
  const record = images.manager.record(id);
  if (!record) throw new HttpError(404, 'NOT_FOUND', `no daemon ${JSON.stringify(id.slice(0, 128))}`);
  const targets = record.mounts.flatMap((m) => (m.spec.target ? [m.spec.target] : []));
  return { type: 'registry', config: { images: targets, mirrors: record.config.registry.mirrors.map((m) => m.host), plain_http: record.config.registry.plainHttp } };
}

async function setPrefetch(req: IncomingMessage, prefetch: PrefetchLists): Promise<undefined> {
  let body: unknown;
  try {
    body = JSON.parse(await readBody(req, MAX_PREFETCH_BODY));
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError(400, 'BAD_REQUEST', `prefetch: not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(body)) throw new HttpError(400, 'BAD_REQUEST', 'prefetch: expected a list of {"image", "prefetch"}');
  const lists = body.map((item: unknown, i) => {
    const o = item as { image?: unknown; prefetch?: unknown };
    if (typeof o !== 'object' || o === null || typeof o.image !== 'string' || o.image === '' || typeof o.prefetch !== 'string') {
      throw new HttpError(400, 'BAD_REQUEST', `prefetch[${i}]: expected {"image": REF, "prefetch": "PATH PATH…"}`);
    }
    try {
      return [o.image, pathList(o.prefetch.split(/\s+/).filter(Boolean), `prefetch[${i}].prefetch`)] as const;
    } catch (err) {
      throw new HttpError(400, 'BAD_REQUEST', (err as Error).message);
    }
  });
  for (const [image, paths] of lists) prefetch.set(image, paths);
  log.info('prefetch lists set', { images: lists.map(([image, paths]) => ({ image, files: paths.length })) });
  return undefined;
}
