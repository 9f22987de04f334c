import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseTar } from '../../../src/convert/tar/parse.js';
import { describeFixtures, nydusFixture } from '../../helpers/fixtures.js';
import { EOA, chunked, fileEntry, header, metaEntry, paxEntry, parseAll } from './helpers.js';

describeFixtures('upstream fixtures', () => {
  it('all-entry-type.tar', async () => {
    const entries = await parseAll(readFileSync(nydusFixture('tar', 'all-entry-type.tar')), 100);
    expect(entries.map((e) => [e.path, e.type, e.linkpath])).toEqual([
      ['tar/', 'dir', ''],
      ['tar/dir1/', 'dir', ''],
      ['tar/dir1/dir3/', 'dir', ''],
      ['tar/dir1/dir3/hardlink1.txt', 'file', ''],
      ['tar/dir1/dir3/xfile.txt', 'hardlink', 'tar/dir1/dir3/hardlink1.txt'],
      ['tar/dir1/hardlink2.txt', 'hardlink', 'tar/dir1/dir3/hardlink1.txt'],
      ['tar/dir2/', 'dir', ''],
      ['tar/dir2/hardlink3.txt', 'hardlink', 'tar/dir1/dir3/hardlink1.txt'],
      ['tar/dir2/symlink1.txt', 'symlink', '../dir1/dir3/file1.txt'],
    ]);
    expect(entries[3]).toMatchObject({ size: 15, mode: 0o644, uid: 0, gid: 0, uname: 'root', gname: 'root', format: 'gnu' });
    expect(new Date(entries[3]!.mtime * 1000).toISOString()).toMatch(/^2022-10-12T/);
    expect(entries[3]!.data.length).toBe(15);
    expect(entries[0]!.mode).toBe(0o755);
  });

  it('empty.tar (0 bytes) has no entries', async () => {
    expect(await parseAll(readFileSync(nydusFixture('tar', 'empty.tar')))).toEqual([]);
  });
});

describe('parseTar', () => {
  it('end of archive: two zero blocks, one zero block then EOF, or plain EOF at a header boundary', async () => {
    const one = fileEntry('a', 'x');
    for (const tail of [EOA, EOA.subarray(0, 512), Buffer.alloc(0), Buffer.concat([EOA, Buffer.alloc(8192)])]) {
      const entries = await parseAll(Buffer.concat([one, tail]));
      expect(entries.map((e) => e.path)).toEqual(['a']);
    }
    expect(await parseAll(Buffer.alloc(0))).toEqual([]);
    expect(await parseAll(EOA)).toEqual([]);
  });

  it('reads the source to its end after the marker (drain), or closes it with drain: false', async () => {
    const tar = Buffer.concat([fileEntry('a', 'x'), EOA, Buffer.alloc(10240)]);
    let pulled = 0;
    const counting = async function* (): AsyncGenerator<Buffer> {
      for await (const c of chunked(tar, 512)) {
        pulled += c.length;
        yield c;
      }
    };
    for await (const e of parseTar(counting())) await e.skip();
    expect(pulled).toBe(tar.length);

    pulled = 0;
    for await (const e of parseTar(counting(), { drain: false })) await e.skip();
    expect(pulled).toBeLessThan(tar.length);
  });

  it('breaking out early closes the source', async () => {
    let closed = false;
    async function* src(): AsyncGenerator<Buffer> {
      try {
        yield fileEntry('a', 'x');
        yield fileEntry('b', 'y');
        yield EOA;
      } finally {
        closed = true;
      }
    }
    for await (const e of parseTar(src())) {
      expect(e.path).toBe('a');
      break;
    }
    expect(closed).toBe(true);
  });

  it('bodies: zero-copy slices, auto-skip when unread, readAll, skip, stale body read is an error', async () => {
    const big = Buffer.alloc(100_000, 0xab);
    const tar = Buffer.concat([fileEntry('big', big), fileEntry('small', 'hello'), fileEntry('skipped', 'zzz'), fileEntry('last', 'end'), EOA]);
    const it = parseTar(chunked(tar, 4096))[Symbol.asyncIterator]();

    const e1 = (await it.next()).value!;
    expect(e1).toMatchObject({ path: 'big', size: 100_000, headerOffset: 0, dataOffset: 512 });
    let total = 0;
    for await (const part of e1.body) {
      expect(part.buffer).toBe(tar.buffer); // a view of the input, not a copy
      total += part.length;
    }
    expect(total).toBe(100_000);

    const e2 = (await it.next()).value!;
    expect((await e2.readAll()).toString()).toBe('hello');

    const e3 = (await it.next()).value!; // never read: skipped when moving on
    const e4 = (await it.next()).value!;
    expect(e4.path).toBe('last');
    await expect(async () => {
      for await (const _ of e3.body) { /* stale */ }
    }).rejects.toThrow(/body read after moving on/);
    await e4.skip();
    await expect(e4.readAll()).resolves.toEqual(Buffer.alloc(0));
    expect((await it.next()).done).toBe(true);
    await expect(e1.readAll(10)).rejects.toThrow(RangeError);
  });

  it('accepts Uint8Array chunks (not only Buffers) and refuses strings', async () => {
    const tar = Buffer.concat([fileEntry('a', 'xyz'), EOA]);
    async function* u8(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(tar.buffer, tar.byteOffset, 700);
      yield new Uint8Array(tar.buffer, tar.byteOffset + 700, tar.length - 700);
    }
    expect((await parseAll(u8() as AsyncIterable<Buffer>))[0]!.data.toString()).toBe('xyz');
    async function* str(): AsyncGenerator<string> {
      yield 'not bytes';
    }
    await expect(parseAll(str() as unknown as AsyncIterable<Buffer>)).rejects.toThrow(TypeError);
  });

  it('GNU long names and link targets (L, K)', async () => {
    const name = 'n/'.repeat(100) + 'file';
    const link = 't/'.repeat(80) + 'target';
    const tar = Buffer.concat([
      metaEntry('L', Buffer.from(name + '\0'), '././@LongLink'),
      metaEntry('K', Buffer.from(link + '\0'), '././@LongLink'),
      header({ name: name.slice(0, 100), typeflag: '2', linkname: link.slice(0, 100) }),
      fileEntry('short', 'x'),
      EOA,
    ]);
    const [a, b] = await parseAll(tar, 7);
    expect(a).toMatchObject({ path: name, linkpath: link, type: 'symlink', headerOffset: 0 });
    expect(b).toMatchObject({ path: 'short', linkpath: '' }); // meta applies to one entry only
  });

  it('PAX: local records, global records for all following entries, empty value unsets, PAX beats L', async () => {
    const tar = Buffer.concat([
      paxEntry([['uid', '77'], ['SCHILY.xattr.user.g', 'global'], ['mtime', '10.5']], 'g'),
      fileEntry('one', 'a'),
      paxEntry([['uid', ''], ['mtime', ''], ['path', 'two-from-pax'], ['gname', 'wheel']]),
      metaEntry('L', Buffer.from('two-from-L\0')),
      fileEntry('two', 'b', { uid: 5 }),
      fileEntry('three', 'c'),
      EOA,
    ]);
    const [one, two, three] = await parseAll(tar);
    expect(one).toMatchObject({ path: 'one', uid: 77, mtime: 10, mtimeNsec: 500000000 });
    expect(one!.xattrs.get('user.g')!.toString()).toBe('global');
    expect(two).toMatchObject({ path: 'two-from-pax', uid: 5, mtime: 0, mtimeNsec: 0, gname: 'wheel' });
    expect(two!.xattrs.get('user.g')!.toString()).toBe('global');
    expect(three).toMatchObject({ path: 'three', uid: 77, gname: '' });
  });

  it('PAX size overrides the header size', async () => {
    const tar = Buffer.concat([paxEntry([['size', '5']]), header({ name: 'f', size: 0 }), Buffer.from('hello'.padEnd(512, '\0')), EOA]);
    const [f] = await parseAll(tar);
    expect(f!.data.toString()).toBe('hello');
  });

  it('header-only types carry no data whatever their size field says (POSIX, like Go)', async () => {
    const tar = Buffer.concat([header({ name: 'l', typeflag: '1', linkname: 'f', size: 1000 }), header({ name: 'd/', typeflag: '5', size: 10 }), fileEntry('f', 'x'), EOA]);
    const e = await parseAll(tar);
    expect(e.map((x) => [x.path, x.type, x.size])).toEqual([['l', 'hardlink', 0], ['d/', 'dir', 0], ['f', 'file', 1]]);
  });

  it("contiguous files ('7') are files; linkpath is '' for non-links", async () => {
    const tar = Buffer.concat([fileEntry('c', 'data', { typeflag: '7', linkname: 'junk' }), EOA]);
    const [c] = await parseAll(tar);
    expect(c).toMatchObject({ type: 'file', typeflag: '7', linkpath: '' });
    expect(c!.data.toString()).toBe('data');
  });

  it('same entries whatever the chunking', async () => {
    const tar = Buffer.concat([
      paxEntry([['path', 'p'.repeat(300)], ['SCHILY.xattr.user.x', Buffer.from([0, 1, 2])]]),
      fileEntry('ignored', Buffer.alloc(1500, 1)),
      metaEntry('L', Buffer.from('L'.repeat(700) + '\0')),
      fileEntry('x', Buffer.alloc(513, 2)),
      fileEntry('empty', ''),
      EOA,
    ]);
    const whole = await parseAll(tar);
    expect(whole).toHaveLength(3);
    for (const size of [1, 2, 511, 512, 513, 1000]) expect(await parseAll(tar, size), `chunks of ${size}`).toEqual(whole);
    expect(await parseAll(chunked(tar, 3000, true))).toEqual(whole);
  });
});
