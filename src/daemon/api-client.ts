// A client for the daemon's API socket (see api.ts), for the manager and the tests.
import { request } from 'node:http';
import { type AccessTrace, parseAccessTrace } from '../trace/access-trace.js';
import type { MountSpec } from './config.js';
import type { DaemonInfo } from './daemon.js';
import type { ImageMountInfo } from './image-mount.js';

export class DaemonApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export class DaemonClient {
  constructor(readonly socket: string, private readonly timeoutMs = 30_000) {}

  /** The response body of one request; a non-2xx status is a DaemonApiError. */
  call(method: string, path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<string> {
    return new Promise((done, fail) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request({ socketPath: this.socket, method, path, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('error', fail);
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return done(text);
          let err = { code: 'HTTP', message: text };
          try {
            err = JSON.parse(text) as typeof err;
          } catch {
            // not JSON: keep the text
          }
          // the daemon's own words first: they are what a user of `mount` needs to read
          fail(new DaemonApiError(status, err.code, `${err.message} (daemon API: ${method} ${path}, ${status})`));
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer from ${this.socket} within ${timeoutMs} ms`)));
      req.on('error', fail);
      req.end(data);
    });
  }

  async info(timeoutMs?: number): Promise<DaemonInfo> {
    return JSON.parse(await this.call('GET', '/api/v1/daemon', undefined, timeoutMs)) as DaemonInfo;
  }

  async mount(name: string, spec: MountSpec): Promise<ImageMountInfo> {
    return JSON.parse(await this.call('POST', `/api/v1/mount?mountpoint=${encodeURIComponent(name === '/' ? '/' : `/${name}`)}`, spec)) as ImageMountInfo;
  }

  async umount(name: string): Promise<void> {
    await this.call('DELETE', `/api/v1/mount?mountpoint=${encodeURIComponent(name === '/' ? '/' : `/${name}`)}`);
  }

  async backendStats(): Promise<Record<string, number>> {
    return JSON.parse(await this.call('GET', '/api/v1/metrics/backend')) as Record<string, number>;
  }

  /** The access trace so far of the image mounted as `name` (checked as any trace file is). */
  async accessTrace(name: string): Promise<AccessTrace> {
    return parseAccessTrace(await this.call('GET', `/api/v1/metrics/pattern?mountpoint=${encodeURIComponent(name === '/' ? '/' : `/${name}`)}`));
  }

  metrics(): Promise<string> {
    return this.call('GET', '/metrics');
  }

  async exit(): Promise<void> {
    await this.call('PUT', '/api/v1/daemon/exit');
  }
}
