// The FlatBuffers reader on a buffer laid out by hand below (a vtable after its table, a vtable
// shared by several tables, a string shared by two vectors: layouts a builder may make but soci's
// does not), then on copies of it with one thing broken.
import { describe, expect, it } from 'vitest';
import { SociFormatError } from '../../src/soci/errors.js';
import { type FbTable, fbField, FlatBuffer } from '../../src/soci/flatbuffers.js';

/*
 * table Sample {                        table Child { name: string; }
 *   i8: byte = -5;  u8: ubyte = 250;  i32: int = -123456;  u32: uint = 4000000000;
 *   i64: long = -(2^53 - 1);  text: string = "héllo";  child: Child = { "kid" };
 *   children: [Child] = [{ "zero" }, { "one" }];  names: [string] = ["zero", "one"];
 *   bytes: [ubyte] = [1, 2, 3];  absent: int (not written);
 * }
 */
const F = {
  i8: fbField(0, 'i8'),
  u8: fbField(1, 'u8'),
  i32: fbField(2, 'i32'),
  u32: fbField(3, 'u32'),
  i64: fbField(4, 'i64'),
  text: fbField(5, 'text'),
  child: fbField(6, 'child'),
  children: fbField(7, 'children'),
  names: fbField(8, 'names'),
  bytes: fbField(9, 'bytes'),
  absent: fbField(10, 'absent'),
  // beyond the vtable: a field added to the schema after the buffer was written
  later: fbField(11, 'later'),
};
const NAME = fbField(0, 'name');

/**
 * Byte positions of the pieces, laid out one after another from byte 4 (after the root offset);
 * offsets only point forward, so both vectors come before the strings they share.
 */
const SIZES = { root: 44, rootVtable: 26, childVtable: 6, text: 11, child: 8, kid: 8, children: 12, names: 12, child0: 8, child1: 8, zero: 9, one: 8, bytes: 7 };
const AT = (() => {
  const at = {} as Record<keyof typeof SIZES, number>;
  let pos = 4;
  for (const [name, size] of Object.entries(SIZES)) {
    at[name as keyof typeof SIZES] = pos;
    pos += size;
  }
  return at;
})();
const LENGTH = AT.bytes + SIZES.bytes;

function sample(): Buffer {
  const b = Buffer.alloc(LENGTH);
  const ref = (from: number, to: number): void => void b.writeUInt32LE(to - from, from);
  const str = (at: number, s: string): void => {
    const bytes = Buffer.from(s, 'utf8');
    b.writeUInt32LE(bytes.length, at);
    bytes.copy(b, at + 4);
  };
  const table = (at: number, vtable: number): void => void b.writeInt32LE(at - vtable, at);
  ref(0, AT.root);
  // root: its vtable lies after it (a negative back-offset)
  table(AT.root, AT.rootVtable);
  b.writeInt8(-5, AT.root + 4);
  b.writeUInt8(250, AT.root + 5);
  b.writeInt32LE(-123456, AT.root + 8);
  b.writeUInt32LE(4_000_000_000, AT.root + 12);
  b.writeBigInt64LE(-(2n ** 53n - 1n), AT.root + 16);
  ref(AT.root + 24, AT.text);
  ref(AT.root + 28, AT.child);
  ref(AT.root + 32, AT.children);
  ref(AT.root + 36, AT.names);
  ref(AT.root + 40, AT.bytes);
  [26, 44, 4, 5, 8, 12, 16, 24, 28, 32, 36, 40, 0].forEach((v, i) => b.writeUInt16LE(v, AT.rootVtable + 2 * i));
  // one vtable for the three Child tables
  [6, 8, 4].forEach((v, i) => b.writeUInt16LE(v, AT.childVtable + 2 * i));
  str(AT.text, 'héllo');
  table(AT.child, AT.childVtable);
  ref(AT.child + 4, AT.kid);
  str(AT.kid, 'kid');
  b.writeUInt32LE(2, AT.children);
  ref(AT.children + 4, AT.child0);
  ref(AT.children + 8, AT.child1);
  table(AT.child0, AT.childVtable);
  ref(AT.child0 + 4, AT.zero);
  table(AT.child1, AT.childVtable);
  ref(AT.child1 + 4, AT.one);
  str(AT.zero, 'zero');
  str(AT.one, 'one');
  // the names vector shares the children's strings
  b.writeUInt32LE(2, AT.names);
  ref(AT.names + 4, AT.zero);
  ref(AT.names + 8, AT.one);
  b.writeUInt32LE(3, AT.bytes);
  Buffer.from([1, 2, 3]).copy(b, AT.bytes + 4);
  return b;
}

/** Everything the sample holds, read through the reader. */
function readAll(root: FbTable): unknown {
  const children = root.tables(F.children);
  const names = root.strings(F.names);
  return {
    scalars: [root.int8(F.i8), root.uint8(F.u8), root.int32(F.i32), root.uint32(F.u32), root.int64(F.i64)],
    absent: [root.has(F.absent), root.int32(F.absent, 7), root.has(F.later), root.int64(F.later, -1), root.text(F.later, 'utf8'), root.tables(F.later).length],
    text: root.text(F.text, 'utf8'),
    child: root.table(F.child)?.text(NAME, 'latin1'),
    children: Array.from({ length: children.length }, (_, i) => children.at(i).text(NAME, 'latin1')),
    names: Array.from({ length: names.length }, (_, i) => names.at(i).toString('latin1')),
    bytes: [...(root.ubytes(F.bytes) ?? [])],
  };
}

const WHOLE = {
  scalars: [-5, 250, -123456, 4_000_000_000, -Number.MAX_SAFE_INTEGER],
  absent: [false, 7, false, -1, undefined, 0],
  text: 'héllo',
  child: 'kid',
  children: ['zero', 'one'],
  names: ['zero', 'one'],
  bytes: [1, 2, 3],
};

/** Reading the sample with `patch` applied throws a SociFormatError whose message matches. */
function refused(patch: (b: Buffer) => void, message: RegExp): void {
  const b = sample();
  patch(b);
  expect(() => readAll(new FlatBuffer(b).root('sample'))).toThrow(SociFormatError);
  expect(() => readAll(new FlatBuffer(b).root('sample'))).toThrow(message);
}

describe('FlatBuffer', () => {
  it('reads every kind of field of the sample, and defaults for absent ones', () => {
    expect(readAll(new FlatBuffer(sample()).root('sample'))).toEqual(WHOLE);
  });

  it('gives strings and byte vectors as views of the buffer, or decoded as asked', () => {
    const b = sample();
    const root = new FlatBuffer(b).root('sample');
    const text = root.bytes(F.text)!;
    expect(text.buffer).toBe(b.buffer);
    expect(text.byteOffset).toBe(b.byteOffset + AT.text + 4);
    expect(root.text(F.text, 'latin1')).toBe(Buffer.from('héllo').toString('latin1'));
    expect(root.ubytes(F.bytes)!.buffer).toBe(b.buffer);
    expect(root.bytes(F.later)).toBeUndefined();
    expect(root.ubytes(F.later)).toBeUndefined();
    expect(root.table(F.later)).toBeUndefined();
    expect(root.strings(F.later).length).toBe(0);
  });

  it('reads from a buffer that is a view into a larger one', () => {
    const inner = sample();
    const outer = Buffer.concat([Buffer.from('garbage!'), inner, Buffer.from('more')]);
    expect(readAll(new FlatBuffer(outer.subarray(8, 8 + inner.length)).root('sample'))).toEqual(WHOLE);
  });

  it('refuses a string longer than the caller\'s limit before decoding it', () => {
    const root = new FlatBuffer(sample()).root('sample');
    expect(root.text(F.text, 'utf8', 6)).toBe('héllo');
    expect(() => root.text(F.text, 'utf8', 5)).toThrow(/^sample\.text \(byte 80\): string of 6 bytes is longer than the limit of 5$/);
    expect(() => root.strings(F.names, 3).at(0)).toThrow(/^sample\.names\[0\] \(byte \d+\): string of 4 bytes/);
    expect(root.strings(F.names, 3).at(1).toString()).toBe('one');
  });

  it('throws a RangeError for a vector index that is not there (a caller\'s bug)', () => {
    const root = new FlatBuffer(sample()).root('sample');
    for (const i of [-1, 2, 1.5]) expect(() => root.tables(F.children).at(i)).toThrow(RangeError);
    expect(() => root.tables(F.later).at(0)).toThrow(RangeError);
  });

  it('refuses 64-bit values beyond ±(2^53 - 1) rather than rounding them', () => {
    const at = (v: bigint): FbTable => {
      const b = sample();
      b.writeBigInt64LE(v, AT.root + 16);
      return new FlatBuffer(b).root('sample');
    };
    expect(at(2n ** 53n - 1n).int64(F.i64)).toBe(Number.MAX_SAFE_INTEGER);
    expect(at(0n).int64(F.i64)).toBe(0);
    expect(at(-1n).int64(F.i64)).toBe(-1);
    expect(at(-(2n ** 32n)).int64(F.i64)).toBe(-(2 ** 32));
    for (const v of [2n ** 53n, -(2n ** 53n), 2n ** 63n - 1n, -(2n ** 63n)]) {
      expect(() => at(v).int64(F.i64), `${v}`).toThrow(new RegExp(`^sample\\.i64 \\(byte 20\\): 64-bit value ${v} is beyond`));
    }
  });

  it('bounds the bytes all reads visit together, against shared strings and tables', () => {
    // reading the whole sample visits its tables and vectors, and its strings but their NULs (zero and
    // one twice): 44 + 10 + 8 + 7 + 12 + 12 + 8 + 8 + 8 + 7 + 8 + 7 + 7 = 146 bytes
    expect(readAll(new FlatBuffer(sample(), { maxVisitedBytes: 146 }).root('sample'))).toEqual(WHOLE);
    expect(() => readAll(new FlatBuffer(sample(), { maxVisitedBytes: 145 }).root('sample'))).toThrow(/^sample\.bytes \(byte \d+\): reading it would visit more than 145 bytes/);
    // 10,000 vector slots pointing at one 1000-byte string: [root offset][vtable 6, 8, 4][table:
    // back-offset, offset to the vector][vector][string]
    const count = 10_000;
    const vector = 18;
    const string = vector + 4 + 4 * count;
    const withRoot = Buffer.alloc(string + 4 + 1000);
    withRoot.writeUInt32LE(10, 0);
    [6, 8, 4].forEach((v, i) => withRoot.writeUInt16LE(v, 4 + 2 * i));
    withRoot.writeInt32LE(10 - 4, 10);
    withRoot.writeUInt32LE(vector - 14, 14);
    withRoot.writeUInt32LE(count, vector);
    for (let i = 0; i < count; i++) withRoot.writeUInt32LE(string - (vector + 4 + 4 * i), vector + 4 + 4 * i);
    withRoot.writeUInt32LE(1000, string);
    const strings = (limit?: number): number => {
      const v = new FlatBuffer(withRoot, { maxVisitedBytes: limit }).root('r').strings(fbField(0, 'list'));
      let total = 0;
      for (let i = 0; i < v.length; i++) total += v.at(i).length;
      return total;
    };
    expect(strings()).toBe(10_000_000);
    // 8 + 40,004 bytes of table and vector, then 1004 per string: 123 fit in 4 × 41,026
    expect(() => strings(4 * withRoot.length)).toThrow(/^r\.list\[123\] \(byte 40022\): reading it would visit more than 164104 bytes: tables or strings are shared/);
  });
});

describe('FlatBuffer on a broken buffer', () => {
  it('refuses a root offset that points outside', () => {
    refused((b) => b.writeUInt32LE(LENGTH - 3, 0), /^sample \(byte 168\): the 4-byte table header does not fit in the 171-byte buffer$/);
    refused((b) => b.writeUInt32LE(0xffffffff, 0), /^sample \(byte 4294967295\): the 4-byte table header/);
  });

  it('refuses a vtable that lies outside, is too small, odd-sized, or runs past the end', () => {
    refused((b) => b.writeInt32LE(AT.root + 1, AT.root), /^sample \(byte -1\): the 4-byte vtable header at -1 does not fit/);
    refused((b) => b.writeInt32LE(-LENGTH, AT.root), /^sample \(byte 175\): the 4-byte vtable header at 175/);
    refused((b) => b.writeInt32LE(-0x80000000, AT.root), /the 4-byte vtable header at 2147483652/);
    refused((b) => b.writeUInt16LE(2, AT.rootVtable), /^sample \(byte 48\): vtable size 2 is not an even number of at least 4$/);
    refused((b) => b.writeUInt16LE(27, AT.rootVtable), /vtable size 27/);
    refused((b) => b.writeUInt16LE(0xfffe, AT.childVtable), /^sample\.child \(byte 74\): the 65534-byte vtable does not fit/);
  });

  it('refuses a table size under 4 or past the end of the buffer', () => {
    refused((b) => b.writeUInt16LE(3, AT.rootVtable + 2), /^sample \(byte 48\): table size 3 is less than 4$/);
    refused((b) => b.writeUInt16LE(200, AT.childVtable + 2), /^sample\.child \(byte 91\): the 200-byte table/);
  });

  it('refuses a field that overlaps the back-offset or lies outside its table', () => {
    refused((b) => b.writeUInt16LE(2, AT.rootVtable + 4 + 2 * F.i32.id), /^sample\.i32 \(byte 4\): field at table offset 2 \(4 bytes\) lies outside the 44-byte table$/);
    refused((b) => b.writeUInt16LE(41, AT.rootVtable + 4 + 2 * F.i64.id), /^sample\.i64 \(byte 4\): field at table offset 41 \(8 bytes\)/);
    refused((b) => b.writeUInt16LE(44, AT.rootVtable + 4 + 2 * F.u8.id), /^sample\.u8 .*offset 44 \(1 bytes\)/);
  });

  it('refuses a reference that points past the end', () => {
    refused((b) => b.writeUInt32LE(0xffffff00, AT.root + 24), /^sample\.text \(byte \d+\): the 4-byte string length does not fit/);
    refused((b) => b.writeUInt32LE(LENGTH, AT.root + 28), /^sample\.child \(byte \d+\): the 4-byte table header/);
    refused((b) => b.writeUInt32LE(0x7fffffff, AT.children + 8), /^sample\.children\[1\] \(byte \d+\): the 4-byte table header/);
    refused((b) => b.writeUInt32LE(1000, AT.names + 4), /^sample\.names\[0\] \(byte 1123\): the 4-byte string length/);
  });

  it('refuses a string or vector length that runs past the end', () => {
    refused((b) => b.writeUInt32LE(0xffffffff, AT.text), /^sample\.text \(byte 84\): a string of 4294967295 bytes does not fit/);
    refused((b) => b.writeUInt32LE(LENGTH, AT.kid), /^sample\.child\.name \(byte 103\): a string of 171 bytes/);
    refused((b) => b.writeUInt32LE(0xffffffff, AT.children), /^sample\.children \(byte 107\): vector of 4294967295 elements of 4 bytes runs past the end of the 171-byte buffer$/);
    refused((b) => b.writeUInt32LE(16, AT.names), /^sample\.names \(byte 119\): vector of 16 elements/);
    refused((b) => b.writeUInt32LE(4, AT.bytes), /^sample\.bytes \(byte 164\): vector of 4 elements of 1 bytes/);
  });

  it('refuses the buffer cut at every length', () => {
    for (let cut = 0; cut < LENGTH; cut++) {
      expect(() => readAll(new FlatBuffer(sample().subarray(0, cut)).root('sample')), `cut at ${cut}`).toThrow(SociFormatError);
    }
  });

  it('throws nothing but SociFormatError, whatever one byte holds', () => {
    let refusedCount = 0;
    for (let p = 0; p < LENGTH; p++) {
      for (const value of [0, 1, 3, 4, 0x7f, 0x80, 0xfe, 0xff]) {
        const b = sample();
        b[p] = value;
        try {
          readAll(new FlatBuffer(b).root('sample'));
        } catch (e) {
          if (!(e instanceof SociFormatError)) throw new Error(`byte ${p} = ${value}: ${String(e)}`);
          refusedCount++;
        }
      }
    }
    expect(refusedCount).toBeGreaterThan(LENGTH);
  });
});
