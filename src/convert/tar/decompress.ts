// Opens an OCI layer blob as a tar byte stream: sniffs the first bytes and decompresses gzip
// (multi-member) or zstd (streaming, native), or passes a plain tar through.

import { once } from 'node:events';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ZstdDecompressStream } from '../../native/index.js';
import { LayerDecompressError } from './errors.js';

export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** A streaming zstd decoder: the native `ZstdDecompressStream` (src/native/index.ts) by default. */
export interface ZstdStreamDecoder {
  /** Feeds compressed bytes; pull() then returns the output they complete. */
  push(chunk: Uint8Array): void;
  /**
   * The next bounded piece of output, empty once this input is all decoded: a few KiB of input
   * may expand to gigabytes, so its output is taken a piece at a time, as the consumer asks.
   */
  pull(): Buffer;
  /** Declares the end of the input; throws if it ended inside a frame. */
  end(): void;
}

export interface OpenLayerOptions {
  /** Makes a zstd decoder; default: the native module's `ZstdDecompressStream`. */
  zstdDecoder?: () => ZstdStreamDecoder;
}

/** How many leading bytes are enough to tell the formats apart. */
const SNIFF_BYTES = 6;

/** Identifies a layer's compression from its first bytes; other known compressors are refused. */
export function detectCompression(head: Uint8Array): LayerCompression {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.length >= 4) {
    const magic = b.readUInt32LE(0);
    // a zstd frame, or a skippable frame (zstd:chunked puts its metadata in those)
    if (magic === 0xfd2fb528 || (magic & 0xfffffff0) === 0x184d2a50) return 'zstd';
  }
  if (b.length >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
    throw new LayerDecompressError('xz-compressed layers are not supported (only gzip and zstd)', 'unknown');
  }
  if (b.length >= 3 && b.toString('latin1', 0, 3) === 'BZh') {
    throw new LayerDecompressError('bzip2-compressed layers are not supported (only gzip and zstd)', 'unknown');
  }
  return 'none';
}

function asBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`layer source yielded ${typeof chunk}, expected Buffer/Uint8Array chunks`);
}

/**
 * The layer's tar bytes: gzip and zstd are decompressed as they stream, anything else passes
 * through unchanged (the tar parser judges it). A corrupt or truncated compressed stream throws
 * LayerDecompressError; errors of the source itself pass through as they are. Ending the
 * iteration early closes the source.
 */
export async function* openLayerStream(source: AsyncIterable<Uint8Array> | Readable, opts: OpenLayerOptions = {}): AsyncGenerator<Buffer, void, undefined> {
  const it = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  let sourceDone = false;
  const head: Buffer[] = [];
  let headBytes = 0;
  try {
    while (headBytes < SNIFF_BYTES) {
      const r = await it.next();
      if (r.done) {
        sourceDone = true;
        break;
      }
      const chunk = asBuffer(r.value);
      head.push(chunk);
      headBytes += chunk.length;
    }

    async function* all(): AsyncGenerator<Buffer, void, undefined> {
      yield* head;
      while (!sourceDone) {
        const r = await it.next();
        if (r.done) {
          sourceDone = true;
          return;
        }
        yield asBuffer(r.value);
      }
    }

    const kind = detectCompression(Buffer.concat(head, Math.min(headBytes, 16)));
    if (kind === 'none') {
      yield* all();
    } else if (kind === 'gzip') {
      yield* gunzip(all());
    } else {
      const decoder = opts.zstdDecoder ? opts.zstdDecoder() : new ZstdDecompressStream();
      for await (const chunk of all()) {
        zstdStep(() => decoder.push(chunk));
        for (let out = zstdStep(() => decoder.pull()); out.length > 0; out = zstdStep(() => decoder.pull())) yield out;
      }
      zstdStep(() => decoder.end());
    }
  } finally {
    if (!sourceDone) {
      sourceDone = true;
      await it.return?.();
    }
  }
}

/** Runs one call into the zstd decoder, reporting its errors as a corrupt layer. */
function zstdStep<T>(call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw new LayerDecompressError(`corrupt zstd layer: ${(err as Error).message}`, 'zstd', { cause: err });
  }
}

async function* gunzip(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer, void, undefined> {
  // 1 MiB output pieces: the tar parser and chunker then see few, large slices
  const gz = createGunzip({ chunkSize: 1 << 20 });
  const feed = (async () => {
    for await (const chunk of input) {
      if (gz.destroyed) return;
      if (!gz.write(chunk)) await once(gz, 'drain');
    }
    gz.end();
  })();
  feed.catch((err: Error) => gz.destroy(err));
  try {
    for await (const chunk of gz) yield chunk as Buffer;
    await feed;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('Z_')) {
      throw new LayerDecompressError(`corrupt gzip layer: ${(err as Error).message}`, 'gzip', { cause: err });
    }
    throw err;
  } finally {
    gz.destroy();
  }
}
