import { createServer } from 'node:net';

/** A TCP port on 127.0.0.1 nothing listens on now (for a server a test starts). */
export const freePort = (): Promise<number> => new Promise((done, fail) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address() as { port: number };
    s.close(() => done(port));
  });
  s.on('error', fail);
});
