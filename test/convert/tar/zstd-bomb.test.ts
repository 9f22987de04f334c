// Regression (issue #11): a zstd layer of a few KiB can expand to gigabytes. The streaming decoder
// used to decode a whole input piece at once (a 33 KB layer took `create` to 1.2 GB of RSS); it
// must hand out bounded pieces as the consumer asks for them, like the gzip path.
import { mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLayerStream } from '../../../src/convert/tar/decompress.js';
import { blake3Raw, decompress, zstdCompress } from '../../../src/native/index.js';
import { RafsImage } from '../../../src/rafs/reader.js';
import { runCli } from '../../helpers/cli.js';
import { chunked, header } from './helpers.js';

const MiB = 1 << 20;
const GiB = 1 << 30;
const zeros = Buffer.alloc(MiB);

/** A tar of one 1 GiB file of zeros, zstd-compressed to ~35 KB: 128 frames of 8 MiB of zeros each. */
function zstdBomb(): { tarHeader: Buffer; layer: Buffer } {
  const tarHeader = header({ name: 'zeros', size: GiB });
  const frame = zstdCompress(Buffer.alloc(8 * MiB));
  // the file's zeros, then the end-of-archive blocks (zeros too)
  const layer = Buffer.concat([zstdCompress(tarHeader), ...Array<Buffer>(128).fill(frame), zstdCompress(Buffer.alloc(1024))]);
  return { tarHeader, layer };
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'zstd-bomb-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('regression: zstd bomb', () => {
  it('openLayerStream hands out the 1 GiB of a 35 KB layer in pieces of at most 1 MiB, all correct', async () => {
    const { tarHeader, layer } = zstdBomb();
    expect(layer.length).toBeLessThan(40_000);
    let offset = 0;
    let largest = 0;
    for await (const piece of openLayerStream(chunked(layer))) {
      largest = Math.max(largest, piece.length);
      // the header first, zeros after it
      for (let at = 0; at < piece.length; ) {
        const want = offset < tarHeader.length ? tarHeader.subarray(offset) : zeros;
        const n = Math.min(want.length, piece.length - at);
        expect(piece.subarray(at, at + n).equals(want.subarray(0, n))).toBe(true);
        at += n;
        offset += n;
      }
    }
    expect(offset).toBe(tarHeader.length + GiB + 1024);
    expect(largest).toBeLessThanOrEqual(MiB);
  });

  it('`create` from the bomb layer peaks under 300 MB of RSS and stores the file right', () => {
    const { layer } = zstdBomb();
    const src = join(work, 'bomb.tar.zst');
    writeFileSync(src, layer);
    // the child reports its peak RSS as it exits: VmHWM, not getrusage's maxRSS, which exec keeps
    // from the (large) test worker the child was forked from
    const probe = join(work, 'peak-rss.mjs');
    writeFileSync(probe, "import { readFileSync } from 'node:fs';\nprocess.on('exit', () => process.stderr.write(/VmHWM:.*\\n/.exec(readFileSync('/proc/self/status', 'utf8'))[0]));\n");
    const bootstrap = join(work, 'bootstrap');
    const r = runCli(['create', src, '--bootstrap', bootstrap, '--blob-dir', work, '--compressor', 'zstd', '--digester', 'blake3', '--chunk-size', '0x100000'], {
      env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(probe).href}` },
    });
    expect(r.status, r.stderr).toBe(0);
    const peakKiB = Number(/VmHWM:\s*(\d+) kB/.exec(r.stderr)?.[1]);
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB / 1024).toBeLessThan(300);

    const rafs = RafsImage.open(readFileSync(bootstrap));
    const file = [...rafs.walk()].find((e) => e.path === '/zeros')!;
    expect(file.inode.size).toBe(GiB);
    const chunks = rafs.chunks(file.nid);
    expect(chunks).toHaveLength(1024);
    const zeroDigest = blake3Raw(zeros);
    expect(chunks.every((c) => c.digest.equals(zeroDigest) && c.uncompressedSize === MiB)).toBe(true);
    // the one stored chunk decodes to the zeros it claims
    const c = chunks[0]!;
    const stored = Buffer.alloc(c.compressedSize);
    const fd = openSync(join(work, rafs.blobs[c.blobIndex]!.blobId), 'r');
    try {
      readSync(fd, stored, 0, stored.length, c.compressedOffset);
    } finally {
      closeSync(fd);
    }
    expect((c.compressed ? decompress('zstd', stored, { size: MiB }) : stored).equals(zeros)).toBe(true);
  });
});
