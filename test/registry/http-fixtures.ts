// Small local HTTP servers for registry tests: a server on a free loopback port, and a forwarder that
// relays a request to a real registry (optionally rewriting the answer's headers).
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TestServer {
  port: number;
  host: string;
  close(): Promise<void>;
}

export async function startServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function unusedPort(): Promise<number> {
  const server = await startServer(() => {});
  await server.close();
  return server.port;
}

/** Relays `req` to `target` (host:port), keeping its Host header so Location URLs point back at us. */
export function forward(req: IncomingMessage, res: ServerResponse, target: string, rewrite: (headers: IncomingHttpHeaders) => IncomingHttpHeaders = (h) => h): void {
  const [hostname, port] = target.split(':') as [string, string];
  const upstream = request({ hostname, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, rewrite(answer.headers));
    answer.pipe(res);
  });
  upstream.on('error', (err) => {
    res.writeHead(502);
    res.end(String(err));
  });
  req.pipe(upstream);
}
