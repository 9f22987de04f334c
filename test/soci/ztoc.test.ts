// decodeZtoc against zTOCs soci itself wrote (test/fixtures/soci: every field of expected.json),
// against copies of them with single fields broken, and against small hand-made zTOCs (the writer
// below) for the rules the real vectors do not reach.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { SociFormatError } from '../../src/soci/errors.js';
import { decodeZtoc, parseModTime, type Ztoc, type ZtocEntry } from '../../src/soci/ztoc.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'soci');
const read = (name: string): Buffer => readFileSync(join(FIXTURES, name));
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** soci's strings are Go strings (UTF-8 here); ours are byte strings. */
const byteString = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');

interface ExpectedEntry {
  name: string;
  type: string;
  uncompressed_offset: number;
  uncompressed_size: number;
  tar_header_offset: number;
  linkname: string;
  mode: number;
  mode_octal: string;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mod_time: string;
  mod_time_unix: number;
  devmajor: number;
  devminor: number;
  pax_headers: Record<string, string>;
  xattrs: Record<string, string>;
  content_sha256?: string;
}

interface Expected {
  files: Record<'layer' | 'ztoc' | 'uncompressed_tar', { size: number; sha256: string }>;
  ztoc: {
    version: string;
    build_tool_identifier: string;
    compressed_archive_size: number;
    uncompressed_archive_size: number;
    compression_algorithm: string;
    compression_algorithm_field_present: boolean;
    max_span_id: number;
    span_digests: string[];
  };
  zinfo: { blob_size: number; blob_sha256: string };
  toc: ExpectedEntry[];
}

const VECTORS = [
  { name: 'single-member', layer: 'layer.tar.gz', ztoc: 'layer.ztoc', expected: 'expected.json' },
  { name: 'two-member', layer: 'multi.tar.gz', ztoc: 'multi.ztoc', expected: 'multi-expected.json' },
];

/** Expects decodeZtoc to throw a SociFormatError (whose message matches, when one is given). */
function refused(buf: Buffer, message?: RegExp): void {
  let error: unknown;
  try {
    decodeZtoc(buf);
  } catch (e) {
    error = e;
  }
  expect(error, 'decodeZtoc should have thrown').toBeInstanceOf(SociFormatError);
  if (message) expect((error as Error).message).toMatch(message);
}

describe.each(VECTORS)('the $name vector soci wrote', (v) => {
  const expected = JSON.parse(read(v.expected).toString('utf8')) as Expected;
  const layer = read(v.layer);
  const buf = read(v.ztoc);
  const ztoc = decodeZtoc(buf);

  it('is the file expected.json describes', () => {
    expect({ size: buf.length, sha256: sha256(buf) }).toEqual({ size: expected.files.ztoc.size, sha256: expected.files.ztoc.sha256 });
    expect({ size: layer.length, sha256: sha256(layer) }).toEqual({ size: expected.files.layer.size, sha256: expected.files.layer.sha256 });
  });

  it('gives the header fields soci gives', () => {
    const e = expected.ztoc;
    expect(ztoc.version).toBe(e.version);
    expect(ztoc.buildToolIdentifier).toBe(e.build_tool_identifier);
    expect(ztoc.compressedArchiveSize).toBe(e.compressed_archive_size);
    expect(ztoc.uncompressedArchiveSize).toBe(e.uncompressed_archive_size);
    expect(ztoc.algorithm).toBe(e.compression_algorithm);
    // gzip is the schema default, which soci's builder leaves out
    expect(fieldAt(buf, infoTable(buf), 0) >= 0).toBe(e.compression_algorithm_field_present);
    expect(ztoc.maxSpanId).toBe(e.max_span_id);
    expect(ztoc.spanDigests.map((d) => `sha256:${d.toString('hex')}`)).toEqual(e.span_digests);
    expect(ztoc.spanDigests.every((d) => d.length === 32)).toBe(true);
    expect(ztoc.checkpoints.length).toBe(expected.zinfo.blob_size);
    expect(sha256(ztoc.checkpoints)).toBe(expected.zinfo.blob_sha256);
    // a view of the zTOC, not a copy
    expect(ztoc.checkpoints.buffer).toBe(buf.buffer);
  });

  it('gives every entry soci gives, in its order, field by field', () => {
    expect(ztoc.entries.length).toBe(expected.toc.length);
    ztoc.entries.forEach((got, i) => {
      const e = expected.toc[i]!;
      const label = `entry ${i} ${e.name}`;
      expect(got.name, label).toBe(byteString(e.name));
      expect(got.type, label).toBe(e.type);
      expect(got.offset, label).toBe(e.uncompressed_offset);
      expect(got.size, label).toBe(e.uncompressed_size);
      expect(got.linkname, label).toBe(byteString(e.linkname));
      expect(got.mode, label).toBe(e.mode);
      expect(got.mode.toString(8), label).toBe(e.mode_octal);
      expect([got.uid, got.gid], label).toEqual([e.uid, e.gid]);
      expect([got.uname, got.gname], label).toEqual([byteString(e.uname), byteString(e.gname)]);
      expect([got.mtime, got.mtimeNsec], label).toEqual([e.mod_time_unix, 0]);
      expect(parseModTime(e.mod_time), label).toEqual([e.mod_time_unix, 0]);
      expect([got.devmajor, got.devminor], label).toEqual([e.devmajor, e.devminor]);
      const pax = Object.fromEntries([...got.pax].map(([k, val]) => [k, val.toString('latin1')]));
      expect(pax, label).toEqual(Object.fromEntries(Object.entries(e.pax_headers).map(([k, val]) => [byteString(k), byteString(val)])));
      expect(xattrsOf(got), label).toEqual(e.xattrs);
      // soci works tar_header_offset out from the sorted order: the same order gives the same value
      const prev = ztoc.entries[i - 1];
      expect(prev ? Math.ceil((prev.offset + prev.size) / 512) * 512 : 0, label).toBe(e.tar_header_offset);
    });
  });

  it('places each regular file where its content is in the layer', () => {
    const tar = gunzipSync(layer);
    expect(sha256(tar)).toBe(expected.files.uncompressed_tar.sha256);
    expect(tar.length).toBe(ztoc.uncompressedArchiveSize);
    const regular = ztoc.entries.filter((e) => e.type === 'reg');
    expect(regular.length).toBe(expected.toc.filter((e) => e.content_sha256 !== undefined).length);
    for (const e of regular) {
      const want = expected.toc.find((x) => byteString(x.name) === e.name)!.content_sha256;
      expect(sha256(tar.subarray(e.offset, e.offset + e.size)), e.name).toBe(want);
    }
  });

  it('refuses the zTOC cut short anywhere (every 97th byte), always with a SociFormatError', () => {
    for (let cut = 0; cut < buf.length; cut += 97) refused(buf.subarray(0, cut));
  });
});

// ---- fields of the real vector, located by walking the flatbuffer (the test's own walk) ----

const fieldAt = (b: Buffer, table: number, id: number): number => {
  const vtable = table - b.readInt32LE(table);
  if (4 + 2 * id + 2 > b.readUInt16LE(vtable)) return -1;
  const offset = b.readUInt16LE(vtable + 4 + 2 * id);
  return offset === 0 ? -1 : table + offset;
};
const follow = (b: Buffer, pos: number): number => pos + b.readUInt32LE(pos);
const root = (b: Buffer): number => b.readUInt32LE(0);
const tocTable = (b: Buffer): number => follow(b, fieldAt(b, root(b), 4));
const infoTable = (b: Buffer): number => follow(b, fieldAt(b, root(b), 5));
const metadataVector = (b: Buffer): number => follow(b, fieldAt(b, tocTable(b), 0));

/** The FileMetadata table of the entry named `name`. */
function entryTable(b: Buffer, name: string): number {
  const vector = metadataVector(b);
  for (let i = 0; i < b.readUInt32LE(vector); i++) {
    const table = follow(b, vector + 4 + 4 * i);
    const s = follow(b, fieldAt(b, table, 0));
    if (b.toString('latin1', s + 4, s + 4 + b.readUInt32LE(s)) === name) return table;
  }
  throw new Error(`no entry ${name}`);
}

/** The bytes of a string field. */
function stringAt(b: Buffer, table: number, id: number): [number, number] {
  const s = follow(b, fieldAt(b, table, id));
  return [s + 4, s + 4 + b.readUInt32LE(s)];
}

function xattrsOf(e: ZtocEntry): Record<string, string> {
  const prefix = 'SCHILY.xattr.';
  return Object.fromEntries([...e.pax].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v.toString('utf8')]));
}

describe('a real zTOC with one thing broken', () => {
  const original = read('layer.ztoc');
  const patched = (patch: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(original);
    patch(b);
    return b;
  };
  const FIELD = { type: 1, offset: 2, size: 3, mode: 5, modTime: 10 };

  it('decodes unchanged (the walk below finds the right fields)', () => {
    const b = patched(() => {});
    expect(b.toString('latin1', ...stringAt(b, entryTable(b, 'vector/fifo'), FIELD.type))).toBe('fifo');
    expect(b.readBigInt64LE(fieldAt(b, entryTable(b, 'vector/fifo'), FIELD.offset))).toBe(521216n);
  });

  it('refuses a root table whose vtable lies outside the buffer', () => {
    refused(patched((b) => b.writeInt32LE(-0x7fff0000, root(b))), /zTOC \(byte \d+\): the 4-byte vtable header at \d+ does not fit/);
    refused(patched((b) => b.writeInt32LE(0x7fffffff, root(b))), /does not fit/);
  });

  it('refuses a root offset past the end', () => {
    refused(patched((b) => b.writeUInt32LE(b.length, 0)), /^zTOC \(byte \d+\): the 4-byte table header/);
  });

  it('refuses a vtable that says the table is larger than the buffer, or a field outside its table', () => {
    const vtableOf = (b: Buffer, table: number): number => table - b.readInt32LE(table);
    // the entries lie in the last few KiB (soci's builder writes back to front, the entries early)
    refused(patched((b) => b.writeUInt16LE(0xfffc, vtableOf(b, entryTable(b, 'vector/')) + 2)), /metadata\[0\] \(byte \d+\): the 65532-byte table does not fit/);
    refused(patched((b) => b.writeUInt16LE(3, vtableOf(b, root(b)) + 2)), /table size 3 is less than 4/);
    refused(patched((b) => b.writeUInt16LE(5, vtableOf(b, root(b)))), /vtable size 5/);
    refused(patched((b) => b.writeUInt16LE(2, vtableOf(b, root(b)) + 4 + 2 * 2)), /zTOC\.compressed_archive_size .*field at table offset 2/);
  });

  it('refuses a string whose length runs past the buffer', () => {
    const versionString = (b: Buffer): number => follow(b, fieldAt(b, root(b), 0));
    refused(patched((b) => b.writeUInt32LE(0x7fffffff, versionString(b))), /^zTOC\.version \(byte \d+\): string of 2147483647 bytes is longer than the limit/);
    refused(patched((b) => b.writeUInt32LE(60_000, versionString(b))), /^zTOC\.version \(byte \d+\): a string of 60000 bytes does not fit in the 200632-byte buffer/);
  });

  it('refuses a vector whose count is huge', () => {
    refused(patched((b) => b.writeUInt32LE(0xffffffff, metadataVector(b))), /zTOC\.toc\.metadata \(byte \d+\): vector of 4294967295 elements/);
    const checkpoints = (b: Buffer): number => follow(b, fieldAt(b, infoTable(b), 3));
    refused(patched((b) => b.writeUInt32LE(b.length, checkpoints(b))), /compression_info\.checkpoints .*vector of 200632 elements of 1 bytes/);
  });

  it('refuses an unknown entry type', () => {
    refused(patched((b) => b.write('rex', stringAt(b, entryTable(b, 'vector/last.txt'), FIELD.type)[0], 'latin1')), /metadata\[16\] "vector\/last.txt": unknown type "rex"/);
  });

  it('refuses an entry whose data lies beyond the archive, or has a negative offset', () => {
    refused(patched((b) => b.writeBigInt64LE(708608n - 24n, fieldAt(b, entryTable(b, 'vector/last.txt'), FIELD.offset))), /data \[708584, 708609\) runs past the 708608-byte tar/);
    refused(patched((b) => b.writeBigInt64LE(-512n, fieldAt(b, entryTable(b, 'vector/fifo'), FIELD.offset))), /negative uncompressed_offset -512/);
  });

  it('refuses data on a non-regular entry', () => {
    // soci's builder leaves zero scalars out, so the regular file becomes the directory
    refused(patched((b) => b.write('dir', stringAt(b, entryTable(b, 'vector/last.txt'), FIELD.type)[0], 'latin1')), /"vector\/last.txt": a dir entry has data size 25/);
  });

  it('refuses a 64-bit value a number cannot hold', () => {
    refused(patched((b) => b.writeBigInt64LE(2n ** 53n, fieldAt(b, entryTable(b, 'vector/fifo'), FIELD.mode))), /metadata\[11\]\.mode \(byte \d+\): 64-bit value 9007199254740992/);
    const size = patched((b) => b.writeBigInt64LE(2n ** 53n - 1n, fieldAt(b, root(b), 3)));
    expect(decodeZtoc(size).uncompressedArchiveSize).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('refuses a span digest count other than max_span_id + 1', () => {
    refused(patched((b) => b.writeInt32LE(4, fieldAt(b, infoTable(b), 1))), /6 span digests for max_span_id 4/);
    refused(patched((b) => b.writeInt32LE(-1, fieldAt(b, infoTable(b), 1))), /for max_span_id -1/);
  });

  it('refuses a span digest that is not sha256 hex', () => {
    const digest = (b: Buffer): number => follow(b, follow(b, fieldAt(b, infoTable(b), 2)) + 4);
    refused(patched((b) => b.write('A', digest(b) + 4 + 7, 'latin1')), /span_digests\[0\]: "sha256:A.*" is not a sha256 digest/);
    refused(patched((b) => b.write('sha512', digest(b) + 4, 'latin1')), /is not a sha256 digest/);
  });

  it('refuses an entry that starts before the previous one ends (soci\'s ErrInvalidTOCEntry)', () => {
    // vector/random.bin's data [309248, 514048) covers the header of vector/tiny/a.txt
    refused(patched((b) => b.writeBigInt64LE(400_000n, fieldAt(b, entryTable(b, 'vector/tiny/a.txt'), FIELD.offset))), /"vector\/tiny\/a.txt": data at 400000 starts before 514048/);
    expect(decodeZtoc(patched((b) => b.writeBigInt64LE(514048n, fieldAt(b, entryTable(b, 'vector/tiny/a.txt'), FIELD.offset)))).entries[4]!.offset).toBe(514048);
    refused(patched((b) => b.writeBigInt64LE(514047n, fieldAt(b, entryTable(b, 'vector/tiny/a.txt'), FIELD.offset))), /data at 514047 starts before 514048/);
  });

  it('applies that rule as soci does: to empty entries too, and without room for a header', () => {
    const withOffsets = (offsets: Record<string, bigint>): Ztoc =>
      decodeZtoc(patched((b) => Object.entries(offsets).forEach(([name, at]) => b.writeBigInt64LE(at, fieldAt(b, entryTable(b, name), FIELD.offset)))));
    // vector/with-xattr.txt holds [520192, 520224): the next header may start at 520704
    expect(withOffsets({ 'vector/fifo': 520704n }).entries.map((e) => e.offset)).toContain(520704);
    expect(() => withOffsets({ 'vector/fifo': 520703n })).toThrow(/"vector\/fifo": data at 520703 starts before 520704/);
    // two empty entries at one block-aligned offset pass
    expect(withOffsets({ 'vector/null': 521216n }).entries.filter((e) => e.offset === 521216).map((e) => e.name)).toEqual(['vector/fifo', 'vector/null']);
    // an empty entry's offset, rounded up, is where the next may start
    expect(() => withOffsets({ 'vector/null': 520705n, 'vector/fifo': 520900n })).toThrow(/"vector\/fifo": data at 520900 starts before 521216/);
    expect(withOffsets({ 'vector/null': 520705n, 'vector/fifo': 521216n }).entries.map((e) => e.name).slice(10, 13)).toEqual([
      'vector/with-xattr.txt', 'vector/null', 'vector/fifo',
    ]);
  });

  it('refuses a mod_time that is not an RFC 3339 time', () => {
    const at = (b: Buffer): number => stringAt(b, entryTable(b, 'vector/fifo'), FIELD.modTime)[0];
    refused(patched((b) => b.write('2023-11-14T22:13:60Z', at(b), 'latin1')), /"vector\/fifo": mod_time "2023-11-14T22:13:60Z" is out of range/);
    refused(patched((b) => b.write('2023-11-14 22:13:31Z', at(b), 'latin1')), /is not an RFC 3339 time/);
  });

  it('throws only SociFormatError, whatever single byte of the structure changes', () => {
    // the checkpoints blob is opaque here (zinfo.test.ts breaks it); everything else is structure
    const blob = follow(original, fieldAt(original, infoTable(original), 3));
    const outside = (p: number): boolean => p < blob || p >= blob + 4 + original.readUInt32LE(blob);
    let seed = 0x50c1;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let failures = 0;
    for (let n = 0; n < 3000; n++) {
      let p = random(original.length);
      while (!outside(p)) p = random(original.length);
      const b = patched((x) => (x[p] = random(256)));
      try {
        decodeZtoc(b);
      } catch (e) {
        if (!(e instanceof SociFormatError)) throw e;
        failures++;
      }
    }
    expect(failures).toBeGreaterThan(0);
  });
});

// ---- hand-made zTOCs ----

type Scalar = { int: number | bigint; width: 1 | 4 | 8 };
type Ref = Tbl | Str | Vec | Bytes;
type Field = Scalar | Ref | undefined;
class Tbl {
  constructor(readonly fields: Field[]) {}
}
class Str {
  constructor(readonly bytes: Buffer) {}
}
class Vec {
  constructor(readonly items: Ref[]) {}
}
class Bytes {
  constructor(readonly bytes: Buffer) {}
}
const i8 = (int: number): Scalar => ({ int, width: 1 });
const i32 = (int: number): Scalar => ({ int, width: 4 });
const i64 = (int: number | bigint): Scalar => ({ int, width: 8 });
const str = (s: string | Buffer): Str => new Str(typeof s === 'string' ? Buffer.from(s, 'latin1') : s);

/**
 * A FlatBuffers writer for the tests: front to back (each table's vtable, then the table, then
 * what it points to), no alignment, and a table, string or vector used twice is written once.
 */
function flatbuffer(rootTable: Tbl): Buffer {
  let buf = Buffer.alloc(1024);
  let end = 0;
  const written = new Map<Ref, number>();
  const reserve = (n: number): number => {
    while (end + n > buf.length) buf = Buffer.concat([buf, Buffer.alloc(buf.length)]);
    end += n;
    return end - n;
  };
  const refTo = (at: number, target: number): void => void buf.writeUInt32LE(target - at, at);
  const write = (r: Ref): number => {
    const done = written.get(r);
    if (done !== undefined) return done;
    let pos: number;
    if (r instanceof Str || r instanceof Bytes) {
      pos = reserve(4 + r.bytes.length + (r instanceof Str ? 1 : 0));
      buf.writeUInt32LE(r.bytes.length, pos);
      r.bytes.copy(buf, pos + 4);
      if (r instanceof Str) buf[pos + 4 + r.bytes.length] = 0;
    } else if (r instanceof Vec) {
      pos = reserve(4 + 4 * r.items.length);
      buf.writeUInt32LE(r.items.length, pos);
      written.set(r, pos);
      r.items.forEach((item, i) => refTo(pos + 4 + 4 * i, write(item)));
    } else {
      pos = writeTable(r);
    }
    written.set(r, pos);
    return pos;
  };
  const writeTable = (t: Tbl): number => {
    const vtable = reserve(4 + 2 * t.fields.length);
    const pos = reserve(4);
    buf.writeInt32LE(pos - vtable, pos);
    written.set(t, pos);
    const refs: [number, Ref][] = [];
    t.fields.forEach((f, id) => {
      if (f === undefined) return void buf.writeUInt16LE(0, vtable + 4 + 2 * id);
      const width = f instanceof Tbl || f instanceof Str || f instanceof Vec || f instanceof Bytes ? 4 : f.width;
      const at = reserve(width);
      buf.writeUInt16LE(at - pos, vtable + 4 + 2 * id);
      if (width === 4 && !('int' in f)) refs.push([at, f as Ref]);
      else writeInt(buf, at, f as Scalar);
    });
    buf.writeUInt16LE(4 + 2 * t.fields.length, vtable);
    buf.writeUInt16LE(end - pos, vtable + 2);
    for (const [at, r] of refs) refTo(at, write(r));
    return pos;
  };
  const rootAt = reserve(4);
  refTo(rootAt, writeTable(rootTable));
  buf.writeUInt32LE(buf.readUInt32LE(rootAt), 0);
  return Buffer.from(buf.subarray(0, end));
}

function writeInt(buf: Buffer, at: number, s: Scalar): void {
  if (s.width === 8) buf.writeBigInt64LE(BigInt(s.int), at);
  else if (s.width === 4) buf.writeUInt32LE(Number(s.int) >>> 0, at);
  else buf[at] = Number(s.int) & 0xff;
}

interface EntrySpec {
  name?: string;
  type?: string;
  offset?: number;
  size?: number;
  linkname?: string;
  mode?: number | bigint;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  modTime?: string;
  devmajor?: number;
  devminor?: number;
  pax?: [string | Buffer | undefined, string | Buffer | undefined][];
}

const opt = <T, R>(v: T | undefined, f: (x: T) => R): R | undefined => (v === undefined ? undefined : f(v));

function entry(e: EntrySpec): Tbl {
  return new Tbl([
    opt(e.name, str), opt(e.type, str), opt(e.offset, i64), opt(e.size, i64), opt(e.linkname, str), opt(e.mode, i64),
    opt(e.uid, i32), opt(e.gid, i32), opt(e.uname, str), opt(e.gname, str), opt(e.modTime, str), opt(e.devmajor, i64), opt(e.devminor, i64),
    opt(e.pax, (records) => new Vec(records.map(([k, v]) => new Tbl([opt(k, str), opt(v, str)])))),
  ]);
}

const DIGEST = `sha256:${'ab'.repeat(32)}`;

interface ZtocSpec {
  entries?: (EntrySpec | Tbl)[];
  algorithm?: number;
  maxSpanId?: number;
  digests?: string[];
  checkpoints?: Buffer;
  compressed?: number;
  uncompressed?: number;
  noToc?: boolean;
  noInfo?: boolean;
}

function ztocBuffer(z: ZtocSpec = {}): Buffer {
  const toc = new Tbl([opt(z.entries, (es) => new Vec(es.map((e) => (e instanceof Tbl ? e : entry(e)))))]);
  const info = new Tbl([opt(z.algorithm, i8), i32(z.maxSpanId ?? 0), new Vec((z.digests ?? [DIGEST]).map((d) => str(d))), opt(z.checkpoints, (c) => new Bytes(c))]);
  return flatbuffer(new Tbl([str('0.9'), str('test'), i64(z.compressed ?? 1000), i64(z.uncompressed ?? 1 << 20), z.noToc ? undefined : toc, z.noInfo ? undefined : info]));
}

const file = (name: string, offset: number, size = 0, more: EntrySpec = {}): EntrySpec => ({ name, type: size > 0 ? 'reg' : 'dir', offset, size, ...more });

describe('hand-made zTOCs', () => {
  it('reads absent fields as the schema defaults: gzip, zeros, empty strings and no entries', () => {
    const z = decodeZtoc(ztocBuffer());
    expect(z).toMatchObject({ version: '0.9', buildToolIdentifier: 'test', algorithm: 'gzip', maxSpanId: 0, entries: [] });
    expect(z.checkpoints.length).toBe(0);
    const [e] = decodeZtoc(ztocBuffer({ entries: [{ type: 'fifo' }] })).entries;
    expect(e).toEqual({
      name: '', type: 'fifo', offset: 0, size: 0, linkname: '', mode: 0, uid: 0, gid: 0, uname: '', gname: '',
      mtime: -62135596800, mtimeNsec: 0, devmajor: 0, devminor: 0, pax: new Map(),
    });
  });

  it('reads the written compression algorithm and refuses an unknown one', () => {
    expect(decodeZtoc(ztocBuffer({ algorithm: 1 })).algorithm).toBe('gzip');
    expect(decodeZtoc(ztocBuffer({ algorithm: 2 })).algorithm).toBe('uncompressed');
    expect(() => decodeZtoc(ztocBuffer({ algorithm: 3 }))).toThrow(/compression_algorithm: unknown algorithm 3/);
    expect(() => decodeZtoc(ztocBuffer({ algorithm: -1 }))).toThrow(SociFormatError);
  });

  it('refuses a zTOC without toc or compression_info, as soci does', () => {
    expect(() => decodeZtoc(ztocBuffer({ noToc: true }))).toThrow(/zTOC\.toc is missing/);
    expect(() => decodeZtoc(ztocBuffer({ noInfo: true }))).toThrow(/zTOC\.compression_info is missing/);
  });

  it('refuses buffers too short for a root table', () => {
    for (const b of [Buffer.alloc(0), Buffer.alloc(3), Buffer.alloc(4), Buffer.from([4, 0, 0, 0, 0, 0, 0, 0])]) {
      expect(() => decodeZtoc(b)).toThrow(SociFormatError);
    }
  });

  it('returns entries sorted by offset, keeping the order of equal offsets', () => {
    const z = decodeZtoc(ztocBuffer({ entries: [file('c', 4096, 10), file('a', 512), file('b1', 2048), file('b2', 2048), file('b0', 1536, 1)] }));
    expect(z.entries.map((e) => e.name)).toEqual(['a', 'b0', 'b1', 'b2', 'c']);
  });

  it('refuses data on anything but a regular file, and negative sizes', () => {
    for (const type of ['dir', 'symlink', 'hardlink', 'char', 'block', 'fifo']) {
      expect(() => decodeZtoc(ztocBuffer({ entries: [{ name: 'x', type, offset: 512, size: 1 }] }))).toThrow(`a ${type} entry has data size 1`);
    }
    expect(() => decodeZtoc(ztocBuffer({ entries: [{ name: 'x', type: 'reg', offset: 512, size: -1 }] }))).toThrow(/negative .*uncompressed_size -1/);
    expect(() => decodeZtoc(ztocBuffer({ entries: [{ name: 'x', type: 'Reg', offset: 512 }] }))).toThrow(/unknown type "Reg"/);
  });

  it('refuses negative archive sizes', () => {
    expect(() => decodeZtoc(ztocBuffer({ compressed: -1 }))).toThrow(/compressed_archive_size -1 is negative/);
    expect(() => decodeZtoc(ztocBuffer({ uncompressed: -1 }))).toThrow(/uncompressed_archive_size -1 is negative/);
  });

  it('keeps names and PAX values as raw bytes, and the last of a repeated PAX key (as Go\'s map does)', () => {
    const name = Buffer.from([0x66, 0xff, 0xfe, 0x2f, 0xc3, 0xa9]);
    const [e] = decodeZtoc(ztocBuffer({ entries: [{ ...file('', 512), name: name.toString('latin1'), pax: [['SCHILY.xattr.user.a', Buffer.from([0, 0xff])], ['k', 'v1'], ['k', 'v2'], [undefined, undefined]] }] })).entries;
    expect(Buffer.from(e!.name, 'latin1')).toEqual(name);
    expect([...e!.pax].map(([k, v]) => [k, [...v]])).toEqual([['SCHILY.xattr.user.a', [0, 0xff]], ['k', [...Buffer.from('v2')]], ['', []]]);
  });

  it('refuses a NUL in a name or link target', () => {
    expect(() => decodeZtoc(ztocBuffer({ entries: [file('a\0b', 512)] }))).toThrow(/NUL byte/);
    expect(() => decodeZtoc(ztocBuffer({ entries: [{ ...file('a', 512), type: 'symlink', linkname: 'x\0' }] }))).toThrow(/NUL byte/);
  });

  it('holds to the limits', () => {
    const entries = [file('a', 512), file('b', 1024)];
    expect(() => decodeZtoc(ztocBuffer({ entries }), { maxEntries: 1 })).toThrow(/2 entries, more than the limit of 1/);
    expect(decodeZtoc(ztocBuffer({ entries }), { maxEntries: 2 }).entries.length).toBe(2);
    expect(() => decodeZtoc(ztocBuffer({ entries: [file('x'.repeat(101), 512)] }), { maxNameBytes: 100 })).toThrow(/metadata\[0\]\.name .*string of 101 bytes is longer than the limit of 100/);
    expect(() => decodeZtoc(ztocBuffer({ entries: [file('a', 512, 0, { linkname: 'x'.repeat(65537), type: 'symlink' })] }))).toThrow(/linkname .*65537 bytes/);
    // an explicit undefined keeps the default
    expect(() => decodeZtoc(ztocBuffer({ entries: [file('x'.repeat(65537), 512)] }), { maxNameBytes: undefined })).toThrow(/longer than the limit of 65536/);
    const pax: EntrySpec['pax'] = [['k1', 'x'.repeat(40)], ['k2', 'y'.repeat(54)]];
    expect(decodeZtoc(ztocBuffer({ entries: [file('a', 512, 0, { pax })] }), { maxPaxBytes: 98 }).entries[0]!.pax.size).toBe(2);
    expect(() => decodeZtoc(ztocBuffer({ entries: [file('a', 512, 0, { pax })] }), { maxPaxBytes: 97 })).toThrow(/xattrs\[1\]\.value .*string of 54 bytes is longer than the limit of 53/);
  });

  it('refuses tables or strings shared over and over (a zTOC that decodes to far more than its size)', () => {
    const big = entry(file('n'.repeat(60_000), 512));
    expect(decodeZtoc(ztocBuffer({ entries: [big, big, big] })).entries.length).toBe(3);
    expect(() => decodeZtoc(ztocBuffer({ entries: Array(20).fill(big) }))).toThrow(/would visit more than \d+ bytes/);
  });

  it('reads a non-UTC zone, fractions and the zero time in mod_time', () => {
    const times = ['2023-11-14T23:13:20.5+01:00', '1969-12-31T19:00:00.000000001-05:00', '0001-01-01T00:00:00Z', ''];
    const z = decodeZtoc(ztocBuffer({ entries: times.map((modTime, i) => file(`f${i}`, 512 * (i + 1), 0, { modTime })) }));
    expect(z.entries.map((e) => [e.mtime, e.mtimeNsec])).toEqual([[1700000000, 500_000_000], [0, 1], [-62135596800, 0], [-62135596800, 0]]);
  });
});

describe('parseModTime', () => {
  it('gives what Date gives, at any zone offset', () => {
    for (const t of ['2023-11-14T22:13:20Z', '2000-02-29T23:59:59+14:00', '1970-01-01T00:00:00-00:00', '1900-03-01T12:00:00-12:30', '9999-12-31T23:59:59Z', '2024-12-31T00:00:00+05:45']) {
      expect(parseModTime(t), t).toEqual([Date.parse(t) / 1000, 0]);
    }
    expect(parseModTime('0001-01-01T00:00:00Z')).toEqual([-62135596800, 0]);
    expect(parseModTime('0000-03-01T00:00:00Z')).toEqual([-62162035200, 0]);
    expect(parseModTime('2023-11-14T22:13:20.123456789Z')).toEqual([1700000000, 123456789]);
    expect(parseModTime('2023-11-14T22:13:20.12Z')).toEqual([1700000000, 120_000_000]);
  });

  it('refuses what Go\'s time.UnmarshalText refuses', () => {
    const bad = [
      '2023-11-14T22:13:20', '2023-11-14T22:13:20z', '2023-11-14t22:13:20Z', '2023-11-14 22:13:20Z', '2023-11-14T22:13:20.Z', '2023-11-14T22:13:20.1234567890Z',
      '2023-11-14T22:13:20+0100', '2023-11-14T22:13:20+01', '23-11-14T22:13:20Z', '2023-11-14T22:13:20ZZ', ' 2023-11-14T22:13:20Z',
      '2023-13-14T22:13:20Z', '2023-00-14T22:13:20Z', '2023-02-29T22:13:20Z', '2023-04-31T22:13:20Z', '2023-11-00T22:13:20Z',
      '2023-11-14T24:00:00Z', '2023-11-14T22:60:20Z', '2016-12-31T23:59:60Z', '2023-11-14T22:13:20+24:00', '2023-11-14T22:13:20+01:60',
    ];
    for (const t of bad) expect(() => parseModTime(t), t).toThrow(SociFormatError);
  });
});
