// The NBD server: read-only exports (NbdExports) to any number of clients, over unix sockets and TCP at
// once. Each client is an NbdSession; this keeps the listeners, the sessions and the counters.
import { chmod, lstat, rm } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { log } from '../../util/log.js';
import { formatNbdAddress, parseNbdAddress, type NbdAddress } from './address.js';
import type { NbdExports } from './device.js';
import { DEFAULT_SESSION_LIMITS, type SessionLimits } from './limits.js';
import { NbdSession, type SessionCounters } from './session.js';

export type { BlockDevice, NbdExports } from './device.js';
export { parseNbdAddress, type NbdAddress } from './address.js';

export interface NbdServerOptions extends Partial<SessionLimits> {
  /** Connections beyond this many are refused (default 1024). */
  maxClients?: number;
}

export interface NbdServerStats extends SessionCounters {
  /** Clients connected now. */
  clients: number;
  /** Clients ever accepted. */
  connections: number;
}

interface Listener {
  server: Server;
  address: NbdAddress;
}

export class NbdServer {
  private readonly listeners: Listener[] = [];
  private readonly sessions = new Set<NbdSession>();
  private readonly counters: SessionCounters = { requests: 0, readBytes: 0, errors: 0 };
  private connections = 0;
  private readonly limits: SessionLimits;
  private readonly maxClients: number;

  constructor(
    private readonly exports: NbdExports,
    { maxClients = 1024, ...limits }: NbdServerOptions = {},
  ) {
    this.maxClients = maxClients;
    this.limits = { ...DEFAULT_SESSION_LIMITS, ...definedOnly(limits) };
  }

  get stats(): NbdServerStats {
    return { ...this.counters, clients: this.sessions.size, connections: this.connections };
  }

  /** Where the server listens (TCP port 0 resolved to the port it got). */
  get addresses(): NbdAddress[] {
    return this.listeners.map((l) => l.address);
  }

  /** Listens at `address` (`unix:PATH` or `tcp:HOST:PORT`); a unix socket is created mode 0600. */
  async listen(address: string | NbdAddress): Promise<NbdAddress> {
    const where = typeof address === 'string' ? parseNbdAddress(address) : address;
    const server = createServer((socket) => this.accept(socket));
    server.maxConnections = this.maxClients;
    if (where.kind === 'unix') await removeStaleSocket(where.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (where.kind === 'unix') server.listen(where.path, resolve);
      else server.listen(where.port, where.host, resolve);
    });
    server.on('error', (err) => log.error('nbd listener failed', { address: formatNbdAddress(where), err }));
    const bound: NbdAddress = where.kind === 'unix' ? where : { ...where, port: (server.address() as AddressInfo).port };
    if (where.kind === 'unix') await chmod(where.path, 0o600);
    this.listeners.push({ server, address: bound });
    log.info('nbd server listening', { address: formatNbdAddress(bound) });
    return bound;
  }

  /** Stops listening, drops every client and removes the unix sockets. */
  async close(): Promise<void> {
    const listeners = this.listeners.splice(0);
    const closing = listeners.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve())));
    for (const session of this.sessions) session.destroy();
    await Promise.all(closing);
    for (const l of listeners) if (l.address.kind === 'unix') await rm(l.address.path, { force: true });
  }

  private accept(socket: Socket): void {
    this.connections++;
    socket.setNoDelay(true);
    const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    const session = new NbdSession(socket, this.exports, this.counters, this.limits, peer);
    this.sessions.add(session);
    socket.once('close', () => this.sessions.delete(session));
  }
}

function definedOnly(o: object): Partial<SessionLimits> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/**
 * A socket file left by a server that is gone is removed; one a live server answers on, or a path that is
 * not a socket, is left alone (listen then fails with EADDRINUSE).
 */
async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isSocket()) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!live) await rm(path, { force: true });
}
