// A spare daemon's wait: a `daemon --spare` process, started ahead of need by the manager's pool
// (spare-daemons.ts), loads what serving an image takes, then waits on a socket of its own to be
// told what to be: its id, API socket, mountpoint, mode and config file. It then starts like any
// daemon given those flags. A dedicated daemon is a process per image, and node loading our module
// graph is a quarter of a second on the path of every container start; a spare has done it before.
import { createServer } from 'node:http';
import { readdirSync, rmSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { log } from '../util/log.js';
import { HttpError, listenOwnerOnly, readBody } from './api.js';
import { DEFAULT_CONFIG } from './config.js';
import { prestartWorkers } from './fuse/session.js';
import { ASSIGN_PATH, canRestorePriority, SPARE_NICENESS, type SpareAssignment } from './spare-assignment.js';

/** Bigger bodies are refused: an assignment is a few paths. */
const MAX_BODY = 16 << 10;
/** How often a spare looks whether its manager is gone (then nobody will ever assign it). */
const ORPHAN_CHECK_MS = 1000;

/**
 * Sets the niceness of every thread of this process (Linux's niceness is per thread: threads made
 * later take their maker's). Best effort: a thread may be gone, a lower niceness may be refused.
 */
function setProcessNiceness(niceness: number): void {
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    tids = [String(process.pid)];
  }
  for (const tid of tids) {
    try {
      setPriority(Number(tid), niceness);
    } catch {
      // gone, or not allowed: it keeps the niceness it had
    }
  }
}

/** The manager's niceness (0 if it cannot be read). */
function managerNiceness(manager: number): number {
  try {
    return getPriority(manager);
  } catch {
    return 0;
  }
}

/** The assignment in a request body; an error says what is wrong with it. */
export function parseAssignment(text: string): SpareAssignment {
  const v = JSON.parse(text) as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
  const str = (k: string): string => {
    if (typeof v[k] !== 'string' || v[k] === '') throw new Error(`"${k}" must be a non-empty string`);
    return v[k] as string;
  };
  const mode = str('mode');
  if (mode !== 'dedicated' && mode !== 'shared') throw new Error('"mode" must be "dedicated" or "shared"');
  if (typeof v.block !== 'boolean') throw new Error('"block" must be a boolean');
  const unknown = Object.keys(v).filter((k) => !['id', 'apisock', 'mountpoint', 'mode', 'config', 'block'].includes(k));
  if (unknown.length > 0) throw new Error(`unknown keys: ${unknown.join(', ')}`);
  return { id: str('id'), apisock: str('apisock'), mountpoint: str('mountpoint'), mode, config: str('config'), block: v.block };
}

/**
 * Loads the modules an image mount needs, answers on `socket` until assigned, and returns the
 * assignment. Exits the process once it is no longer the child of `manager` (a pid): the manager
 * says which it is, because one that dies while this process loads would otherwise go unnoticed.
 */
export async function waitForAssignment(socket: string, manager: number): Promise<SpareAssignment> {
  // the manager lowered the main thread's priority as it started this process: the threads made before that too
  const lowered = canRestorePriority();
  if (lowered) setProcessNiceness(SPARE_NICENESS);
  const orphaned = setInterval(() => {
    if (process.ppid === manager) return;
    log.info('spare daemon: its manager is gone, exiting');
    rmSync(socket, { force: true });
    process.exit(0);
  }, ORPHAN_CHECK_MS);
  // the daemon's own modules came with the CLI command; a registry image's are loaded on first
  // mount, and the FUSE workers' in each worker's isolate: both are done now
  await Promise.all([import('../image/remote.js'), prestartWorkers(DEFAULT_CONFIG.threads)]);
  // and the mount's loop over a chunk table is compiled (image/mount-rehearsal.ts); a failure costs only that
  await import('../image/mount-rehearsal.js').then((m) => m.rehearseMount()).catch((err: Error) => log.warn('spare daemon: rehearsing a mount failed', { error: err.message }));
  rmSync(socket, { force: true });
  const assignment = await new Promise<SpareAssignment>((done, fail) => {
    const server = createServer((req, res) => {
      const reply = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (req.method === 'GET' && req.url === '/api/v1/daemon') return reply(200, { state: 'SPARE', pid: process.pid });
      if (req.method !== 'PUT' || req.url !== ASSIGN_PATH) return reply(404, { code: 'NOT_FOUND', message: `${req.method} ${req.url}: a spare daemon answers GET /api/v1/daemon and PUT ${ASSIGN_PATH}` });
      readBody(req, MAX_BODY).then(parseAssignment).then(
        (a) => {
          // answered once the server is closed: the manager's next call goes to the new socket
          server.close();
          res.on('finish', () => done(a));
          reply(200, { state: 'ASSIGNED', pid: process.pid });
        },
        (err: Error) => reply(err instanceof HttpError ? err.status : 400, { code: err instanceof HttpError ? err.code : 'BAD_REQUEST', message: `assignment: ${err.message}` }),
      );
    });
    listenOwnerOnly(server, socket).then(() => log.info('spare daemon ready', { pid: process.pid, socket }), fail);
  });
  clearInterval(orphaned);
  // serving now: at the manager's priority (the workers made at mount take the main thread's)
  if (lowered) setProcessNiceness(managerNiceness(manager));
  rmSync(socket, { force: true });
  log.info('spare daemon assigned', { id: assignment.id, mountpoint: assignment.mountpoint, mode: assignment.mode });
  return assignment;
}
