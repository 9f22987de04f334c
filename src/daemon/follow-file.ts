// Following a growing file, as tail -f does: `mount` shows its daemon's log while it runs.
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/** Bytes appended to `path` from `offset` on, copied to `out` until stopped. */
export function followFile(path: string, out: NodeJS.WritableStream, offset = 0): () => void {
  let at = offset;
  let busy = false;
  const copy = (): void => {
    if (busy) return;
    busy = true;
    try {
      const size = statSync(path, { throwIfNoEntry: false })?.size ?? 0;
      if (size < at) at = 0;
      if (size > at) {
        const fd = openSync(path, 'r');
        try {
          const buf = Buffer.alloc(size - at);
          const n = readSyncAll(fd, buf, at);
          out.write(buf.subarray(0, n));
          at += n;
        } finally {
          closeSync(fd);
        }
      }
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(copy, 100);
  return () => {
    clearInterval(timer);
    copy();
  };
}

function readSyncAll(fd: number, buf: Buffer, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
