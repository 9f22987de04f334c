// The streaming tar reader: a byte stream in, entries out. File data is handed out as zero-copy
// slices of the input chunks and never buffered whole, so layers with multi-GB files stream.
// Meta headers (PAX 'x'/'g', GNU 'L'/'K') are folded into the entry they describe.

import { ChunkReader } from './chunks.js';
import { TarFormatError, quoteBytes } from './errors.js';
import { BLOCK_SIZE, MAX_ID, decodeHeader, isZeroBlock, type EntryType, type HeaderFormat } from './header.js';
import { MAX_META_SIZE, decodePaxAttributes, parsePaxRecords, type PaxRecords } from './pax.js';

export interface TarEntry {
  /** Entry path as a byte string (each byte one char code); raw: check it with entryPathComponents. */
  path: string;
  /** Hardlink target (a path in the archive) or symlink target, as a byte string; '' otherwise. */
  linkpath: string;
  type: EntryType;
  /** The entry header's raw typeflag ('0', '\0', '7', '1', …). */
  typeflag: string;
  format: HeaderFormat;
  /** Permission bits including setuid/setgid/sticky (no file-type bits). */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Seconds since the epoch (may be negative) and the nanoseconds a PAX mtime adds. */
  mtime: number;
  mtimeNsec: number;
  /** Data length: regular files only, 0 for every other type. */
  size: number;
  devmajor: number;
  devminor: number;
  /** Extended attributes: name (byte string) → raw value. */
  xattrs: Map<string, Buffer>;
  /** Stream offset of the entry's first header block (its meta headers included). */
  headerOffset: number;
  /** Stream offset of the entry's data. */
  dataOffset: number;
  /**
   * The data, as slices of the input chunks (do not modify them). Read it, or not, before asking
   * for the next entry: whatever is left unread is skipped then, and the body can no longer be read.
   */
  body: AsyncIterable<Buffer>;
  /**
   * The unread body in one Buffer (for small entries; may be a view of an input chunk); throws
   * RangeError when the entry is larger than `maxSize`.
   */
  readAll(maxSize?: number): Promise<Buffer>;
  /** Skips the unread rest of the body. */
  skip(): Promise<void>;
}

export interface ParseTarOptions {
  /** Largest accepted PAX / GNU long-name header body; default 1 MiB. */
  maxMetaSize?: number;
  /**
   * After the end-of-archive marker, read the source to its end (default true), so that whoever
   * tees or hashes the stream sees all of it. With false, the source is closed instead.
   */
  drain?: boolean;
}

interface BodyState {
  remaining: number;
  /** False once the parser has moved past the entry. */
  current: boolean;
  /** True while the body is awaiting input: the parser must not move on concurrently. */
  reading: boolean;
}

const padding = (size: number): number => (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;

/**
 * Parses a tar stream (ustar, GNU, PAX, v7). Every malformed, truncated or unsupported input is a
 * TarFormatError. Ending the iteration early closes the source.
 */
export async function* parseTar(source: AsyncIterable<Uint8Array>, opts: ParseTarOptions = {}): AsyncGenerator<TarEntry, void, undefined> {
  const maxMeta = opts.maxMetaSize ?? MAX_META_SIZE;
  const r = new ChunkReader(source);
  const scratch = Buffer.allocUnsafe(BLOCK_SIZE);

  const globals: PaxRecords = new Map();
  let globalBytes = 0;
  let local: PaxRecords | null = null;
  let longName: string | null = null;
  let longLink: string | null = null;
  let metaOffset = -1;
  let lastPath: string | null = null;

  const after = (): string => (lastPath === null ? 'at the start of the archive' : `after entry ${quoteBytes(lastPath)}`);

  let completed = false;
  try {
    for (;;) {
      const headerOffset = r.offset;
      const block = await r.readExact(BLOCK_SIZE, { scratch });
      const pendingMeta = local !== null || longName !== null || longLink !== null;
      if (typeof block === 'number') {
        if (block === 0 && !pendingMeta) {
          completed = true;
          return; // no end-of-archive marker, but at a header boundary: accepted
        }
        if (block === 0) {
          throw new TarFormatError(`truncated tar archive: it ends after an extended/long-name header (at offset ${metaOffset}), before the entry it describes`, { offset: headerOffset });
        }
        throw new TarFormatError(`truncated tar archive: header at offset ${headerOffset} has only ${block} of ${BLOCK_SIZE} bytes (${after()})`, { offset: headerOffset });
      }

      if (isZeroBlock(block)) {
        if (pendingMeta) {
          throw new TarFormatError(`tar archive ends after an extended/long-name header (at offset ${metaOffset}), before the entry it describes`, { offset: headerOffset });
        }
        const second = await r.readExact(BLOCK_SIZE, { scratch });
        if (typeof second === 'number') {
          if (second !== 0) {
            throw new TarFormatError(`truncated tar archive: end-of-archive block at offset ${headerOffset + BLOCK_SIZE} has only ${second} bytes`, { offset: headerOffset + BLOCK_SIZE });
          }
        } else if (!isZeroBlock(second)) {
          throw new TarFormatError(`invalid tar archive: a lone zero block at offset ${headerOffset} is followed by more data (${after()})`, { offset: headerOffset });
        }
        if (opts.drain !== false) await r.drain();
        completed = true;
        return;
      }

      const h = decodeHeader(block, 0, headerOffset);
      if (h.kind === 'pax' || h.kind === 'pax-global' || h.kind === 'gnu-longname' || h.kind === 'gnu-longlink') {
        if (h.size > maxMeta) {
          throw new TarFormatError(`invalid tar archive: ${h.kind} header at offset ${headerOffset} claims ${h.size} bytes (limit ${maxMeta})`, { offset: headerOffset });
        }
        const data = await r.readExact(h.size, { copy: true });
        if (typeof data === 'number') {
          throw new TarFormatError(`truncated tar archive: ${h.kind} header at offset ${headerOffset} needs ${h.size} bytes of data, only ${data} present`, { offset: headerOffset });
        }
        await skipPadding(r, h.size, () => `${h.kind} header at offset ${headerOffset}`);
        if (metaOffset < 0 && h.kind !== 'pax-global') metaOffset = headerOffset;
        try {
          switch (h.kind) {
            case 'pax':
              local = parsePaxRecords(data);
              break;
            case 'pax-global':
              for (const [k, v] of parsePaxRecords(data)) {
                globalBytes += k.length + v.length;
                if (globalBytes > maxMeta) throw new TarFormatError(`global PAX headers add up to more than ${maxMeta} bytes`);
                globals.set(k, v);
              }
              break;
            case 'gnu-longname':
              longName = cString(data);
              break;
            case 'gnu-longlink':
              longLink = cString(data);
              break;
          }
        } catch (err) {
          if (err instanceof TarFormatError && err.offset === undefined) {
            throw new TarFormatError(`${err.message} (${h.kind} header at offset ${headerOffset})`, { offset: headerOffset });
          }
          throw err;
        }
        continue;
      }

      // a real entry: fold in its meta headers
      const type = h.kind;
      let path = longName ?? h.name;
      let linkpath = longLink ?? h.linkname;
      let { uid, gid, uname, gname, mtime, devmajor, devminor } = h;
      let mtimeNsec = 0;
      let size = h.size;
      let xattrs = new Map<string, Buffer>();
      if (local !== null || globals.size > 0) {
        const merged = local === null ? globals : globals.size === 0 ? local : new Map([...globals, ...local]);
        let a;
        try {
          a = decodePaxAttributes(merged);
        } catch (err) {
          if (err instanceof TarFormatError) {
            throw new TarFormatError(`${err.message} (entry at offset ${headerOffset}, ${quoteBytes(path)})`, { offset: headerOffset, entry: path });
          }
          throw err;
        }
        path = a.path ?? path;
        linkpath = a.linkpath ?? linkpath;
        uid = a.uid ?? uid;
        gid = a.gid ?? gid;
        uname = a.uname ?? uname;
        gname = a.gname ?? gname;
        if (a.mtime !== undefined) {
          mtime = a.mtime;
          mtimeNsec = a.mtimeNsec ?? 0;
        }
        size = a.size ?? size;
        devmajor = a.devmajor ?? devmajor;
        devminor = a.devminor ?? devminor;
        xattrs = a.xattrs;
      }
      // POSIX: links, directories, devices and FIFOs have no data, whatever the size field says
      if (type !== 'file') size = 0;
      const isDevice = type === 'char' || type === 'block';
      for (const [what, v] of [['uid', uid], ['gid', gid], ['device major', isDevice ? devmajor : 0], ['device minor', isDevice ? devminor : 0]] as const) {
        if (v > MAX_ID) {
          throw new TarFormatError(`invalid tar entry ${quoteBytes(path)} at offset ${headerOffset}: ${what} ${v} is out of range (max ${MAX_ID})`, { offset: headerOffset, entry: path });
        }
      }

      const entryOffset = metaOffset >= 0 ? metaOffset : headerOffset;
      local = null;
      longName = null;
      longLink = null;
      metaOffset = -1;
      lastPath = path;

      const state: BodyState = { remaining: size, current: true, reading: false };
      const entryPath = path;
      const dataOffset = r.offset;
      const truncated = (): TarFormatError =>
        new TarFormatError(
          `truncated tar archive: entry ${quoteBytes(entryPath)} needs ${size} bytes of data, only ${size - state.remaining} present`,
          { offset: r.offset, entry: entryPath },
        );

      async function* body(): AsyncGenerator<Buffer, void, undefined> {
        for (;;) {
          if (!state.current) throw new Error(`tar entry ${quoteBytes(entryPath)}: body read after moving on to the next entry`);
          if (state.remaining === 0) return;
          if (r.buffered === 0) {
            if (state.reading) throw new Error(`tar entry ${quoteBytes(entryPath)}: body read concurrently`);
            state.reading = true;
            let more: boolean;
            try {
              more = await r.fill();
            } finally {
              state.reading = false;
            }
            if (!more) throw truncated();
            continue;
          }
          const slice = r.take(state.remaining);
          state.remaining -= slice.length;
          yield slice;
        }
      }

      const entry: TarEntry = {
        path,
        linkpath: type === 'hardlink' || type === 'symlink' ? linkpath : '',
        type,
        typeflag: h.typeflag,
        format: h.format,
        mode: h.mode,
        uid,
        gid,
        uname,
        gname,
        mtime,
        mtimeNsec,
        size,
        devmajor: isDevice ? devmajor : 0,
        devminor: isDevice ? devminor : 0,
        xattrs,
        headerOffset: entryOffset,
        dataOffset,
        body: { [Symbol.asyncIterator]: body },
        async readAll(maxSize = Infinity): Promise<Buffer> {
          if (size > maxSize) throw new RangeError(`tar entry ${quoteBytes(entryPath)} has ${size} bytes, more than ${maxSize}`);
          if (state.remaining === size && r.buffered >= size && state.current) {
            state.remaining = 0;
            return r.take(size); // all in one chunk: no copy
          }
          const parts: Buffer[] = [];
          for await (const part of body()) parts.push(part);
          return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
        },
        async skip(): Promise<void> {
          if (!state.current) return;
          if (state.reading) throw new Error(`tar entry ${quoteBytes(entryPath)}: skipped while its body is being read`);
          const skipped = await r.skip(state.remaining);
          state.remaining -= skipped;
          if (state.remaining > 0) throw truncated();
        },
      };

      yield entry;

      if (state.reading) {
        throw new Error(`parseTar: next entry requested while the body of ${quoteBytes(entryPath)} is still being read`);
      }
      if (state.remaining > 0) {
        const skipped = await r.skip(state.remaining);
        state.remaining -= skipped;
        if (state.remaining > 0) {
          state.current = false;
          throw truncated();
        }
      }
      state.current = false;
      await skipPadding(r, size, () => `entry ${quoteBytes(entryPath)}`);
    }
  } finally {
    if (!completed) await r.close().catch(() => undefined);
  }
}

async function skipPadding(r: ChunkReader, size: number, what: () => string): Promise<void> {
  const pad = padding(size);
  if (pad === 0) return;
  const skipped = r.buffered >= pad ? r.take(pad).length : await r.skip(pad);
  if (skipped < pad) {
    throw new TarFormatError(`truncated tar archive: the padding after the data of ${what()} is cut short`, { offset: r.offset });
  }
}

/** A GNU long name/link body: the bytes up to the first NUL. */
function cString(data: Buffer): string {
  const nul = data.indexOf(0);
  return data.toString('latin1', 0, nul < 0 ? data.length : nul);
}
