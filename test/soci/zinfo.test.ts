// decodeZinfo against the zinfo of zTOCs soci wrote (test/fixtures/soci): every checkpoint of
// expected.json, the windows against the decompressed layer, the span digests against the layer's
// bytes, and each span decoded from its own bytes; then copies of the blob with one thing broken.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { gzipExtractInto } from '../../src/native/index.js';
import { SociFormatError } from '../../src/soci/errors.js';
import { decodeZinfo, spanRange, ZINFO_WINDOW_SIZE, type ZinfoOwner } from '../../src/soci/zinfo.js';
import { decodeZtoc } from '../../src/soci/ztoc.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'soci');
const read = (name: string): Buffer => readFileSync(join(FIXTURES, name));
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const HEADER = 12;
const CHECKPOINT = 8 + 8 + 1 + 32768;

interface Expected {
  gzip_members: { gzip_header_size: number }[];
  zinfo: {
    blob_version_by_length_rule: number;
    num_checkpoints: number;
    span_size: number;
    checkpoints: { index: number; in: number; out: number; bits: number; window_sha256: string; window_zero_prefix: number }[];
    spans: { id: number; compressed_start: number; compressed_end: number; uncompressed_start: number; uncompressed_end: number; digest: string }[];
  };
}

const VECTORS = [
  { name: 'single-member', layer: 'layer.tar.gz', ztoc: 'layer.ztoc', expected: 'expected.json' },
  { name: 'two-member', layer: 'multi.tar.gz', ztoc: 'multi.ztoc', expected: 'multi-expected.json' },
];

const leadingZeros = (b: Buffer): number => {
  const i = b.findIndex((x) => x !== 0);
  return i < 0 ? b.length : i;
};

describe.each(VECTORS)('the zinfo of the $name vector soci wrote', (v) => {
  const expected = JSON.parse(read(v.expected).toString('utf8')) as Expected;
  const layer = read(v.layer);
  const tar = gunzipSync(layer);
  const ztoc = decodeZtoc(read(v.ztoc));
  const zinfo = decodeZinfo(ztoc.checkpoints, ztoc);

  it('gives the version, span size and every checkpoint soci gives', () => {
    const e = expected.zinfo;
    expect(zinfo.version).toBe(e.blob_version_by_length_rule);
    expect(zinfo.spanSize).toBe(e.span_size);
    expect(zinfo.checkpoints.length).toBe(e.num_checkpoints);
    expect(zinfo.checkpoints.length).toBe(ztoc.maxSpanId + 1);
    expect(zinfo.checkpoints.map((c, index) => ({ index, in: c.input, out: c.output, bits: c.bits, window_sha256: sha256(c.window), window_zero_prefix: leadingZeros(c.window) }))).toEqual(e.checkpoints);
    // checkpoint 0 is just after the first member's gzip header
    expect(zinfo.checkpoints[0]!.input).toBe(expected.gzip_members[0]!.gzip_header_size);
  });

  it('gives every span range soci gives', () => {
    const spans = zinfo.checkpoints.map((_, i) => {
      const r = spanRange(zinfo, i);
      return { id: i, compressed_start: r.start, compressed_end: r.end, uncompressed_start: r.outStart, uncompressed_end: r.outEnd, digest: `sha256:${ztoc.spanDigests[i]!.toString('hex')}` };
    });
    expect(spans).toEqual(expected.zinfo.spans);
    expect(spans.at(-1)!.compressed_end).toBe(layer.length);
    expect(spans.at(-1)!.uncompressed_end).toBe(tar.length);
  });

  it('has windows that are the 32 KiB of output before each checkpoint (zeros in front before that much)', () => {
    for (const [i, c] of zinfo.checkpoints.entries()) {
      expect(c.window.length, `checkpoint ${i}`).toBe(ZINFO_WINDOW_SIZE);
      const real = Math.min(c.output, ZINFO_WINDOW_SIZE);
      expect(c.window.subarray(ZINFO_WINDOW_SIZE - real).equals(tar.subarray(c.output - real, c.output)), `checkpoint ${i}`).toBe(true);
      expect(leadingZeros(c.window.subarray(0, ZINFO_WINDOW_SIZE - real)), `checkpoint ${i}`).toBe(ZINFO_WINDOW_SIZE - real);
      // views of the zTOC, not copies
      expect(c.window.buffer, `checkpoint ${i}`).toBe(ztoc.checkpoints.buffer);
    }
  });

  it('has span digests that are sha256 of each span\'s compressed bytes', () => {
    for (let i = 0; i <= ztoc.maxSpanId; i++) {
      const r = spanRange(zinfo, i);
      expect(sha256(layer.subarray(r.start, r.end)), `span ${i}`).toBe(ztoc.spanDigests[i]!.toString('hex'));
    }
  });

  it('decodes each span from its own bytes, its checkpoint\'s bits and window alone', () => {
    for (const [i, c] of zinfo.checkpoints.entries()) {
      const r = spanRange(zinfo, i);
      const out = Buffer.alloc(r.outEnd - r.outStart);
      // the project's inflater takes the window's real bytes only (before 32 KiB of output, fewer)
      gzipExtractInto(layer.subarray(r.start, r.end), c.bits, c.window.subarray(ZINFO_WINDOW_SIZE - Math.min(c.output, ZINFO_WINDOW_SIZE)), 0, out);
      expect(out.equals(tar.subarray(r.outStart, r.outEnd)), `span ${i}`).toBe(true);
    }
    // and the windows matter: without them some span decodes to something else, or not at all
    const withoutWindows = zinfo.checkpoints.filter((c, i) => {
      const r = spanRange(zinfo, i);
      const out = Buffer.alloc(r.outEnd - r.outStart);
      try {
        gzipExtractInto(layer.subarray(r.start, r.end), c.bits, Buffer.alloc(ZINFO_WINDOW_SIZE), 0, out);
      } catch {
        return false;
      }
      return out.equals(tar.subarray(r.outStart, r.outEnd));
    });
    expect(withoutWindows.length).toBeLessThan(zinfo.checkpoints.length - 1);
  });

  it('refuses the zinfo cut short anywhere (every 97th byte), always with a SociFormatError', () => {
    for (let cut = 0; cut < ztoc.checkpoints.length; cut += 97) {
      expect(() => decodeZinfo(ztoc.checkpoints.subarray(0, cut), ztoc), `cut at ${cut}`).toThrow(SociFormatError);
    }
  });
});

describe('a real zinfo with one thing broken', () => {
  const ztoc = decodeZtoc(read('layer.ztoc'));
  const original = ztoc.checkpoints;
  const patched = (patch: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(original);
    patch(b);
    return b;
  };
  const at = (k: number): number => HEADER + k * CHECKPOINT;
  const refused = (bytes: Buffer, message: RegExp, owner: ZinfoOwner = ztoc): void => {
    expect(() => decodeZinfo(bytes, owner)).toThrow(SociFormatError);
    expect(() => decodeZinfo(bytes, owner)).toThrow(message);
  };

  it('reads a v1 blob (checkpoint 0 left out) as soci does: checkpoint 0 implied', () => {
    // the real checkpoint 0 is exactly the implied one: a 10-byte gzip header, a zero window
    const v1 = Buffer.concat([original.subarray(0, HEADER), original.subarray(at(1))]);
    const z1 = decodeZinfo(v1, ztoc);
    const z2 = decodeZinfo(original, ztoc);
    expect(z1.version).toBe(1);
    expect(z1.checkpoints.length).toBe(6);
    expect(z1.checkpoints.map((c) => [c.input, c.output, c.bits, sha256(c.window)])).toEqual(z2.checkpoints.map((c) => [c.input, c.output, c.bits, sha256(c.window)]));
    expect(z1.checkpoints[0]!.window.buffer).not.toBe(original.buffer);
    expect(spanRange(z1, 0)).toEqual(spanRange(z2, 0));
  });

  it('refuses a length that is neither v1 nor v2 for the count', () => {
    for (const bytes of [Buffer.alloc(0), original.subarray(0, 11), original.subarray(0, HEADER), original.subarray(0, -1), Buffer.concat([original, Buffer.alloc(1)])]) {
      expect(() => decodeZinfo(bytes, ztoc), `${bytes.length} bytes`).toThrow(SociFormatError);
    }
    refused(Buffer.concat([original, Buffer.alloc(CHECKPOINT)]), /196722\+32785|229507 bytes do not hold 6 checkpoints/);
  });

  it('refuses a count below one, or one the bytes cannot hold', () => {
    refused(patched((b) => b.writeInt32LE(0, 0)), /0 checkpoints \(at least one expected\)/);
    refused(patched((b) => b.writeInt32LE(-1, 0)), /-1 checkpoints/);
    refused(patched((b) => b.writeInt32LE(0x7fffffff, 0)), /do not hold 2147483647 checkpoints/);
  });

  it('refuses a count other than max_span_id + 1 and the number of span digests', () => {
    refused(original, /6 checkpoints, but the zTOC has max_span_id 4 and 6 span digests/, { ...ztoc, maxSpanId: 4 });
    refused(original, /max_span_id 5 and 5 span digests/, { ...ztoc, spanDigests: ztoc.spanDigests.slice(1) });
    const five = Buffer.concat([original.subarray(0, at(5))]);
    five.writeInt32LE(5, 0);
    refused(five, /5 checkpoints, but the zTOC has max_span_id 5/);
  });

  it('refuses a span size that is not positive', () => {
    refused(patched((b) => b.writeBigInt64LE(0n, 4)), /span size 0 is not positive/);
    refused(patched((b) => b.writeBigInt64LE(-65536n, 4)), /span size -65536/);
  });

  it('refuses a first checkpoint that is not at output 0', () => {
    refused(patched((b) => b.writeBigInt64LE(1n, at(0) + 8)), /checkpoint 0 .*the first checkpoint is not at the start of the output/);
  });

  it('refuses checkpoints out of order', () => {
    refused(patched((b) => b.writeBigInt64LE(BigInt(b.readUInt32LE(at(1))), at(2))), /checkpoint 2 \(in 20598, out 400777, bits 0\): not after checkpoint 1 \(in 20598, out 318857\)/);
    refused(patched((b) => b.writeBigInt64LE(318857n, at(2) + 8)), /checkpoint 2 .*not after checkpoint 1/);
    refused(patched((b) => b.writeBigInt64LE(10n, at(1))), /checkpoint 1 .*not after checkpoint 0/);
  });

  it('refuses bits over 7, and bits before the first byte', () => {
    refused(patched((b) => (b[at(3) + 16] = 8)), /checkpoint 3 \(in 184487, out 482697, bits 8\): bits is over 7/);
    refused(patched((b) => (b[at(3) + 16] = 0xff)), /bits 255/);
    refused(
      patched((b) => {
        b.writeBigInt64LE(0n, at(0));
        b[at(0) + 16] = 3;
      }),
      /checkpoint 0 .*starts inside the byte before the stream/,
    );
  });

  it('refuses a checkpoint outside the layer', () => {
    refused(patched((b) => b.writeBigInt64LE(BigInt(ztoc.compressedArchiveSize + 1), at(5))), /checkpoint 5 .*in lies outside the 311297-byte layer/);
    refused(patched((b) => b.writeBigInt64LE(-1n, at(5) + 8)), /checkpoint 5 .*out is negative/);
    refused(patched((b) => b.writeBigInt64LE(-1n, at(0))), /in lies outside/);
    refused(patched((b) => b.writeBigInt64LE(2n ** 53n, at(5))), /checkpoint 5 in \(byte \d+\): 9007199254740992 is beyond/);
  });

  it('accepts a checkpoint at the very end of the layer, and one past the tar\'s end marker (padding after it)', () => {
    expect(decodeZinfo(patched((b) => b.writeBigInt64LE(BigInt(ztoc.uncompressedArchiveSize + 512), at(5) + 8)), ztoc).checkpoints[5]!.output).toBe(ztoc.uncompressedArchiveSize + 512);
    const z = decodeZinfo(
      patched((b) => {
        b.writeBigInt64LE(BigInt(ztoc.compressedArchiveSize), at(5));
        b.writeBigInt64LE(BigInt(ztoc.uncompressedArchiveSize), at(5) + 8);
        b[at(5) + 16] = 0;
      }),
      ztoc,
    );
    expect(spanRange(z, 5)).toEqual({ start: 311297, end: 311297, outStart: 708608, outEnd: 708608 });
  });

  it('reads no zinfo of an uncompressed layer (soci stores another structure there)', () => {
    refused(original, /the zTOC's algorithm is uncompressed, and only gzip checkpoints are read/, { ...ztoc, algorithm: 'uncompressed' });
  });

  it('throws a RangeError for a span that is not there (a caller\'s bug)', () => {
    const z = decodeZinfo(original, ztoc);
    for (const i of [-1, 6, 0.5, NaN]) expect(() => spanRange(z, i), `${i}`).toThrow(RangeError);
  });

  it('throws only SociFormatError, whatever single byte of the header or a checkpoint\'s fields changes', () => {
    const fields = [...Array(HEADER).keys(), ...[0, 1, 2, 3, 4, 5].flatMap((k) => [...Array(17).keys()].map((j) => at(k) + j))];
    let failures = 0;
    for (const p of fields) {
      for (const value of [0, 1, 0x7f, 0x80, 0xff]) {
        try {
          decodeZinfo(patched((b) => (b[p] = value)), ztoc);
        } catch (e) {
          if (!(e instanceof SociFormatError)) throw e;
          failures++;
        }
      }
    }
    expect(failures).toBeGreaterThan(fields.length);
  });
});
