// nydusd's live upgrade and failover through a supervisor (nydus-snapshotter's): a daemon started
// with --upgrade --supervisor SOCK mounts nothing; it answers GET /api/v1/daemon with state INIT on
// its API socket until PUT /api/v1/daemon/fuse/takeover, then takes the FUSE connection and the
// images to mount from the supervisor (which its predecessor gave them with PUT
// /api/v1/daemon/fuse/sendfd), and starts like any daemon on that connection, resending what the
// predecessor left unanswered. A bad takeover (no supervisor, a state that is not one) is answered
// with an error and the daemon keeps waiting.
import { createServer } from 'node:http';
import { rmSync } from 'node:fs';
import { fdReceiveFrom } from '../native/index.js';
import { log } from '../util/log.js';
import { listenOwnerOnly } from './api.js';
import { type HandoverState, parseHandoverState } from './daemon.js';

/** The connection and state a successor takes over. */
export interface TakenOver {
  fd: number;
  state: HandoverState;
}

/** Answers on `apisock` as a daemon in INIT until told to take over from `supervisor`; then closes it. */
export async function waitForTakeover(apisock: string, supervisor: string, id: string): Promise<TakenOver> {
  rmSync(apisock, { force: true });
  const taken = await new Promise<TakenOver>((done, fail) => {
    const server = createServer((req, res) => {
      // no keep-alive: a client's next request on this socket path must reach the daemon that serves, not this waiting one
      const reply = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json', connection: 'close' }).end(body === undefined ? '' : JSON.stringify(body));
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (req.method === 'GET' && path === '/api/v1/daemon') return reply(200, { id, state: 'INIT', pid: process.pid });
      if (req.method !== 'PUT' || path !== '/api/v1/daemon/fuse/takeover') {
        return reply(404, { code: 'NOT_FOUND', message: `${req.method} ${path}: a daemon waiting to take over answers GET /api/v1/daemon and PUT /api/v1/daemon/fuse/takeover` });
      }
      let got: TakenOver;
      try {
        const { fd, data } = fdReceiveFrom(supervisor);
        got = { fd, state: parseHandoverState(data) };
      } catch (err) {
        log.warn('takeover failed: still waiting', { supervisor, error: (err as Error).message });
        return reply(500, { code: 'TAKEOVER_FAILED', message: `takeover from ${supervisor}: ${(err as Error).message}` });
      }
      // answered once the server is closed: the next call reaches the daemon that serves
      server.close();
      res.on('finish', () => {
        server.closeAllConnections();
        done(got);
      });
      reply(204, undefined);
    });
    listenOwnerOnly(server, apisock).then(() => log.info('daemon waiting to take over', { pid: process.pid, apisock, supervisor }), fail);
  });
  rmSync(apisock, { force: true });
  log.info('FUSE connection taken over', { supervisor, mounts: taken.state.mounts.map((m) => m.name) });
  return taken;
}
