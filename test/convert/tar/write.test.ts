// TarWriter: its archives extract with GNU tar (--xattrs) into the tree they describe, parse back
// to the same entries, and PAX/base-256 kick in exactly where ustar runs out.
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TarPathError } from '../../../src/convert/tar/errors.js';
import { parseTar, type TarEntry } from '../../../src/convert/tar/parse.js';
import { parsePaxRecords } from '../../../src/convert/tar/pax.js';
import { TarWriter } from '../../../src/convert/tar/write.js';
import { isRoot, parseAll, sh, sha256, snapshotTree, type ReadEntry } from './helpers.js';
import { buildTree } from './tree.js';

/** Collects everything written into one Buffer. */
class Sink extends Writable {
  chunks: Buffer[] = [];
  constructor(opts: { highWaterMark?: number; delayMs?: number } = {}) {
    super({
      highWaterMark: opts.highWaterMark ?? 16 * 1024,
      write: (chunk: Buffer, _enc, cb) => {
        this.chunks.push(Buffer.from(chunk));
        if (opts.delayMs) setTimeout(cb, opts.delayMs);
        else cb();
      },
    });
  }
  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

async function copyEntry(w: TarWriter, e: TarEntry): Promise<void> {
  const meta = { path: e.path, mode: e.mode, uid: e.uid, gid: e.gid, uname: e.uname, gname: e.gname, mtime: e.mtime, mtimeNsec: e.mtimeNsec, xattrs: e.xattrs };
  switch (e.type) {
    case 'dir':
      return w.dir(meta);
    case 'file':
      return w.file({ ...meta, size: e.size }, e.body);
    case 'symlink':
      return w.symlink(meta, e.linkpath);
    case 'hardlink':
      return w.hardlink(meta, e.linkpath);
    case 'char':
      return w.charDevice(meta, e.devmajor, e.devminor);
    case 'block':
      return w.blockDevice(meta, e.devmajor, e.devminor);
    case 'fifo':
      return w.fifo(meta);
  }
}

async function writeArchive(build: (w: TarWriter) => Promise<void>, sink = new Sink()): Promise<Buffer> {
  const w = new TarWriter(sink);
  await build(w);
  await w.finish();
  return sink.data;
}

/** Entries without what legitimately differs between writers; data as a digest (toEqual on MiBs is slow). */
const strip = (entries: ReadEntry[]): unknown[] =>
  entries.map(({ headerOffset: _h, dataOffset: _d, format: _f, typeflag: _t, data, ...rest }) => ({ ...rest, data: sha256(data) }));

describe.skipIf(!isRoot)('TarWriter round trip through GNU tar', () => {
  let tmp: string;
  let root: string;
  let gnuTar: Buffer;

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'tar-write-'));
    root = join(tmp, 'root');
    buildTree(root, { longTarget: true });
    sh('tar', ['-C', root, '--sort=name', '--xattrs', '--xattrs-include=*', '--format=pax', '-cf', join(tmp, 'gnu.tar'), '.']);
    gnuTar = readFileSync(join(tmp, 'gnu.tar'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('re-writing a GNU archive entry by entry: GNU tar -x reproduces the tree, listings and parses agree', async () => {
    const ours = join(tmp, 'ours.tar');
    const out = createWriteStream(ours);
    const w = new TarWriter(out);
    for await (const e of parseTar((async function* () { yield gnuTar; })())) await copyEntry(w, e);
    await w.finish();

    const dest = join(tmp, 'dest');
    mkdirSync(dest);
    sh('tar', ['-C', dest, '--xattrs', '--xattrs-include=*', '--numeric-owner', '-xf', ours]);
    const want = snapshotTree(root, { mtimeOf: () => true });
    const got = snapshotTree(dest, { mtimeOf: () => true });
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [path, s] of want) expect(got.get(path), path).toEqual(s);

    const list = (f: string): string => sh('tar', ['-tv', '--numeric-owner', '--full-time', '-f', f]);
    expect(list(ours)).toBe(list(join(tmp, 'gnu.tar')));

    const oursBuf = readFileSync(ours);
    expect(strip(await parseAll(oursBuf))).toEqual(strip(await parseAll(gnuTar)));
  });

  it('non-UTF-8 names are written as raw PAX bytes (as GNU tar does) and extract byte for byte', async () => {
    const name = 'caf\xe9-\xff\xfe.bin'; // latin1 bytes, not valid UTF-8
    const tar = await writeArchive(async (w) => {
      await w.file({ path: name, size: 3, mtime: 1 }, Buffer.from('abc'));
    });
    expect(tar.includes(`path=${name}\n`, 0, 'latin1')).toBe(true);
    const dest = join(tmp, 'binary');
    mkdirSync(dest);
    sh('tar', ['-C', dest, '-xf', '-'], { input: tar });
    expect(readdirSync(dest, { encoding: 'buffer' }).map((b) => b.toString('latin1'))).toEqual([name]);
    expect((await parseAll(tar))[0]!.path).toBe(name);
  });
});

describe('TarWriter headers', () => {
  it('plain short entries: ustar only, no PAX header, two zero blocks at the end', async () => {
    const tar = await writeArchive(async (w) => {
      await w.dir({ path: 'a', mtime: 5 });
      await w.file({ path: 'a/f', size: 600, mtime: 5, uid: 1000, gid: 1000, uname: 'u', gname: 'g' }, Buffer.alloc(600, 7));
    });
    expect(tar.length).toBe(512 + 512 + 1024 + 1024);
    expect(tar.subarray(-1024).every((b) => b === 0)).toBe(true);
    expect(tar.includes('PaxHeaders')).toBe(false);
    const [d, f] = await parseAll(tar);
    expect(d).toMatchObject({ path: 'a/', type: 'dir', mode: 0o755, mtime: 5 });
    expect(f).toMatchObject({ path: 'a/f', type: 'file', mode: 0o644, size: 600, uid: 1000, gid: 1000, uname: 'u', gname: 'g', format: 'ustar' });
    expect(f!.data).toEqual(Buffer.alloc(600, 7));
  });

  it('PAX records exactly when ustar cannot hold a value', async () => {
    const long = 'p/'.repeat(60) + 'x';
    const tar = await writeArchive(async (w) => {
      await w.file({ path: long, size: 0 });
      await w.file({ path: 'caf\xc3\xa9', size: 0 }); // UTF-8 "café" as bytes
      await w.file({ path: 'ids', size: 0, uid: 0o7777777 + 1, gid: 2 ** 32 - 2, uname: 'n'.repeat(40) });
      await w.file({ path: 'ns', size: 0, mtime: 1600000000, mtimeNsec: 500 });
      await w.file({ path: 'neg', size: 0, mtime: -2, mtimeNsec: 250_000_000 });
      await w.file({ path: 'future', size: 0, mtime: 2 ** 34 });
      await w.symlink({ path: 'sl' }, 't/'.repeat(70));
      await w.file({ path: 'xa', size: 0, xattrs: new Map([['user.a', Buffer.from([0, 10, 0])]]) });
      await w.charDevice({ path: 'dev' }, 2 ** 22, 2 ** 23);
    });
    const e = await parseAll(tar);
    expect(e.map((x) => x.path)).toEqual([long, 'caf\xc3\xa9', 'ids', 'ns', 'neg', 'future', 'sl', 'xa', 'dev']);
    expect(e[2]).toMatchObject({ uid: 0o7777777 + 1, gid: 2 ** 32 - 2, uname: 'n'.repeat(40) });
    expect(e[3]).toMatchObject({ mtime: 1600000000, mtimeNsec: 500 });
    expect(e[4]).toMatchObject({ mtime: -2, mtimeNsec: 250_000_000 });
    expect(e[5]).toMatchObject({ mtime: 2 ** 34, mtimeNsec: 0 });
    expect(e[6]).toMatchObject({ type: 'symlink', linkpath: 't/'.repeat(70) });
    expect(e[7]!.xattrs).toEqual(new Map([['user.a', Buffer.from([0, 10, 0])]]));
    expect(e[8]).toMatchObject({ type: 'char', devmajor: 2 ** 22, devminor: 2 ** 23 });
    // which records were written: read the raw PAX headers
    const records: string[][] = [];
    for (const raw of await rawPaxHeaders(tar)) records.push([...raw.keys()]);
    expect(records).toEqual([['path'], ['path'], ['uname', 'uid', 'gid'], ['mtime'], ['mtime'], ['mtime'], ['linkpath'], ['SCHILY.xattr.user.a']]);
    // and GNU tar agrees
    const listing = sh('tar', ['-tv', '--numeric-owner', '--full-time', '-f', '-'], { input: tar });
    expect(listing).toContain(`ids`);
    expect(listing).toContain('4294967294'); // gid
    expect(listing).toContain('4194304,8388608'); // base-256 device numbers
  });

  it('a file over 8 GiB gets a PAX size record and a base-256 size field', async () => {
    const size = 8 * 1024 ** 3 + 1;
    const sink = new Sink();
    const w = new TarWriter(sink);
    const data = (async function* () {
      yield Buffer.alloc(10);
      throw new Error('stop here');
    })();
    await expect(w.file({ path: 'huge', size }, data)).rejects.toThrow('stop here');
    const head = sink.data;
    const recs = [...(await rawPaxHeaders(head, true))];
    expect(recs[0]!.get('size')!.toString()).toBe(String(size));
    const hdr = head.subarray(1024, 1536);
    expect(hdr[124]).toBe(0x80); // base-256 marker
    const it = parseTar((async function* () { yield head; })())[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value).toMatchObject({ path: 'huge', size });
    await it.return(undefined);
    // the writer refuses to continue after a failed entry
    await expect(w.fifo({ path: 'x' })).rejects.toThrow('stop here');
  });

  it('checks its input: paths, sizes, one entry at a time', async () => {
    const w = new TarWriter(new Sink());
    await expect(w.file({ path: '../x', size: 0 })).rejects.toBeInstanceOf(TarPathError);
    const w2 = new TarWriter(new Sink());
    await expect(w2.file({ path: '/etc/passwd', size: 0 })).rejects.toBeInstanceOf(TarPathError);
    await expect(new TarWriter(new Sink()).hardlink({ path: 'h' }, '../../etc/shadow')).rejects.toBeInstanceOf(TarPathError);
    await expect(new TarWriter(new Sink()).file({ path: 'f', size: 2 }, Buffer.from('abc'))).rejects.toThrow(/longer than its size/);
    await expect(new TarWriter(new Sink()).file({ path: 'f', size: 4 }, [Buffer.from('abc')])).rejects.toThrow(/3 bytes, its size is 4/);
    await expect(new TarWriter(new Sink()).file({ path: 'f', size: 0, uid: -1 })).rejects.toThrow(RangeError);
    await expect(new TarWriter(new Sink()).file({ path: 'f', size: 0, xattrs: [['a=b', Buffer.alloc(1)]] })).rejects.toThrow(/xattr name/);
    const w3 = new TarWriter(new Sink());
    const first = w3.file({ path: 'a', size: 1 }, (async function* () { await new Promise((r) => setTimeout(r, 5)); yield Buffer.from('a'); })());
    await expect(w3.file({ path: 'b', size: 0 })).rejects.toThrow(/one entry at a time/);
    await first;
    await w3.finish();
    await expect(w3.fifo({ path: 'late' })).rejects.toThrow(/already finished/);
    // the root directory is fine, a file called "." is not
    const w4 = new TarWriter(new Sink());
    await w4.dir({ path: './' });
    await expect(w4.file({ path: '.', size: 0 })).rejects.toBeInstanceOf(TarPathError);
  });

  it('waits for a slow output (backpressure) instead of buffering the file', async () => {
    const sink = new Sink({ highWaterMark: 4096, delayMs: 1 });
    const w = new TarWriter(sink);
    let maxBuffered = 0;
    const chunk = Buffer.alloc(8192, 1);
    async function* data(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 64; i++) {
        maxBuffered = Math.max(maxBuffered, sink.writableLength);
        yield chunk;
      }
    }
    await w.file({ path: 'f', size: 64 * 8192 }, data());
    await w.finish();
    expect(maxBuffered).toBeLessThanOrEqual(8192 + 512);
    const [e] = await parseAll(sink.data);
    expect(e!.size).toBe(64 * 8192);
  });

  it('finish({ end: false }) leaves the output open; an output error surfaces on the next call', async () => {
    const sink = new Sink();
    const w = new TarWriter(sink);
    await w.finish({ end: false });
    expect(sink.writableEnded).toBe(false);
    expect(sink.data.length).toBe(1024);

    const bad = new Writable({ write: (_c, _e, cb) => cb(new Error('disk full')) });
    const w2 = new TarWriter(bad);
    await w2.file({ path: 'a', size: 0 }).catch(() => undefined);
    await new Promise((r) => setImmediate(r));
    await expect(w2.file({ path: 'b', size: 0 })).rejects.toThrow(/disk full|closed/);
  });
});

/** The records of every PAX 'x' header in an archive (parsing the raw blocks). */
async function rawPaxHeaders(tar: Buffer, stopAtFirst = false): Promise<Map<string, Buffer>[]> {
  const out: Map<string, Buffer>[] = [];
  let off = 0;
  while (off + 512 <= tar.length && tar[off] !== 0) {
    const type = String.fromCharCode(tar[off + 156]!);
    const size = tar[off + 124]! & 0x80 ? Number(tar.readBigUInt64BE(off + 128)) : parseInt(tar.toString('latin1', off + 124, off + 136), 8) || 0;
    if (type === 'x') {
      out.push(parsePaxRecords(tar.subarray(off + 512, off + 512 + size)));
      if (stopAtFirst) break;
    }
    off += 512 + (type === 'x' || type === '0' ? Math.ceil(size / 512) * 512 : 0);
  }
  return out;
}
