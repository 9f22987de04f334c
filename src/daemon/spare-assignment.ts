// What a manager and a waiting spare daemon (spare.ts) agree on: the assignment and its route, and the
// spare's niceness. Its own module, so the manager's side (spare-daemons.ts, and with it `mount`)
// does not load the daemon's server, FUSE and registry code to know them.

/** What a spare is told to be: the flags the manager would have started it with. */
export interface SpareAssignment {
  id: string;
  apisock: string;
  mountpoint: string;
  mode: 'dedicated' | 'shared';
  config: string;
  block: boolean;
}

/** The assignment route on the spare's own socket. */
export const ASSIGN_PATH = '/api/v1/spare/assign';

/**
 * A waiting spare's niceness. A spare is started as the one before it is assigned, which is when an
 * image is pulled and its container starts: the CPU it takes loading (a third of a second) is
 * theirs. At 10 it has a tenth of a busy CPU's share, so on a loaded node it still comes up well
 * within its start timeout. Only a manager that can give the priority back (root) lowers it.
 */
export const SPARE_NICENESS = 10;

/** Whether this process may lower its niceness again (raise its priority) once it has raised it. */
export const canRestorePriority = (): boolean => process.getuid?.() === 0;
