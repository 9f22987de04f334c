// The first gzip member / zstd frame of some stored bytes, cut to the wanted bytes: members made by
// the real tools (node:zlib, the zstd CLI), followed by more members that must not be read.
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compress, decodeMember, decodeMemberBatch, decodeMemberInto, digest, GzipMemberStream, type MemberCodec } from '../../src/native/index.js';
import { cli, codeOf, KiB, rejectionOf, sample } from './helpers.js';

const payload = sample('node binary 16 MiB').subarray(0, 300 * KiB);
const other = Buffer.from('the next member: a tar header, say'.repeat(20));

/** One member of `data` made by a real encoder: node:zlib for gzip, the zstd CLI for zstd. */
function member(codec: MemberCodec, data: Buffer): Buffer {
  return codec === 'gzip' ? gzipSync(data) : cli('zstd', ['-q', '-c', '-3'], data);
}

describe.each(['gzip', 'zstd'] as const)('%s members', (codec) => {
  const first = member(codec, payload);
  const stored = Buffer.concat([first, member(codec, other)]);

  it('decodes the wanted bytes of the first member, after skip', () => {
    expect(decodeMember(codec, stored, 0, payload.length).equals(payload)).toBe(true);
    expect(decodeMember(codec, stored, 12345, 100 * KiB).equals(payload.subarray(12345, 12345 + 100 * KiB))).toBe(true);
    const into = Buffer.alloc(4096);
    expect(decodeMemberInto(codec, stored, payload.length - 4096, into)).toBe(4096);
    expect(into.equals(payload.subarray(-4096))).toBe(true);
    expect(decodeMember(codec, stored, 7, 0).length).toBe(0);
  });

  it('never reads on into the next member', () => {
    expect(codeOf(() => decodeMember(codec, stored, 0, payload.length + 1))).toBe('ERR_NATIVE_CORRUPT');
    expect(codeOf(() => decodeMember(codec, stored, payload.length, 1))).toBe('ERR_NATIVE_CORRUPT');
  });

  it('a truncated or corrupt member is ERR_NATIVE_CORRUPT', () => {
    expect(codeOf(() => decodeMember(codec, first.subarray(0, first.length >> 1), 0, payload.length))).toBe('ERR_NATIVE_CORRUPT');
    expect(codeOf(() => decodeMember(codec, Buffer.alloc(0), 0, 1))).toBe('ERR_NATIVE_CORRUPT');
    const broken = Buffer.from(stored);
    broken[2] ^= 0xff; // gzip's method byte, zstd's magic
    expect(codeOf(() => decodeMember(codec, broken, 0, 10))).toBe('ERR_NATIVE_CORRUPT');
  });

  it('decodeMemberBatch = decodeMember, item for item, and names the failing item', async () => {
    const skips = [0, 1000, 299 * KiB, 5];
    const sizes = [payload.length, 4096, KiB, 0];
    const out = await decodeMemberBatch(codec, skips.map(() => stored), skips, sizes);
    out.forEach((b, i) => expect(b.equals(decodeMember(codec, stored, skips[i]!, sizes[i]!))).toBe(true));
    const err = await rejectionOf(decodeMemberBatch(codec, [stored, first.subarray(0, 100)], [0, 0], [10, payload.length]));
    expect(err.code).toBe('ERR_NATIVE_CORRUPT');
    expect(err.message).toMatch(/^item 1:/);
  });
});

describe('member arguments', () => {
  it('refuses codecs without members, bad skips and mismatched lists', async () => {
    const lz4 = compress('lz4_block', payload);
    expect(codeOf(() => decodeMember('lz4_block' as MemberCodec, lz4, 0, 10))).toBe('ERR_NATIVE_ARGUMENT');
    expect(codeOf(() => decodeMember('gzip', gzipSync(payload), -1, 10))).toBe('ERR_NATIVE_ARGUMENT');
    await expect(decodeMemberBatch('gzip', [payload], [0, 0], [1])).rejects.toThrow(RangeError);
  });
});

describe('GzipMemberStream', () => {
  const first = member('gzip', payload);
  const stored = Buffer.concat([first, member('gzip', other)]);
  /** Pushes `bytes` in pieces of `piece` bytes; whether the output was full after the last. */
  const feed = (stream: GzipMemberStream, bytes: Buffer, piece: number): boolean => {
    let full = false;
    for (let at = 0; at < bytes.length; at += piece) full = stream.push(bytes.subarray(at, at + piece));
    return full;
  };

  it('decodes the wanted bytes fed in pieces of any size, as decodeMember does, with their digest', () => {
    for (const [skip, size, piece] of [[0, payload.length, 1], [0, payload.length, 4096], [12345, 100 * KiB, 777], [payload.length - 10, 10, 65536]] as const) {
      const stream = new GzipMemberStream('sha256', skip, Buffer.alloc(size));
      expect(feed(stream, stored, piece)).toBe(true);
      expect(stream.out.equals(decodeMember('gzip', stored, skip, size))).toBe(true);
      expect(stream.digest().equals(digest('sha256', stream.out))).toBe(true);
    }
  });

  it('is full, and decodes nothing more, once the wanted bytes are in: the next member is never read', () => {
    const stream = new GzipMemberStream('sha256', 0, Buffer.alloc(1000));
    expect(stream.push(stored)).toBe(true);
    expect(stream.push(Buffer.from('not gzip at all'))).toBe(true);
    expect(stream.out.equals(payload.subarray(0, 1000))).toBe(true);
  });

  it('a member that ends before the wanted bytes, corrupt bytes, or bytes that stop short are ERR_NATIVE_CORRUPT', () => {
    const long = new GzipMemberStream('sha256', 0, Buffer.alloc(payload.length + 1));
    expect(codeOf(() => feed(long, stored, 4096))).toBe('ERR_NATIVE_CORRUPT');
    const broken = Buffer.from(first);
    broken[2] ^= 0xff; // the method byte
    expect(codeOf(() => new GzipMemberStream('sha256', 0, Buffer.alloc(10)).push(broken))).toBe('ERR_NATIVE_CORRUPT');
    const short = new GzipMemberStream('sha256', 0, Buffer.alloc(payload.length));
    expect(feed(short, first.subarray(0, first.length >> 1), 1000)).toBe(false);
    expect(codeOf(() => short.digest())).toBe('ERR_NATIVE_CORRUPT');
  });
});
