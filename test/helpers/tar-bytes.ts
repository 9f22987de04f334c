// A tar archive made in memory by TarWriter calls, for tests that feed layers.
import { PassThrough } from 'node:stream';
import { TarWriter } from '../../src/convert/tar/write.js';

/** The archive `build` writes (then ended), in one buffer. */
export async function tarBytes(build: (tar: TarWriter) => Promise<void>): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const tar = new TarWriter(out);
  await build(tar);
  await tar.finish();
  return Buffer.concat(chunks);
}

/** `bytes` as the one piece of an async stream. */
export async function* streamOf(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}
