// An HTTP proxy in front of the test registry that injects faults, to play a registry (or the network
// to it) misbehaving in every way a client must survive. Each request is matched against the rules in
// order; the first rule that matches and wins its draw of a seeded RNG (so a run can be replayed)
// decides the request's one fault:
// - delay: the answer waits `ms` first;
// - status: a 5xx answer, the registry never asked;
// - reset: the answer's headers and part of its body, then a TCP reset;
// - truncate: a well-formed answer that is short (Content-Length says so: the client sees a clean end);
// - flip: the answer with `bytes` of its body flipped;
// - slowloris: headers, `bytes` body bytes trickled one every `intervalMs`, then nothing, ever.
// The proxy counts what it injected, by kind.
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { seededRandom } from './seeded-random.js';

export type Fault =
  | { kind: 'delay'; ms: number }
  | { kind: 'status'; status: number }
  | { kind: 'reset'; fraction: number }
  | { kind: 'truncate'; fraction: number }
  | { kind: 'flip'; bytes: number }
  | { kind: 'slowloris'; bytes: number; intervalMs: number };

export type FaultKind = Fault['kind'];

export interface ProxiedRequest {
  method: string;
  path: string;
  range: string | undefined;
}

export type FaultRule = Fault & {
  /** Which requests the rule may hit (default: every one). */
  match?: (req: ProxiedRequest) => boolean;
  /** Chance that a matching request gets the fault (default 1). */
  probability?: number;
};

/** A GET of part of a blob: what a lazily loading daemon asks for. */
export const isBlobRange = (req: ProxiedRequest): boolean => req.method === 'GET' && req.range !== undefined && /\/blobs\/sha256:/.test(req.path);

export interface FaultProxy {
  port: number;
  /** Replaces the rules (an empty list: every request passes untouched). */
  setRules(rules: FaultRule[]): void;
  /** Faults injected so far, by kind. */
  readonly injected: Record<FaultKind, number>;
  /** Requests seen, faulted or not. */
  readonly requests: number;
  /** Stops listening and drops every connection (a stalled one included). */
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function faultProxy(seed: number, target = { host: '127.0.0.1', port: 5000 }): Promise<FaultProxy> {
  const random = seededRandom(seed);
  const injected: Record<FaultKind, number> = { delay: 0, status: 0, reset: 0, truncate: 0, flip: 0, slowloris: 0 };
  const sockets = new Set<Socket>();
  const upstreamAgent = new Agent({ keepAlive: true });
  let rules: FaultRule[] = [];
  let requests = 0;

  const choose = (req: ProxiedRequest): Fault | undefined =>
    rules.find((r) => (r.match ?? (() => true))(req) && random() < (r.probability ?? 1));

  /** The upstream's answer, whole. */
  const forward = (req: IncomingMessage): Promise<{ status: number; headers: Record<string, string | string[]>; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const up = request({ host: target.host, port: target.port, method: req.method, path: req.url, headers: req.headers, agent: upstreamAgent }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers as Record<string, string | string[]>, body: Buffer.concat(parts) }));
        res.on('error', reject);
      });
      up.on('error', reject);
      req.pipe(up);
    });

  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    requests++;
    const fault = choose({ method: req.method!, path: req.url!, range: req.headers.range });
    if (fault) injected[fault.kind]++;
    if (fault?.kind === 'status') {
      req.resume();
      res.writeHead(fault.status, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}');
      return;
    }
    if (fault?.kind === 'delay') await sleep(fault.ms);
    const up = await forward(req);
    const { body } = up;
    const headers = { ...up.headers };
    const cut = (fraction: number): number => Math.floor(body.length * fraction);
    switch (fault?.kind) {
      case 'reset':
        res.writeHead(up.status, headers);
        res.write(body.subarray(0, cut(fault.fraction)), () => req.socket.resetAndDestroy());
        return;
      case 'truncate':
        headers['content-length'] = String(cut(fault.fraction));
        res.writeHead(up.status, headers).end(body.subarray(0, cut(fault.fraction)));
        return;
      case 'flip':
        for (let i = 0; i < fault.bytes && body.length > 0; i++) {
          const at = Math.floor(random() * body.length);
          body[at] = body[at]! ^ (1 + Math.floor(random() * 255));
        }
        break;
      case 'slowloris':
        res.writeHead(up.status, headers);
        for (let i = 0; i < Math.min(fault.bytes, body.length) && !res.destroyed; i++) {
          res.write(body.subarray(i, i + 1));
          await sleep(fault.intervalMs);
        }
        return; // and never another byte
    }
    res.writeHead(up.status, headers).end(body);
  };

  const server = createServer((req, res) => {
    serve(req, res).catch(() => res.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    setRules: (next) => void (rules = next),
    injected,
    get requests() {
      return requests;
    },
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      upstreamAgent.destroy();
      await closed;
    },
  };
}
