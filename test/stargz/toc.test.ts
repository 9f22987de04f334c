import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { NotStargzError, StargzFormatError, StargzTocDigestError } from '../../src/stargz/errors.js';
import { readStargzToc } from '../../src/stargz/toc.js';
import { bufferReader, estargzFooter, estargzLayer, tarHeader, sha256, synthEstargz, zstdChunkedLayer } from './helpers.js';

const DATA = gzipSync(Buffer.from('hello'));
const hello = { name: 'f', type: 'reg', size: 5, offset: 0, chunkDigest: `sha256:${sha256('hello')}` };
const read = (blob: Buffer, opts = {}) => readStargzToc(bufferReader(blob), blob.length, opts);
const tocOf = (entries: object[], extra: object = {}) => ({ version: 1, entries, ...extra });

describe('readStargzToc', () => {
  it('parses every field, carries owner names forward and resolves chunk sizes', async () => {
    const t = await read(estargzLayer(DATA, tocOf([
      { name: '/x/', type: 'dir', uid: 7, gid: 8, userName: 'u', groupName: 'g', mode: 0o41777, modtime: '1999-12-31T23:59:59+01:00', xattrs: { 'trusted.overlay.opaque': 'eQ==' }, NumLink: 3 },
      { name: 'x/f', type: 'reg', size: 5, uid: 7, gid: 8, offset: 0, chunkSize: 3, chunkDigest: `sha256:${sha256('hel')}`, digest: `sha256:${sha256('hello')}` },
      { name: 'x/f', type: 'chunk', offset: 0, innerOffset: 3, chunkOffset: 3, chunkDigest: `sha256:${sha256('lo')}` },
      { name: 'x/c', type: 'char', devMajor: 4, devMinor: 64, modtime: '0001-01-01T00:00:00Z' },
    ])));
    const [dir, f, chunk, c] = t.entries;
    expect(dir).toMatchObject({ name: 'x', mode: 0o1777, uid: 7, gid: 8, userName: 'u', groupName: 'g', mtime: Date.UTC(1999, 11, 31, 22, 59, 59) / 1000 });
    expect(dir!.xattrs).toEqual(new Map([['trusted.overlay.opaque', Buffer.from('y')]]));
    expect(f).toMatchObject({ userName: 'u', groupName: 'g', chunkSize: 3, compressedSize: DATA.length });
    expect(chunk).toMatchObject({ name: 'x/f', chunkOffset: 3, chunkSize: 2, innerOffset: 3, compressedSize: DATA.length });
    expect(c).toMatchObject({ devMajor: 4, devMinor: 64, mtime: 0, userName: '', mode: 0 });
  });

  it('reads zstd:chunked layers with the 64-byte footer too', async () => {
    const data = Buffer.alloc(10);
    const t = await read(zstdChunkedLayer(data, tocOf([{ name: 'f', type: 'reg', size: 5, offset: 2, endOffset: 9, digest: `sha256:${sha256('hello')}` }]), 64));
    expect(t.footer).toMatchObject({ kind: 'zstd:chunked', footerSize: 72, tocOffset: 18, dataEnd: 10 });
    expect(t.entries[0]).toMatchObject({ offset: 2, compressedSize: 7 });
  });

  it('regression: a TOC whose digest does not match its annotation is refused', async () => {
    const blob = estargzLayer(DATA, tocOf([hello]));
    const good = (await read(blob)).tocDigest;
    expect((await read(blob, { annotations: { 'containerd.io/snapshot/stargz/toc.digest': good } })).verifiedBy).toBe('containerd.io/snapshot/stargz/toc.digest');
    const wrong = `sha256:${'0'.repeat(64)}`;
    await expect(read(blob, { annotations: { 'containerd.io/snapshot/stargz/toc.digest': wrong } })).rejects.toThrow(StargzTocDigestError);
    await expect(read(blob, { expectedTocDigest: wrong })).rejects.toThrow(/stargz TOC digest mismatch: expectedTocDigest says sha256:0{64}, the layer's TOC is sha256:/);
    // a tampered TOC that is not even JSON is still reported as not the annotated one
    await expect(read(estargzLayer(DATA, '{"version":1,"entr'), { expectedTocDigest: good })).rejects.toThrow(StargzTocDigestError);
    const zstd = zstdChunkedLayer(DATA, tocOf([hello]));
    await expect(read(zstd, { annotations: { 'io.github.containers.zstd-chunked.manifest-checksum': wrong } })).rejects.toThrow(StargzTocDigestError);
    await expect(read(zstd, { annotations: { 'io.containers.zstd-chunked.manifest-position': '1:2:3:1' } })).rejects.toThrow(/manifest-position/);
  });

  it('says a plain gzip layer is not a stargz layer', async () => {
    const plain = gzipSync(Buffer.alloc(10000));
    await expect(read(plain)).rejects.toThrow(NotStargzError);
    await expect(read(plain)).rejects.toThrow('not an eStargz/stargz/zstd:chunked layer');
    await expect(read(Buffer.alloc(3))).rejects.toThrow(NotStargzError);
  });

  const hostile: [string, Buffer, RegExp][] = [
    ['version 2', estargzLayer(DATA, tocOf([hello], { version: 2 })), /version 2, only 1/],
    ['no version', estargzLayer(DATA, '{"entries":[]}'), /version undefined/],
    ['garbage JSON', estargzLayer(DATA, '{"version":1,"entries":[{]}'), /bad JSON/],
    ['truncated JSON', estargzLayer(DATA, '{"version":1,"entries":['), /bad JSON|ends in the middle/],
    ['trailing JSON', estargzLayer(DATA, '{"version":1,"entries":[]} {}'), /bad JSON/],
    ['entries not an array', estargzLayer(DATA, '{"version":1,"entries":{"a":{}}}'), /not an array/],
    ['deep nesting', estargzLayer(DATA, `{"version":1,"x":${'['.repeat(100000)}`), /nested deeper/],
    ['a huge unknown member', estargzLayer(DATA, `{"version":1,"x":[${'0,'.repeat(100000)}0]}`), /more than 65536 JSON tokens/],
    ['../ in a name', estargzLayer(DATA, tocOf([{ ...hello, name: 'a/../../etc/passwd' }])), /'\.\.' component/],
    ['../ in a hardlink', estargzLayer(DATA, tocOf([hello, { name: 'h', type: 'hardlink', linkName: '../f' }])), /'\.\.' component/],
    ['NUL in a name', estargzLayer(DATA, tocOf([{ ...hello, name: 'a\0b' }])), /NUL/],
    ['offset past the blob', estargzLayer(DATA, tocOf([{ ...hello, offset: 1e9 }])), /past the file data/],
    ['offset in the TOC', estargzLayer(DATA, tocOf([{ ...hello, offset: DATA.length }])), /past the file data/],
    ['a huge size', estargzLayer(DATA, tocOf([{ ...hello, size: 2 ** 60 }])), /"size" is not a non-negative integer/],
    ['a negative offset', estargzLayer(DATA, tocOf([{ ...hello, offset: -1 }])), /"offset" is not a non-negative/],
    ['a size its pieces do not cover', estargzLayer(DATA, tocOf([{ ...hello, size: 6, chunkSize: 5 }])), /cover 5 of its 6 bytes/],
    ['a piece past its file', estargzLayer(DATA, tocOf([{ ...hello, chunkSize: 9 }])), /runs past the file/],
    ['a chunk with no file', estargzLayer(DATA, tocOf([{ name: 'f', type: 'chunk', offset: 0 }])), /outside a regular file/],
    ['offsets out of blob order', estargzLayer(Buffer.concat([DATA, DATA]), tocOf([{ ...hello, offset: DATA.length }, { ...hello, name: 'g', offset: 0 }])), /comes after/],
    ['an unknown type', estargzLayer(DATA, tocOf([{ ...hello, type: 'socket' }])), /unknown type/],
    ['a bad digest', estargzLayer(DATA, tocOf([{ ...hello, chunkDigest: 'md5:00' }])), /is not sha256/],
    ['bad base64', estargzLayer(DATA, tocOf([{ ...hello, xattrs: { 'user.a': '!!!' } }])), /not base64/],
    ['a bad modtime', estargzLayer(DATA, tocOf([{ ...hello, modtime: 'yesterday' }])), /RFC 3339/],
  ];
  for (const [what, blob, message] of hostile) {
    it(`refuses a TOC with ${what}`, async () => {
      const err = await read(blob).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StargzFormatError);
      expect((err as Error).message).toMatch(message);
    });
  }

  it('refuses a TOC over the size limit before decoding it', async () => {
    const blob = estargzLayer(DATA, tocOf([hello], { pad: 'x'.repeat(5000) }));
    await expect(read(blob, { maxTocSize: 4096 })).rejects.toThrow(/more than the 4096 allowed/);
  });

  it('refuses a TOC member whose first tar entry is not stargz.index.json', async () => {
    const member = gzipSync(Buffer.concat([tarHeader('etc/passwd', 2), Buffer.from('{}'), Buffer.alloc(510)]));
    await expect(read(Buffer.concat([DATA, member, estargzFooter(DATA.length)]))).rejects.toThrow(/the first entry is "etc\/passwd", not stargz.index.json/);
  });

  it('streams a 100k-entry TOC in bounded memory', async () => {
    const files = Array.from({ length: 100_000 }, (_, i) => ({ name: `d${i % 100}/file-${i}.txt`, type: 'reg', size: 5, offset: 0, modtime: '2020-01-02T03:04:05Z', mode: 0o644, uid: 1000, gid: 1000, chunkDigest: `sha256:${sha256('hello')}` }));
    const json = Buffer.from(JSON.stringify(tocOf(files), null, '\t'));
    const blob = estargzLayer(DATA, json);
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const before = process.memoryUsage();
    let peakRss = before.rss;
    const timer = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss); }, 5);
    const started = performance.now();
    const t = await read(blob);
    clearInterval(timer);
    gc();
    const after = process.memoryUsage();
    expect(t.entries).toHaveLength(100_000);
    expect(t.tocDigest).toBe(`sha256:${sha256(json)}`);
    const heapMiB = (after.heapUsed - before.heapUsed) / 2 ** 20;
    const rssMiB = (Math.max(peakRss, after.rss) - before.rss) / 2 ** 20;
    console.log(`100k-entry TOC: ${(json.length / 2 ** 20).toFixed(1)} MiB JSON (${(blob.length / 2 ** 20).toFixed(2)} MiB gzip), ${(performance.now() - started).toFixed(0)} ms, heap +${heapMiB.toFixed(1)} MiB, peak RSS +${rssMiB.toFixed(1)} MiB`);
    // the records themselves, not the JSON text (which a JSON.parse would hold whole, several times over)
    expect(heapMiB).toBeLessThan(json.length / 2 ** 20);
    const skipped = synthEstargz([], { chunkSize: 4096 });
    expect((await read(skipped.blob)).entries).toEqual([]);
  }, 60_000);
});
