// Run by abort.test.ts in a child process, one probe per process, because these calls have
// aborted the whole process: `vite-node abort-probe.ts NAME` prints the probe's outcome as JSON.
import { decompress, decompressBatch, lz4BlockCompress, zstdCompress } from '../../src/native/index.js';

/** A 17-byte zstd frame whose header declares `size` bytes of content but which holds only 3. */
function zstdFrameDeclaring(size: bigint): Buffer {
  const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]); // 8-byte content size
  header.writeBigUInt64LE(size, 6);
  return Buffer.concat([header, Buffer.from([0x19, 0, 0]), Buffer.from('abc')]); // last raw block, 3 bytes
}

const abc = Buffer.from('abc');

const probes: Record<string, () => unknown> = {
  'zstd decompress, size 2^50': () => decompress('zstd', zstdCompress(abc), { size: 2 ** 50 }),
  'lz4_block decompress, size 2^40': () => decompress('lz4_block', lz4BlockCompress(abc), { size: 2 ** 40 }),
  'zstd decompressBatch, size 2^50': () => decompressBatch('zstd', [zstdCompress(abc)], [2 ** 50]),
  'zstd frame declaring 2^45 bytes, default maxSize': () => decompress('zstd', zstdFrameDeclaring(2n ** 45n)),
  'zstd frame declaring 2^45 bytes, maxSize 2^50': () => decompress('zstd', zstdFrameDeclaring(2n ** 45n), { maxSize: 2 ** 50 }),
};

const name = process.argv[2];
if (name) {
  const probe = probes[name];
  if (!probe) throw new Error(`no probe '${name}'`);
  try {
    const out = (await probe()) as Buffer | Buffer[];
    console.log(JSON.stringify({ returned: out.length }));
  } catch (err) {
    console.log(JSON.stringify({ code: (err as NodeJS.ErrnoException).code, message: (err as Error).message }));
  }
}
