// The tar writer: POSIX ustar headers, with a PAX extended header in front of an entry whenever a
// value does not fit (long or non-ASCII paths, big ids/sizes, sub-second or out-of-range mtimes,
// xattrs as SCHILY.xattr.*) — what GNU tar writes with --format=pax and reads back with --xattrs.
// Numbers too big for octal are also written GNU base-256 in the header. Output is deterministic.

import { Writable } from 'node:stream';
import { TarPathError, quoteBytes } from './errors.js';
import { BLOCK_SIZE, FIELD, MAX_ID, encodeHeader, octalMax, type HeaderFields } from './header.js';
import { encodePaxRecords, formatPaxTime, type PaxRecord } from './pax.js';
import { entryPathComponents } from './path.js';

export interface TarEntryMeta {
  /** Path as a byte string (UTF-8 names: `Buffer.from(name).toString('latin1')`); no '..', not absolute. */
  path: string;
  /** Permission bits incl. setuid/setgid/sticky; default 0o755 for directories, 0o777 for symlinks, else 0o644. */
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  /** Seconds since the epoch (default 0) and nanoseconds. */
  mtime?: number;
  mtimeNsec?: number;
  /** xattr name (byte string) → raw value. */
  xattrs?: Iterable<readonly [string, Uint8Array]>;
}

/** File data: one buffer, or chunks (not modified after they are handed over). */
export type TarFileData = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

const ZEROS = Buffer.alloc(BLOCK_SIZE * 2);
const MAX_OCTAL_ID = octalMax(FIELD.uid[1]); // 0o7777777
const MAX_SIZE = octalMax(FIELD.size[1]); // 8 GiB - 1
const MAX_MTIME = octalMax(FIELD.mtime[1]);


const asciiSafe = (s: string): boolean => /^[\x20-\x7e]*$/.test(s);

function checkByteString(what: string, s: string): void {
  if (/[^\x00-\xff]/.test(s)) throw new TypeError(`${what} ${quoteBytes(s)} is not a byte string (char code > 255)`);
  if (s.includes('\0')) throw new TypeError(`${what} ${quoteBytes(s)} contains a NUL byte`);
}

function checkInt(what: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`tar ${what} ${v} is out of range`);
}

interface Pending {
  typeflag: string;
  meta: TarEntryMeta;
  defaultMode: number;
  size?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

export class TarWriter {
  private busy = false;
  private finished = false;
  private error: Error | undefined;
  /** Bytes handed to the output so far. */
  bytesWritten = 0;

  constructor(private readonly out: Writable) {
    // an output error must not go unhandled: it is rethrown by the next call
    out.on('error', (err: Error) => {
      this.error ??= err;
    });
  }

  /** A directory; a trailing '/' is added to the path. './' is the root directory. */
  dir(meta: TarEntryMeta): Promise<void> {
    return this.run(() => this.entry({ typeflag: '5', meta: { ...meta, path: meta.path.endsWith('/') ? meta.path : `${meta.path}/` }, defaultMode: 0o755 }, true));
  }

  /** A regular file of exactly `size` bytes of `data` (may be omitted when `size` is 0). */
  file(meta: TarEntryMeta & { size: number }, data?: TarFileData): Promise<void> {
    return this.run(async () => {
      checkInt('file size', meta.size, 0);
      await this.entry({ typeflag: '0', meta, defaultMode: 0o644, size: meta.size });
      await this.data(meta.path, meta.size, data);
    });
  }

  /** A symbolic link; `target` is data (a byte string, no NUL), not checked as a path. */
  symlink(meta: TarEntryMeta, target: string): Promise<void> {
    return this.run(async () => {
      checkByteString('symlink target', target);
      await this.entry({ typeflag: '2', meta, defaultMode: 0o777, linkname: target });
    });
  }

  /** A hard link to `target`, an earlier entry's path (same rules as entry paths). */
  hardlink(meta: TarEntryMeta, target: string): Promise<void> {
    return this.run(async () => {
      if (entryPathComponents(target).length === 0) throw new TarPathError(`hardlink ${quoteBytes(meta.path)} targets the root`, target);
      await this.entry({ typeflag: '1', meta, defaultMode: 0o644, linkname: target });
    });
  }

  charDevice(meta: TarEntryMeta, major: number, minor: number): Promise<void> {
    return this.run(() => this.entry({ typeflag: '3', meta, defaultMode: 0o644, devmajor: major, devminor: minor }));
  }

  blockDevice(meta: TarEntryMeta, major: number, minor: number): Promise<void> {
    return this.run(() => this.entry({ typeflag: '4', meta, defaultMode: 0o644, devmajor: major, devminor: minor }));
  }

  fifo(meta: TarEntryMeta): Promise<void> {
    return this.run(() => this.entry({ typeflag: '6', meta, defaultMode: 0o644 }));
  }

  /** Writes the end-of-archive marker (two zero blocks) and, unless `end: false`, ends the output. */
  finish(opts: { end?: boolean } = {}): Promise<void> {
    return this.run(async () => {
      await this.write(ZEROS);
      this.finished = true;
      if (opts.end === false) return;
      await new Promise<void>((resolve, reject) => {
        const done = (err?: Error | null): void => {
          this.out.off('finish', onFinish);
          this.out.off('error', done);
          if (err) reject(err);
          else resolve();
        };
        const onFinish = (): void => done();
        this.out.once('finish', onFinish);
        this.out.once('error', done);
        this.out.end();
      });
    });
  }

  private async run(op: () => Promise<void>): Promise<void> {
    if (this.busy) throw new Error('TarWriter: one entry at a time (await the previous call first)');
    if (this.finished) throw new Error('TarWriter: the archive is already finished');
    if (this.error) throw this.error;
    this.busy = true;
    try {
      await op();
    } catch (err) {
      // a half-written entry leaves the archive unusable: refuse anything further
      this.error ??= err as Error;
      throw err;
    } finally {
      this.busy = false;
    }
  }

  private async write(buf: Uint8Array): Promise<void> {
    if (this.error) throw this.error;
    if (this.out.destroyed || this.out.writableEnded) throw new Error('TarWriter: the output stream is closed');
    if (buf.length === 0) return;
    this.bytesWritten += buf.length;
    if (this.out.write(buf)) return;
    await new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        this.out.off('drain', onDrain);
        this.out.off('error', onError);
        this.out.off('close', onClose);
      };
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(err);
      };
      const onClose = (): void => {
        cleanup();
        reject(this.error ?? new Error('TarWriter: the output stream closed before the archive was finished'));
      };
      this.out.on('drain', onDrain);
      this.out.on('error', onError);
      this.out.on('close', onClose);
    });
  }

  private async data(path: string, size: number, data: TarFileData | undefined): Promise<void> {
    let written = 0;
    const tooMuch = (): Error => new RangeError(`tar file ${quoteBytes(path)}: data is longer than its size ${size}`);
    if (data === undefined) {
      // nothing
    } else if (data instanceof Uint8Array) {
      if (data.length > size) throw tooMuch();
      await this.write(data);
      written = data.length;
    } else {
      for await (const chunk of data as AsyncIterable<Uint8Array>) {
        if (written + chunk.length > size) throw tooMuch();
        await this.write(chunk);
        written += chunk.length;
      }
    }
    if (written !== size) throw new RangeError(`tar file ${quoteBytes(path)}: data is ${written} bytes, its size is ${size}`);
    const pad = (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
    if (pad > 0) await this.write(ZEROS.subarray(0, pad));
  }

  private async entry(p: Pending, rootAllowed = false): Promise<void> {
    const m = p.meta;
    checkByteString('tar entry path', m.path);
    if (entryPathComponents(m.path).length === 0 && !rootAllowed) {
      throw new TarPathError(`tar entry path ${quoteBytes(m.path)} names the root`, m.path);
    }
    const mode = m.mode ?? p.defaultMode;
    const uid = m.uid ?? 0;
    const gid = m.gid ?? 0;
    const uname = m.uname ?? '';
    const gname = m.gname ?? '';
    const mtime = m.mtime ?? 0;
    const mtimeNsec = m.mtimeNsec ?? 0;
    const size = p.size ?? 0;
    const linkname = p.linkname ?? '';
    checkInt('mode', mode, 0, 0o7777);
    checkInt('uid', uid, 0, MAX_ID);
    checkInt('gid', gid, 0, MAX_ID);
    checkInt('mtime nanoseconds', mtimeNsec, 0, 999_999_999);
    checkInt('mtime', mtime, Number.MIN_SAFE_INTEGER + 1);
    checkInt('device major', p.devmajor ?? 0, 0, MAX_ID);
    checkInt('device minor', p.devminor ?? 0, 0, MAX_ID);
    checkByteString('uname', uname);
    checkByteString('gname', gname);

    // PAX strings are meant to be UTF-8; other bytes are written as they are (like GNU tar 1.34,
    // which neither writes nor knows 'hdrcharset')
    const records: PaxRecord[] = [];
    const longString = (key: 'path' | 'linkpath' | 'uname' | 'gname', v: string, max: number): void => {
      if (v.length > max || !asciiSafe(v)) records.push([key, v]);
    };
    longString('path', m.path, FIELD.name[1]);
    longString('linkpath', linkname, FIELD.linkname[1]);
    longString('uname', uname, FIELD.uname[1] - 1);
    longString('gname', gname, FIELD.gname[1] - 1);
    if (uid > MAX_OCTAL_ID) records.push(['uid', String(uid)]);
    if (gid > MAX_OCTAL_ID) records.push(['gid', String(gid)]);
    if (size > MAX_SIZE) records.push(['size', String(size)]);
    if (mtimeNsec !== 0 || mtime < 0 || mtime > MAX_MTIME) records.push(['mtime', formatPaxTime(mtime, mtimeNsec)]);
    for (const [name, value] of m.xattrs ?? []) {
      checkByteString('xattr name', name);
      if (name === '' || name.includes('=')) throw new TypeError(`xattr name ${quoteBytes(name)} cannot be stored in a PAX header`);
      records.push([`SCHILY.xattr.${name}`, value]);
    }

    const header: HeaderFields = {
      name: m.path.slice(0, FIELD.name[1]),
      typeflag: p.typeflag,
      mode,
      uid,
      gid,
      size,
      mtime,
      linkname: linkname.slice(0, FIELD.linkname[1]),
      uname,
      gname,
      devmajor: p.devmajor ?? 0,
      devminor: p.devminor ?? 0,
    };
    const parts: Buffer[] = [];
    if (records.length > 0) {
      const pax = encodePaxRecords(records);
      parts.push(
        encodeHeader({
          name: paxHeaderName(m.path),
          typeflag: 'x',
          mode: 0o644,
          uid: 0,
          gid: 0,
          size: pax.length,
          mtime: Math.min(Math.max(mtime, 0), MAX_MTIME),
        }),
        pax,
        ZEROS.subarray(0, (BLOCK_SIZE - (pax.length % BLOCK_SIZE)) % BLOCK_SIZE),
      );
    }
    parts.push(encodeHeader(header));
    await this.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }
}

/** "./PaxHeaders/<basename>", printable ASCII only, at most 100 bytes (what GNU tar writes, roughly). */
function paxHeaderName(path: string): string {
  const base = path.replace(/\/+$/, '').split('/').pop() || '.';
  return `./PaxHeaders/${base}`.replace(/[^\x20-\x7e]/g, '_').slice(0, FIELD.name[1]);
}

/** The bytes of the archive `fill` writes, kept whole in memory (for small archives). */
export async function tarBytes(fill: (tar: TarWriter) => Promise<void>): Promise<Buffer> {
  const parts: Buffer[] = [];
  const tar = new TarWriter(new Writable({
    write(chunk: Buffer, _enc, done) {
      parts.push(chunk);
      done();
    },
  }));
  await fill(tar);
  await tar.finish();
  return Buffer.concat(parts);
}
