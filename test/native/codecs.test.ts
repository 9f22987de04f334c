// Interop of the addon's codecs with the reference C tools (zstd, gzip, lz4) in both directions:
// whatever we write the CLI must read back bit for bit, and whatever the CLI writes we must read.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compress,
  deflateRawCompress,
  deflateRawDecompress,
  gzipCompress,
  gzipDecompress,
  lz4BlockCompress,
  lz4BlockDecompress,
  zstdCompress,
  zstdDecompress,
} from '../../src/native/index.js';
import { buildLz4Frame, cli, gzipBody, gzipWrap, type Lz4Frame, parseLz4Frame, sample, samples, xxh32 } from './helpers.js';

let dir: string;
let fileSeq = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nydusify-native-codecs-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Some CLI modes only exist for files (the zstd and lz4 headers record the size of a file). */
function tmpFile(data: Uint8Array): string {
  const path = join(dir, `input-${fileSeq++}`);
  writeFileSync(path, data);
  return path;
}

/** Decodes an LZ4 frame's blocks with the addon: every block but the last holds blockMax bytes. */
function decodeLz4Frame(frame: Lz4Frame): Buffer {
  const { blocks, blockMax, contentSize = 0 } = frame;
  const content = Buffer.concat(
    blocks.map((b, i) => {
      const size = i < blocks.length - 1 ? blockMax : contentSize - blockMax * i;
      return b.compressed ? lz4BlockDecompress(b.data, size) : b.data;
    }),
  );
  if (frame.contentChecksum !== undefined) expect(xxh32(content), 'content checksum').toBe(frame.contentChecksum);
  return content;
}

/** Real data this big always has blocks that shrink: then the test did go through the codec. */
const surelyCompressible = (name: string, data: Buffer): boolean => name.startsWith('node') && data.length >= 4096;

describe.each(samples())('$name', ({ name, data }) => {
  describe('zstd', () => {
    it('ours → zstd -d', () => {
      expect(cli('zstd', ['-d', '-c'], zstdCompress(data)).equals(data)).toBe(true);
    });

    it('zstd -c from a pipe (no content size in the frame) → ours', () => {
      const frame = cli('zstd', ['-c', '-3'], data);
      expect(zstdDecompress(frame).equals(data)).toBe(true);
      expect(zstdDecompress(frame, data.length).equals(data)).toBe(true);
    });

    it('zstd -c from a file (content size in the frame) → ours', () => {
      const frame = cli('zstd', ['-c', '-q', tmpFile(data)]);
      expect(zstdDecompress(frame).equals(data)).toBe(true);
      expect(zstdDecompress(frame, data.length).equals(data)).toBe(true);
    });
  });

  describe('gzip', () => {
    it('ours → gzip -d', () => {
      expect(cli('gzip', ['-d', '-c'], gzipCompress(data)).equals(data)).toBe(true);
    });

    it('gzip -c → ours', () => {
      const member = cli('gzip', ['-c', '-n'], data);
      expect(gzipDecompress(member).equals(data)).toBe(true);
      expect(gzipDecompress(member, data.length).equals(data)).toBe(true);
    });

    it('raw deflate from inside a gzip -c member → ours', () => {
      const body = gzipBody(cli('gzip', ['-c', '-n'], data));
      expect(deflateRawDecompress(body).equals(data)).toBe(true);
      expect(deflateRawDecompress(body, data.length).equals(data)).toBe(true);
    });

    it('ours raw deflate wrapped in a gzip member → gzip -d', () => {
      const deflated = deflateRawCompress(data);
      expect(cli('gzip', ['-d', '-c'], gzipWrap(deflated, data)).equals(data)).toBe(true);
      expect(deflateRawDecompress(deflated, data.length).equals(data)).toBe(true);
    });
  });

  describe('lz4 blocks inside LZ4 frames', () => {
    // -B4 / -B6 / -B7: 64 KiB, 1 MiB and 4 MiB blocks; -BX adds block checksums
    it.each([['-B4', '-BX'], ['-B6'], ['-B7', '-BX']])('lz4 -BI %s %s → ours, block by block', (...flags) => {
      const frame = parseLz4Frame(cli('lz4', ['-c', '-q', '-BI', '--content-size', ...flags, tmpFile(data)]));
      if (surelyCompressible(name, data)) expect(frame.blocks.some((b) => b.compressed)).toBe(true);
      expect(decodeLz4Frame(frame).equals(data)).toBe(true);
    });

    it.each([4, 6, 7])('ours in a frame with BD id %i → lz4 -d', (blockSizeId) => {
      const frame = buildLz4Frame(data, blockSizeId, lz4BlockCompress);
      const parsed = parseLz4Frame(frame);
      if (surelyCompressible(name, data)) expect(parsed.blocks.some((b) => b.compressed)).toBe(true);
      expect(cli('lz4', ['-d', '-c'], frame).equals(data)).toBe(true);
    });

    it('ours → ours', () => {
      expect(lz4BlockDecompress(lz4BlockCompress(data), data.length).equals(data)).toBe(true);
    });
  });
});

describe('concatenations', () => {
  const a = sample('node binary 1 MiB');
  const b = sample('random 4 KiB');
  const both = Buffer.concat([a, b]);

  it('a multi-member gzip (two gzip -c outputs) decodes to the concatenation', () => {
    const gz = Buffer.concat([cli('gzip', ['-c', '-n'], a), cli('gzip', ['-c', '-n'], b)]);
    expect(gzipDecompress(gz).equals(both)).toBe(true);
    expect(gzipDecompress(gz, both.length).equals(both)).toBe(true);
  });

  it('two zstd frames (with and without content size) decode to the concatenation', () => {
    const zst = Buffer.concat([cli('zstd', ['-c', '-q', tmpFile(a)]), cli('zstd', ['-c'], b)]);
    expect(zstdDecompress(zst).equals(both)).toBe(true);
    expect(zstdDecompress(zst, both.length).equals(both)).toBe(true);
  });
});

describe('compression levels', () => {
  const data = sample('node binary 1 MiB');

  it.each([-5, 1, 3, 9, 19])('zstd level %i → zstd -d', (level) => {
    expect(cli('zstd', ['-d', '-c'], compress('zstd', data, level)).equals(data)).toBe(true);
  });

  it('higher zstd levels compress real data smaller', () => {
    expect(compress('zstd', data, 19).length).toBeLessThan(compress('zstd', data, 1).length);
  });

  it.each([0, 1, 6, 9, 12])('gzip level %i → gzip -d', (level) => {
    expect(cli('gzip', ['-d', '-c'], compress('gzip', data, level)).equals(data)).toBe(true);
  });
});
