// Security regressions: one test per concern, each named for it. Untrusted archives must fail
// with a typed error (TarFormatError / TarPathError), never crash, hang, or allocate absurdly.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TarFormatError, TarPathError } from '../../../src/convert/tar/errors.js';
import { FIELD } from '../../../src/convert/tar/header.js';
import { parseTar } from '../../../src/convert/tar/parse.js';
import { entryPathComponents } from '../../../src/convert/tar/path.js';
import { EOA, chunked, fileEntry, fixChecksum, header, metaEntry, paxEntry, parseAll, sh } from './helpers.js';

async function formatError(tar: Buffer | AsyncIterable<Buffer>, chunk?: number): Promise<TarFormatError> {
  try {
    await parseAll(tar, chunk);
  } catch (err) {
    expect(err).toBeInstanceOf(TarFormatError);
    return err as TarFormatError;
  }
  throw new Error('expected a TarFormatError');
}

/** A header whose numeric field is set to raw bytes. */
function withField(name: string, f: keyof typeof FIELD, bytes: number[] | string, extra: Parameters<typeof header>[0] = { name }): Buffer {
  const b = header(extra);
  const [off, len] = FIELD[f];
  b.fill(0, off, off + len);
  if (typeof bytes === 'string') b.write(bytes, off, len, 'latin1');
  else Buffer.from(bytes).copy(b, off);
  return fixChecksum(b);
}

describe('tar security regressions', () => {
  it('regression: path with a ".." component is rejected (entry path and hardlink target)', async () => {
    const tar = Buffer.concat([fileEntry('a/../../etc/passwd', 'x'), header({ name: 'h', typeflag: '1', linkname: '../outside' }), EOA]);
    const [file, link] = await parseAll(tar);
    expect(() => entryPathComponents(file!.path)).toThrow(TarPathError);
    expect(() => entryPathComponents(file!.path)).toThrow(/a\/\.\.\/\.\.\/etc\/passwd/);
    expect(() => entryPathComponents(link!.linkpath)).toThrow(TarPathError);
    // a PAX path is checked the same way
    const [pax] = await parseAll(Buffer.concat([paxEntry([['path', 'ok/../..']]), fileEntry('ok', ''), EOA]));
    expect(() => entryPathComponents(pax!.path)).toThrow(/'\.\.' component/);
  });

  it('regression: absolute path is rejected (the bare root "/" is fine)', async () => {
    const [abs, root] = await parseAll(Buffer.concat([fileEntry('/etc/cron.d/evil', 'x'), header({ name: '/', typeflag: '5' }), EOA]));
    expect(() => entryPathComponents(abs!.path)).toThrow(/is absolute/);
    expect(entryPathComponents(root!.path)).toEqual([]);
  });

  it('regression: NUL inside a PAX path is rejected', async () => {
    const [e] = await parseAll(Buffer.concat([paxEntry([['path', 'safe\0/../../x']]), fileEntry('f', ''), EOA]));
    expect(e!.path).toBe('safe\0/../../x');
    expect(() => entryPathComponents(e!.path)).toThrow(/NUL/);
  });

  it('regression: huge size field (base-256 beyond 2^53) is rejected', async () => {
    const tar = Buffer.concat([withField('big', 'size', [0x80, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0]), EOA]);
    expect((await formatError(tar)).message).toMatch(/size field .*too large/);
    const pax = Buffer.concat([paxEntry([['size', '99999999999999999999']]), fileEntry('f', ''), EOA]);
    expect((await formatError(pax)).message).toMatch(/size=.*not a decimal number/);
  });

  it('regression: negative base-256 size/uid is rejected', async () => {
    const neg = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
    expect((await formatError(Buffer.concat([withField('n', 'size', neg), EOA]))).message).toMatch(/negative base-256/);
    expect((await formatError(Buffer.concat([withField('n', 'uid', neg.slice(0, 8)), EOA]))).message).toMatch(/uid field.*negative/);
  });

  it('regression: uid/gid/device numbers beyond 32 bits are rejected', async () => {
    const tar = Buffer.concat([paxEntry([['uid', String(2 ** 32)]]), fileEntry('f', ''), EOA]);
    expect((await formatError(tar)).message).toMatch(/uid 4294967296 is out of range/);
    const dev = Buffer.concat([withField('d', 'devmajor', [0x80, 0, 0, 1, 0, 0, 0, 0], { name: 'd', typeflag: '3' }), EOA]);
    expect((await formatError(dev)).message).toMatch(/device major .* out of range/);
  });

  it('regression: bad checksum is rejected', async () => {
    const b = fileEntry('f', 'data');
    b[0] ^= 1; // name changed, checksum not
    const err = await formatError(Buffer.concat([b, EOA]));
    expect(err.message).toMatch(/bad checksum/);
    expect(err.offset).toBe(0);
  });

  it('regression: garbage instead of a header (not a tar) is rejected', async () => {
    expect((await formatError(Buffer.from('{"this is": "json, not tar"}'.padEnd(2048, ' ')))).message).toMatch(/checksum/);
    expect((await formatError(Buffer.alloc(1024, 0xff))).message).toMatch(/checksum/);
    // a valid first entry, then junk: the error says where
    const err = await formatError(Buffer.concat([fileEntry('ok', 'x'), Buffer.alloc(512, 0x41)]));
    expect(err.offset).toBe(1024);
  });

  it('regression: truncated body names the entry', async () => {
    const full = Buffer.concat([fileEntry('dir/victim.bin', Buffer.alloc(5000, 1)), EOA]);
    for (const chunk of [undefined, 1, 700]) {
      const err = await formatError(full.subarray(0, 512 + 3000), chunk);
      expect(err.message).toMatch(/truncated tar archive: entry "dir\/victim\.bin" needs 5000 bytes of data, only 3000 present/);
      expect(err.entry).toBe('dir/victim.bin');
    }
    // also when the body is skipped rather than read
    const it = parseTar(chunked(full.subarray(0, 1000)))[Symbol.asyncIterator]();
    await it.next();
    await expect(it.next()).rejects.toThrow(/victim\.bin/);
  });

  it('regression: truncated padding after the data is rejected', async () => {
    const full = Buffer.concat([fileEntry('f', 'abc'), EOA]);
    expect((await formatError(full.subarray(0, 512 + 3))).message).toMatch(/padding after the data of entry "f"/);
  });

  it('regression: truncated header is rejected', async () => {
    const tar = Buffer.concat([fileEntry('first', 'x'), fileEntry('second', 'y')]);
    const err = await formatError(tar.subarray(0, 1024 + 300));
    expect(err.message).toMatch(/header at offset 1024 has only 300 of 512 bytes \(after entry "first"\)/);
    expect((await formatError(tar.subarray(0, 100))).message).toMatch(/at the start of the archive/);
  });

  it('regression: absurd PAX header length is rejected before reading it', async () => {
    // claims 1 TiB; the stream is short, so any attempt to buffer it would also fail differently
    const h = withField('x', 'size', [0x80, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0], { name: 'x', typeflag: 'x' });
    const err = await formatError(Buffer.concat([h, EOA]));
    expect(err.message).toMatch(/pax header at offset 0 claims 1099511627776 bytes \(limit 1048576\)/);
    const justOver = Buffer.concat([header({ name: 'x', typeflag: 'x', size: 1024 * 1024 + 1 }), EOA]);
    expect((await formatError(justOver)).message).toMatch(/limit 1048576/);
  });

  it('regression: absurd GNU long name length is rejected', async () => {
    const tar = Buffer.concat([header({ name: '././@LongLink', typeflag: 'L', size: 64 * 1024 * 1024 }), EOA]);
    expect((await formatError(tar)).message).toMatch(/gnu-longname header .* claims 67108864 bytes/);
  });

  it('regression: PAX record length lies (too long, too short, absurd) are rejected', async () => {
    const lie = (body: string): Buffer => Buffer.concat([metaEntry('x', Buffer.from(body, 'latin1')), fileEntry('f', ''), EOA]);
    expect((await formatError(lie('99 path=a\n'))).message).toMatch(/runs past the end/);
    expect((await formatError(lie('5 path=aaaaaaaa\n'))).message).toMatch(/too small|does not end on a newline/);
    expect((await formatError(lie('9 path=aaaaaaaa\n'))).message).toMatch(/does not end on a newline/);
    expect((await formatError(lie('123456789012 path=a\n'))).message).toMatch(/absurd/);
    expect((await formatError(lie('11 path=ab\nxx'))).message).toMatch(/does not start with/);
    const err = await formatError(lie('99 path=a\n'));
    expect(err.message).toMatch(/pax header at offset 0/);
  });

  it('regression: GNU sparse files are rejected (typeflag S, PAX GNU.sparse.*, real GNU tar --sparse)', async () => {
    const s = header({ name: 'sparse', typeflag: 'S' });
    expect((await formatError(Buffer.concat([s, EOA]))).message).toMatch(/sparse files not supported/);
    const pax = Buffer.concat([paxEntry([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0']]), fileEntry('f', ''), EOA]);
    expect((await formatError(pax)).message).toMatch(/sparse files not supported/);

    const tmp = mkdtempSync(join(tmpdir(), 'tar-sparse-'));
    try {
      sh('truncate', ['-s', '8M', join(tmp, 'holes')]);
      writeFileSync(join(tmp, 'holes'), 'data in the middle', { flag: 'r+' });
      for (const format of ['pax', 'gnu']) {
        const out = join(tmp, `${format}.tar`);
        sh('tar', ['-C', tmp, '--sparse', `--format=${format}`, '-cf', out, 'holes']);
        expect((await formatError(readFileSync(out))).message, format).toMatch(/sparse files not supported/);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('regression: a lone zero block followed by more entries is rejected (no hidden entries)', async () => {
    const tar = Buffer.concat([fileEntry('a', 'x'), Buffer.alloc(512), fileEntry('hidden', 'y'), EOA]);
    expect((await formatError(tar)).message).toMatch(/lone zero block at offset 1024/);
  });

  it('regression: an archive ending after a meta header is rejected', async () => {
    expect((await formatError(paxEntry([['path', 'x']]))).message).toMatch(/ends after an extended\/long-name header/);
    expect((await formatError(Buffer.concat([metaEntry('L', Buffer.from('x\0')), EOA]))).message).toMatch(/ends after an extended\/long-name header/);
  });

  it('regression: global PAX headers cannot pile up without bound', async () => {
    const parts: Buffer[] = [];
    for (let i = 0; i < 40; i++) parts.push(paxEntry([[`comment${i}`, 'x'.repeat(30_000)]], 'g'));
    parts.push(fileEntry('f', ''), EOA);
    expect((await formatError(Buffer.concat(parts))).message).toMatch(/global PAX headers add up to more than 1048576 bytes/);
  });

  it('regression: mutated archives fail only with TarFormatError (no crash, no hang)', async () => {
    const base = Buffer.concat([
      paxEntry([['path', 'p'.repeat(150)], ['SCHILY.xattr.user.a', 'v'], ['mtime', '1.5']]),
      fileEntry('x', Buffer.alloc(700, 3)),
      metaEntry('L', Buffer.from('long\0')),
      header({ name: 'l', typeflag: '2', linkname: 't' }),
      fileEntry('y', 'z'),
      EOA,
    ]);
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let failures = 0;
    for (let round = 0; round < 400; round++) {
      const t = Buffer.from(base);
      for (let k = 1 + rand(4); k > 0; k--) t[rand(t.length)] = rand(256);
      // fixing the checksum of a random header gets the mutation past the first line of defence
      if (rand(2) === 0) {
        const blk = 512 * rand(t.length / 512);
        fixChecksum(t.subarray(blk, blk + 512));
      }
      const cut = rand(3) === 0 ? t.subarray(0, rand(t.length)) : t;
      try {
        await parseAll(cut, 1 + rand(600));
      } catch (err) {
        if (!(err instanceof TarFormatError)) throw err;
        failures++;
      }
    }
    expect(failures).toBeGreaterThan(50);
  });
});
