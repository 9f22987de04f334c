import { describe, expect, it } from 'vitest';
import { TarFormatError } from '../../../src/convert/tar/errors.js';
import { FIELD, decodeHeader, encodeHeader, headerChecksums, isZeroBlock, parseNumeric, writeNumeric } from '../../../src/convert/tar/header.js';
import { fixChecksum, header } from './helpers.js';

const field = (s: string | number[]): Buffer => (typeof s === 'string' ? Buffer.from(s, 'latin1') : Buffer.from(s));
const num = (s: string | number[], allowNegative = false): number => {
  const b = field(s);
  return parseNumeric(b, 0, b.length, 'test', allowNegative);
};

describe('numeric fields', () => {
  it('octal with NUL or space terminators, leading spaces, blank fields', () => {
    expect(num('0000644\0')).toBe(0o644);
    expect(num('0000644 ')).toBe(0o644);
    expect(num('   644 \0')).toBe(0o644);
    expect(num('644\0\0\0\0\0')).toBe(0o644);
    expect(num('00000001750')).toBe(0o1750); // field-filling, no terminator
    expect(num('777777777777')).toBe(0o777777777777); // 12 digits, no terminator
    expect(num('\0\0\0\0\0\0\0\0')).toBe(0);
    expect(num('        ')).toBe(0);
  });

  it('rejects junk in octal fields', () => {
    expect(() => num('0000689\0')).toThrow(TarFormatError);
    expect(() => num('12 34\0\0\0')).toThrow(/junk after the octal number/);
    expect(() => num('abc\0\0\0\0\0')).toThrow(/not an octal number/);
    expect(() => num('-123\0\0\0\0')).toThrow(TarFormatError);
  });

  it('GNU base-256: positive, negative (two\'s complement), and the 2^53 limit', () => {
    expect(num([0x80, 0, 0, 0, 0, 0, 0, 0, 0xb2, 0xd0, 0x5e, 0x00])).toBe(3000000000);
    expect(num([0x80, 0, 0, 0, 0, 0, 0, 1])).toBe(1);
    expect(num([0x80, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])).toBe(2 ** 53 - 1);
    expect(() => num([0x80, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0])).toThrow(/too large/);
    expect(() => num([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])).toThrow(/too large/);
    expect(num([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], true)).toBe(-1);
    expect(num([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], true)).toBe(-2);
    expect(() => num([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])).toThrow(/negative/);
  });

  it('writeNumeric: octal when it fits, base-256 when it does not, both round trip', () => {
    for (const [len, v] of [[8, 0], [8, 0o7777777], [8, 0o7777777 + 1], [8, 3000000000], [12, 2 ** 33], [12, 2 ** 53 - 1], [12, -1], [12, -(2 ** 40)]] as const) {
      const b = Buffer.alloc(len);
      writeNumeric(b, 0, len, v);
      expect(parseNumeric(b, 0, len, 'x', true), `${v} in ${len}`).toBe(v);
      expect((b[0]! & 0x80) !== 0, `${v} base-256`).toBe(v < 0 || v > 8 ** (len - 1) - 1);
    }
    expect(() => writeNumeric(Buffer.alloc(4), 0, 4, 2 ** 40)).toThrow(/does not fit/);
    expect(() => writeNumeric(Buffer.alloc(8), 0, 8, 1.5)).toThrow(RangeError);
  });
});

describe('decodeHeader', () => {
  it('round trips encodeHeader, all entry types', () => {
    const types: [string, string][] = [['0', 'file'], ['7', 'file'], ['1', 'hardlink'], ['2', 'symlink'], ['3', 'char'], ['4', 'block'], ['5', 'dir'], ['6', 'fifo'], ['x', 'pax'], ['g', 'pax-global'], ['L', 'gnu-longname'], ['K', 'gnu-longlink']];
    for (const [typeflag, kind] of types) {
      const h = decodeHeader(
        encodeHeader({ name: 'n'.repeat(100), typeflag, mode: 0o4755, uid: 3000000000, gid: 7, size: 9, mtime: 1234567890, linkname: 'l', uname: 'u'.repeat(31), gname: 'g', devmajor: 8, devminor: 3 }),
      );
      expect(h).toMatchObject({ kind, typeflag, format: 'ustar', name: 'n'.repeat(100), mode: 0o4755, uid: 3000000000, gid: 7, size: 9, mtime: 1234567890, linkname: 'l', uname: 'u'.repeat(31), gname: 'g' });
      expect([h.devmajor, h.devminor]).toEqual(kind === 'char' || kind === 'block' ? [8, 3] : [0, 0]);
    }
  });

  it("'\\0' typeflag is a file, or a directory when the name ends in '/' (old tars)", () => {
    const b = header({ name: 'old/', typeflag: '0' });
    b[FIELD.typeflag[0]] = 0;
    expect(decodeHeader(fixChecksum(b)).kind).toBe('dir');
    const f = header({ name: 'old', typeflag: '0' });
    f[FIELD.typeflag[0]] = 0;
    expect(decodeHeader(fixChecksum(f))).toMatchObject({ kind: 'file', typeflag: '\0' });
  });

  it('mode keeps setuid/setgid/sticky and drops file-type bits some writers add', () => {
    const b = header({ name: 'f' });
    b.write('0104755\0', FIELD.mode[0], 'latin1');
    expect(decodeHeader(fixChecksum(b)).mode).toBe(0o4755);
  });

  it('ustar prefix is joined; the GNU magic ignores the prefix area', () => {
    const b = header({ name: 'file.txt' });
    b.write('some/prefix', FIELD.prefix[0], 'latin1');
    expect(decodeHeader(fixChecksum(b))).toMatchObject({ name: 'some/prefix/file.txt', format: 'ustar' });
    b.write('ustar  \0', FIELD.magic[0], 'latin1');
    expect(decodeHeader(fixChecksum(b))).toMatchObject({ name: 'file.txt', format: 'gnu' });
    b.fill(0, FIELD.magic[0], FIELD.magic[0] + 8);
    b.write('root', FIELD.uname[0], 'latin1');
    expect(decodeHeader(fixChecksum(b))).toMatchObject({ name: 'file.txt', format: 'v7', uname: '' });
  });

  it('names are byte strings: non-UTF-8 bytes survive', () => {
    const b = header({ name: 'x' });
    Buffer.from([0xff, 0xfe, 0x41]).copy(b, 0);
    expect(decodeHeader(fixChecksum(b)).name).toBe('\xff\xfeA');
  });

  it('checksum: unsigned and signed sums are both accepted', () => {
    const b = header({ name: '\xe9t\xe9' }); // bytes >= 0x80 make the sums differ
    const { unsigned, signed } = headerChecksums(b);
    expect(unsigned).not.toBe(signed);
    b.write(signed.toString(8).padStart(6, '0') + '\0 ', FIELD.chksum[0], 8, 'latin1');
    expect(decodeHeader(b).name).toBe('\xe9t\xe9');
    b.write((unsigned + 1).toString(8).padStart(6, '0') + '\0 ', FIELD.chksum[0], 8, 'latin1');
    expect(() => decodeHeader(b)).toThrow(/bad checksum/);
  });

  it('devmajor/devminor are only read for devices (others may leave junk there)', () => {
    const b = header({ name: 'f' });
    b.write('garbage!', FIELD.devmajor[0], 'latin1');
    expect(decodeHeader(fixChecksum(b)).devmajor).toBe(0);
    b[FIELD.typeflag[0]] = '3'.charCodeAt(0);
    expect(() => decodeHeader(fixChecksum(b))).toThrow(/devmajor/);
  });

  it('unsupported typeflags are errors that say what they are', () => {
    const b = header({ name: 'f' });
    b[FIELD.typeflag[0]] = 'S'.charCodeAt(0);
    expect(() => decodeHeader(fixChecksum(b))).toThrow(/sparse files not supported/);
    b[FIELD.typeflag[0]] = 'V'.charCodeAt(0);
    expect(() => decodeHeader(fixChecksum(b))).toThrow(/volume label/);
    b[FIELD.typeflag[0]] = 'q'.charCodeAt(0);
    expect(() => decodeHeader(fixChecksum(b))).toThrow(/unsupported tar entry typeflag "q"/);
  });

  it('errors carry the stream offset', () => {
    const b = Buffer.alloc(512, 0x41);
    try {
      decodeHeader(b, 0, 4096);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(TarFormatError);
      expect((err as TarFormatError).offset).toBe(4096);
      expect((err as Error).message).toMatch(/offset 4096/);
    }
  });

  it('isZeroBlock', () => {
    expect(isZeroBlock(Buffer.alloc(512))).toBe(true);
    const b = Buffer.alloc(1024);
    b[1000] = 1;
    expect(isZeroBlock(b, 0)).toBe(true);
    expect(isZeroBlock(b, 512)).toBe(false);
  });

  it('encodeHeader refuses names that do not fit', () => {
    expect(() => encodeHeader({ name: 'n'.repeat(101), typeflag: '0', mode: 0, uid: 0, gid: 0, size: 0, mtime: 0 })).toThrow(RangeError);
    expect(() => encodeHeader({ name: '\u0100', typeflag: '0', mode: 0, uid: 0, gid: 0, size: 0, mtime: 0 })).toThrow(RangeError);
  });
});
