// The daemon's images as NBD exports: each mounted image's flat EROFS image (image-device.ts), by its
// mount name; the default export "" is a dedicated daemon's one image. `serveNbd` puts an NBD server
// in front of a daemon and its counters into the daemon's metrics.
import type { Daemon } from '../daemon/daemon.js';
import type { ImageMount } from '../daemon/image-mount.js';
import type { Family } from '../daemon/metrics.js';
import { log } from '../util/log.js';
import { ImageBlockDevice } from './image-device.js';
import type { NbdExports } from './nbd/device.js';
import { NbdServer } from './nbd/server.js';

/** The mount name of an export name: "" is the image at "/" (a dedicated daemon's). */
const mountName = (exportName: string): string => (exportName === '' ? '/' : exportName);

export function daemonExports(daemon: Daemon): NbdExports {
  // one device per mounted image (its block map is built once); a remounted name gets a new one
  const devices = new WeakMap<ImageMount, ImageBlockDevice>();
  return {
    names: () => daemon.mountNames().map((n) => (n === '/' ? '' : n)),
    open: (name) => {
      const mount = daemon.imageMount(mountName(name));
      if (!mount) return undefined;
      let device = devices.get(mount);
      if (!device) {
        try {
          device = new ImageBlockDevice(mount);
        } catch (err) {
          // an image whose bootstrap has no flat image (overlapping chunks): no such export
          log.warn('image has no flat image to export', { name, error: err });
          return undefined;
        }
        devices.set(mount, device);
      }
      return device;
    },
    description: (name) => {
      const info = daemon.imageMount(mountName(name))?.info();
      return info ? `${info.target ?? info.bootstrap} as a flat EROFS image` : undefined;
    },
  };
}

/** An NBD server for the daemon's images, listening at each of `addresses` (unix:PATH, tcp:HOST:PORT). */
export async function serveNbd(daemon: Daemon, addresses: string[]): Promise<NbdServer> {
  const exports = daemonExports(daemon);
  for (const name of exports.names()) if (!exports.open(name)) throw new Error(`image ${name || '/'} cannot be served as a flat image (see the log)`);
  const server = new NbdServer(exports);
  try {
    for (const a of addresses) await server.listen(a);
  } catch (err) {
    await server.close();
    throw err;
  }
  daemon.addMetrics(() => nbdFamilies(server));
  return server;
}

function nbdFamilies(server: NbdServer): Family[] {
  const s = server.stats;
  const counter = (name: string, help: string, value: number): Family => ({ name, type: 'counter', help, samples: [{ value }] });
  return [
    { name: 'nydusify_nbd_clients', type: 'gauge', help: 'NBD clients connected now.', samples: [{ value: s.clients }] },
    counter('nydusify_nbd_connections_total', 'NBD clients accepted.', s.connections),
    counter('nydusify_nbd_requests_total', 'NBD requests served.', s.requests),
    counter('nydusify_nbd_read_bytes_total', 'Bytes sent to NBD clients by READ.', s.readBytes),
    counter('nydusify_nbd_errors_total', 'NBD requests answered with an error.', s.errors),
  ];
}
