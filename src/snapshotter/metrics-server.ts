// The snapshotter's Prometheus endpoint (nydus-snapshotter's [metrics] address, GET /v1/metrics): every
// daemon's own metrics (each daemon's GET /metrics), their samples labelled with the daemon's id and
// each family described once, and the snapshotter's counts of daemons and snapshots. A daemon that
// does not answer in time is left out of that scrape (and counted as such), never the whole answer.
import { createServer, type Server } from 'node:http';
import type { ImageMounts } from './image-mounts.js';
import type { Snapshotter } from './snapshotter.js';
import { log } from '../util/log.js';

const SCRAPE_TIMEOUT_MS = 2000;
const PATH = '/v1/metrics';

/** Serves GET /v1/metrics on `address` (HOST:PORT, or :PORT for every interface, as upstream's). */
export async function serveMetrics(address: string, images: ImageMounts, snapshotter: Snapshotter): Promise<Server> {
  const m = /^(.*):(\d{1,5})$/.exec(address);
  if (!m || Number(m[2]) > 65535) throw new Error(`metrics address ${JSON.stringify(address)}: expected HOST:PORT or :PORT`);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || new URL(req.url ?? '/', 'http://x').pathname !== PATH) return void res.writeHead(404).end(`see GET ${PATH}\n`);
    scrape(images, snapshotter).then(
      (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(text),
      (err: Error) => res.writeHead(500).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(Number(m[2]), m[1] === '' ? undefined : m[1], () => done());
  });
  log.info('snapshotter metrics served', { address, path: PATH });
  return server;
}

async function scrape(images: ImageMounts, snapshotter: Snapshotter): Promise<string> {
  const records = images.manager.records();
  const texts = await Promise.all(records.map((r) => images.manager.client(r.id).call('GET', '/metrics', undefined, SCRAPE_TIMEOUT_MS).catch(() => undefined)));
  const families = new Map<string, { help: string[]; samples: string[] }>();
  texts.forEach((text, i) => {
    if (text !== undefined) mergeInto(families, text, records[i]!.id);
  });
  const own = [
    '# HELP nydusify_snapshotter_daemons Daemons the snapshotter runs.', '# TYPE nydusify_snapshotter_daemons gauge', `nydusify_snapshotter_daemons ${records.length}`,
    '# HELP nydusify_snapshotter_daemons_unanswered Daemons that did not answer this scrape.', '# TYPE nydusify_snapshotter_daemons_unanswered gauge',
    `nydusify_snapshotter_daemons_unanswered ${texts.filter((t) => t === undefined).length}`,
    '# HELP nydusify_snapshotter_snapshots Snapshots the snapshotter keeps.', '# TYPE nydusify_snapshotter_snapshots gauge', `nydusify_snapshotter_snapshots ${snapshotter.store.entries().length}`,
  ];
  return [...own, ...[...families.values()].flatMap((f) => [...f.help, ...f.samples])].join('\n') + '\n';
}

/** A daemon's exposition merged in: HELP/TYPE once per family, each sample with daemon_id="ID". */
function mergeInto(families: Map<string, { help: string[]; samples: string[] }>, text: string, id: string): void {
  const label = `daemon_id="${id.replace(/["\\\n]/g, '_')}"`;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const comment = /^# (HELP|TYPE) (\S+)/.exec(line);
    const name = comment ? comment[2]! : /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
    if (!name) continue;
    const family = families.get(familyOf(name)) ?? { help: [], samples: [] };
    families.set(familyOf(name), family);
    if (comment) {
      if (!family.help.includes(line)) family.help.push(line);
      continue;
    }
    const rest = line.slice(name.length);
    const labelled = rest.startsWith('{}') ? `{${label}}${rest.slice(2)}` : rest.startsWith('{') ? `{${label},${rest.slice(1)}` : `{${label}}${rest}`;
    family.samples.push(name + labelled);
  }
}

/** A histogram's or summary's samples belong to the family their _bucket/_sum/_count suffix is taken off. */
const familyOf = (name: string): string => name.replace(/_(bucket|sum|count)$/, '');
