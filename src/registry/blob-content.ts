// What a blob push reads from: bytes in memory, a file, a function that opens a stream (so an upload can be
// restarted after a transient failure, or skipped without ever opening the source), or a one-shot stream.
import { createReadStream } from 'node:fs';

export type BlobStream = AsyncIterable<Uint8Array>;

export type BlobContent = Uint8Array | { path: string } | (() => BlobStream | Promise<BlobStream>) | BlobStream;

export interface BlobSource {
  /** A fresh stream of the content; a one-shot stream can be opened once only. */
  open(): Promise<BlobStream>;
  /** Whether `open` may be called again (an upload restart needs it). */
  readonly reopenable: boolean;
}

async function* bytesOf(bytes: Uint8Array): BlobStream {
  yield bytes;
}

export function blobSource(content: BlobContent): BlobSource {
  if (content instanceof Uint8Array) return { reopenable: true, open: async () => bytesOf(content) };
  if (typeof content === 'function') return { reopenable: true, open: async () => content() };
  // checked first: an fs.ReadStream is iterable and also has a `path`
  if (!(Symbol.asyncIterator in content)) {
    const { path } = content;
    return { reopenable: true, open: async () => createReadStream(path) };
  }
  const stream = content;
  let opened = false;
  return {
    reopenable: false,
    open: async () => {
      if (opened) throw new Error('a blob stream can be read once only; pass a path or a function that opens it to allow retries');
      opened = true;
      return stream;
    },
  };
}
