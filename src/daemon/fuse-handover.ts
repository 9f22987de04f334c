// Failover of dedicated daemons: the manager holds each one's /dev/fuse descriptor, so a daemon
// killed -9 leaves its mount alive (readers wait instead of failing) and a successor serves the
// same connection. The descriptor is the one the manager mounted itself, or, for a daemon it
// adopted after its own restart, a copy taken out of the daemon with pidfd_getfd.
import { closeSync, readdirSync, readlinkSync } from 'node:fs';
import { pidfdGetfd } from '../native/index.js';
import { log } from '../util/log.js';
import { mountFuseDevice, mountsAt } from './fuse/session.js';
import { isRunning } from './process-identity.js';
import type { DaemonRecord } from './daemon-records.js';

/** The connection a starting daemon serves: one kept from its predecessor (`takeover`) or a new one. */
export interface HandedFuse {
  fd: number;
  takeover: boolean;
}

export class FuseHandover {
  /** The /dev/fuse descriptors held, by daemon id. */
  private readonly fds = new Map<string, number>();

  /** Whether the record asks for failover (only a dedicated daemon's connection can be taken over). */
  static wanted(record: DaemonRecord): boolean {
    return record.failover === true && record.mode === 'dedicated';
  }

  holds(id: string): boolean {
    return this.fds.has(id);
  }

  /** For a daemon about to start: the connection to hand over if the mount is still alive, else a new mount. */
  async forStart(record: DaemonRecord): Promise<HandedFuse | undefined> {
    if (!FuseHandover.wanted(record)) return undefined;
    const held = this.fds.get(record.id);
    if (held !== undefined && mountsAt(record.mountpoint).length > 0) return { fd: held, takeover: true };
    this.release(record.id);
    const fd = await mountFuseDevice(record.mountpoint);
    this.fds.set(record.id, fd);
    return { fd, takeover: false };
  }

  /**
   * For a daemon this manager adopted (it mounted the connection before a restart of the manager,
   * or opened it itself): a copy of its /dev/fuse descriptor. Without one the daemon still
   * serves, but if it dies it is restarted on a fresh mount instead of failed over.
   */
  copyFrom(record: DaemonRecord): void {
    const pid = record.pid!;
    try {
      if (!isRunning(record)) throw new Error('the recorded pid is not the daemon that answered');
      const fd = readdirSync(`/proc/${pid}/fd`).find((n) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${n}`) === '/dev/fuse';
        } catch {
          return false;
        }
      });
      if (fd === undefined) throw new Error('it holds no /dev/fuse descriptor');
      this.fds.set(record.id, pidfdGetfd(pid, Number(fd)));
      log.info('holding the adopted daemon\'s FUSE connection (failover possible)', { id: record.id, pid });
    } catch (err) {
      log.warn('cannot hold the adopted daemon\'s FUSE connection: if it dies it is restarted, not failed over', { id: record.id, pid, error: err });
    }
  }

  release(id: string): void {
    const fd = this.fds.get(id);
    this.fds.delete(id);
    if (fd !== undefined) closeSync(fd);
  }
}
