import { describe, expect, it } from 'vitest';
import { RafsEncodeError, RafsFormatError } from '../../src/rafs/errors.js';
import { decodeXattrs, encodeXattrs, xattrAreaSize, xattrCountForSize } from '../../src/rafs/xattr.js';

describe('inline xattrs', () => {
  it('encodes the ibody header and 4-byte aligned entries with the prefix stripped', () => {
    const area = encodeXattrs(new Map([['user.foo', Buffer.from('bar')]]));
    expect(area.toString('hex')).toBe(`${'00'.repeat(12)}0301${'0300'}${Buffer.from('foobar').toString('hex')}0000`);
    expect(area.length).toBe(24);
    expect(xattrCountForSize(area.length)).toBe(4);
    expect(xattrAreaSize(4)).toBe(24);
    expect(encodeXattrs(new Map()).length).toBe(0);
    expect(xattrCountForSize(0)).toBe(0);
  });

  it('sorts entries by full name and round-trips every supported family', () => {
    const xattrs = new Map([
      ['user.z', Buffer.from('1')],
      ['trusted.overlay.opaque', Buffer.from('y')],
      ['security.capability', Buffer.alloc(20, 7)],
      ['system.posix_acl_default', Buffer.from('acl-d')],
      ['system.posix_acl_access', Buffer.from('acl-a')],
      ['user.a', Buffer.alloc(0)],
      [`user.${'k'.repeat(255)}`, Buffer.alloc(65535, 1)],
    ]);
    const area = encodeXattrs(xattrs);
    const decoded = decodeXattrs(area, 0, xattrCountForSize(area.length));
    expect(decoded).toEqual(xattrs);
    expect([...decoded.keys()]).toEqual([...xattrs.keys()].sort());
    // first entry after the header: security.capability (index 6, suffix "capability")
    expect(area.readUInt8(13)).toBe(6);
    // ACLs are stored with an empty name
    const acl = encodeXattrs(new Map([['system.posix_acl_access', Buffer.from('v')]]));
    expect([acl.readUInt8(12), acl.readUInt8(13)]).toEqual([0, 2]);
  });

  it('rejects names it cannot store', () => {
    for (const key of ['system.nfs4_acl', 'user.', 'os2.foo', 'system.posix_acl_accessx', 'foo']) {
      expect(() => encodeXattrs(new Map([[key, Buffer.from('v')]]))).toThrow(RafsEncodeError);
    }
    expect(() => encodeXattrs(new Map([['system.nfs4_acl', Buffer.alloc(1)]]))).toThrow(/unsupported name "system.nfs4_acl"/);
    expect(() => encodeXattrs(new Map([[`user.${'k'.repeat(256)}`, Buffer.alloc(1)]]))).toThrow(/255 bytes/);
    expect(() => encodeXattrs(new Map([['user.big', Buffer.alloc(65536)]]))).toThrow(/64 KiB/);
  });

  it('rejects malformed areas with RafsFormatError', () => {
    const area = encodeXattrs(new Map([['user.foo', Buffer.from('bar')]]));
    const badIndex = Buffer.from(area);
    badIndex.writeUInt8(5, 13);
    expect(() => decodeXattrs(badIndex, 0, 4)).toThrow(/unknown name index 5/);
    const shared = Buffer.from(area);
    shared.writeUInt8(1, 4);
    expect(() => decodeXattrs(shared, 0, 4)).toThrow(/shared xattrs/);
    const overflow = Buffer.from(area);
    overflow.writeUInt16LE(100, 14);
    expect(() => decodeXattrs(overflow, 0, 4)).toThrow(RafsFormatError);
    expect(() => decodeXattrs(area, 0, 5)).toThrow(RafsFormatError);
    expect(() => decodeXattrs(area.subarray(0, 20), 0, 4)).toThrow(RafsFormatError);
    const twice = Buffer.concat([area, area.subarray(12)]);
    expect(() => decodeXattrs(twice, 0, 7)).toThrow(/duplicate/);
  });
});
