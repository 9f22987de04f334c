import { describe, expect, it } from 'vitest';
import { TarFormatError } from '../../../src/convert/tar/errors.js';
import { decodePaxAttributes, encodePaxRecords, formatPaxTime, parsePaxRecords, parsePaxTime } from '../../../src/convert/tar/pax.js';

const recs = (s: string | Buffer): Map<string, Buffer> => parsePaxRecords(Buffer.isBuffer(s) ? s : Buffer.from(s, 'latin1'));
const attrs = (s: string | Buffer) => decodePaxAttributes(recs(s));

describe('parsePaxRecords', () => {
  it('parses records as bytes: values may hold NUL, newline, "=" and any byte', () => {
    const value = Buffer.from([0, 0x0a, 0x3d, 0xff, 0x20, 0]);
    const data = encodePaxRecords([['path', 'a/b'], ['SCHILY.xattr.user.bin', value]]);
    const r = parsePaxRecords(data);
    expect(r.get('path')).toEqual(Buffer.from('a/b'));
    expect(r.get('SCHILY.xattr.user.bin')).toEqual(value);
  });

  it('the length counts its own digits (9→10 and 99→100 boundaries)', () => {
    for (let n = 0; n < 120; n++) {
      const data = encodePaxRecords([['k', 'v'.repeat(n)]]);
      const len = Number(data.toString('latin1').split(' ')[0]);
      expect(len).toBe(data.length);
      expect(parsePaxRecords(data).get('k')!.length).toBe(n);
    }
  });

  it('values are copies that do not pin the input', () => {
    const data = encodePaxRecords([['k', 'value']]);
    const v = parsePaxRecords(data).get('k')!;
    data.fill(0);
    expect(v.toString()).toBe('value');
  });

  it('rejects malformed records', () => {
    expect(recs('11 path=ab\n').get('path')!.toString()).toBe('ab');
    expect(() => recs('12 path=ab\n')).toThrow(/runs past the end/);
    expect(() => recs('10 path=ab\n')).toThrow(/does not end on a newline/);
    expect(() => recs('3 a\n')).toThrow(/too small/);
    expect(() => recs('0 \n')).toThrow(TarFormatError);
    expect(() => recs('x path=ab\n')).toThrow(/does not start with/);
    expect(() => recs('10path=ab\n')).toThrow(/does not start with/);
    expect(() => recs('8 pathx\n')).toThrow(/no '='/);
    expect(() => recs('5 =a\n')).toThrow(/empty key/);
    expect(() => recs('99999999 a=b\n')).toThrow(/absurd/);
    expect(() => recs('11 path=ab\n\0\0\0')).toThrow(TarFormatError);
  });

  it('rejects GNU sparse keys: sparse files not supported', () => {
    expect(() => recs(encodePaxRecords([['GNU.sparse.major', '1']]))).toThrow(/sparse files not supported/);
    expect(() => recs(encodePaxRecords([['GNU.sparse.map', '0,1']]))).toThrow(/sparse files not supported/);
  });
});

describe('decodePaxAttributes', () => {
  it('standard keys', () => {
    const a = attrs(encodePaxRecords([
      ['path', 'caf\xc3\xa9/long'],
      ['linkpath', 'target'],
      ['size', '8589934592'],
      ['uid', '3000000000'],
      ['gid', '42'],
      ['uname', 'alice'],
      ['gname', 'staff'],
      ['mtime', '1600000000.123456789'],
      ['atime', '1.5'],
      ['ctime', 'whatever, ignored'],
      ['comment', 'ignored'],
    ]));
    expect(a).toMatchObject({ path: 'caf\xc3\xa9/long', linkpath: 'target', size: 8589934592, uid: 3000000000, gid: 42, uname: 'alice', gname: 'staff', mtime: 1600000000, mtimeNsec: 123456789 });
    expect(a.xattrs.size).toBe(0);
  });

  it('an empty value means "not set" for standard keys but is an empty xattr', () => {
    const a = attrs(encodePaxRecords([['path', ''], ['SCHILY.xattr.user.e', '']]));
    expect(a.path).toBeUndefined();
    expect(a.xattrs.get('user.e')).toEqual(Buffer.alloc(0));
  });

  it('xattrs: SCHILY raw bytes, LIBARCHIVE base64 with %-encoded names, RHT selinux; SCHILY wins', () => {
    const a = attrs(encodePaxRecords([
      ['LIBARCHIVE.xattr.user.sp%20ace', Buffer.from([1, 2, 3]).toString('base64')],
      ['LIBARCHIVE.xattr.user.both', Buffer.from('lib').toString('base64')],
      ['SCHILY.xattr.user.both', 'schily'],
      ['SCHILY.xattr.security.capability', Buffer.from([1, 0, 0, 2])],
      ['RHT.security.selinux', 'system_u:object_r:bin_t:s0'],
      ['LIBARCHIVE.xattr.user.nopad', 'YWI'],
    ]));
    expect(a.xattrs.get('user.sp ace')).toEqual(Buffer.from([1, 2, 3]));
    expect(a.xattrs.get('user.both')!.toString()).toBe('schily');
    expect(a.xattrs.get('security.capability')).toEqual(Buffer.from([1, 0, 0, 2]));
    expect(a.xattrs.get('security.selinux')!.toString()).toBe('system_u:object_r:bin_t:s0');
    expect(a.xattrs.get('user.nopad')!.toString()).toBe('ab');
    expect(() => attrs(encodePaxRecords([['LIBARCHIVE.xattr.user.x', 'not base64!']]))).toThrow(/not base64/);
    expect(() => attrs(encodePaxRecords([['LIBARCHIVE.xattr.user.%zz', 'YQ==']]))).toThrow(/%-escape/);
    expect(() => attrs(encodePaxRecords([['SCHILY.xattr.', 'x']]))).toThrow(/empty xattr name/);
  });

  it('numbers are strict decimals within 2^53', () => {
    for (const [k, v] of [['size', '-1'], ['size', '0x10'], ['uid', '1e3'], ['gid', ' 1'], ['size', '1.0']]) {
      expect(() => attrs(encodePaxRecords([[k!, v!]])), `${k}=${v}`).toThrow(/not a decimal/);
    }
    expect(() => attrs(encodePaxRecords([['size', '9007199254740992']]))).toThrow(/too large/);
    expect(() => attrs(encodePaxRecords([['size', '1'.repeat(40)]]))).toThrow(/not a decimal/);
    expect(attrs(encodePaxRecords([['size', '9007199254740991']])).size).toBe(2 ** 53 - 1);
  });
});

describe('PAX times', () => {
  const t = (s: string) => parsePaxTime('mtime', Buffer.from(s));
  it('parses fractions into seconds + nanoseconds, negative times floor', () => {
    expect(t('1600000000')).toEqual({ sec: 1600000000, nsec: 0 });
    expect(t('1600000000.5')).toEqual({ sec: 1600000000, nsec: 500000000 });
    expect(t('1.123456789999')).toEqual({ sec: 1, nsec: 123456789 });
    expect(t('1.')).toEqual({ sec: 1, nsec: 0 });
    expect(t('-1.5')).toEqual({ sec: -2, nsec: 500000000 });
    expect(t('-3')).toEqual({ sec: -3, nsec: 0 });
    for (const bad of ['', '.5', '1.5.5', '1e9', ' 1', '+1', '1'.repeat(20)]) expect(() => t(bad), bad).toThrow(TarFormatError);
  });
  it('formats and round trips', () => {
    for (const [sec, nsec] of [[0, 0], [1600000000, 123456789], [1, 500000000], [-2, 500000000], [-1, 1], [5, 1]] as const) {
      const s = formatPaxTime(sec, nsec);
      expect(t(s), s).toEqual({ sec, nsec });
    }
    expect(formatPaxTime(1, 500000000)).toBe('1.5');
    expect(formatPaxTime(-2, 500000000)).toBe('-1.5');
  });
});
