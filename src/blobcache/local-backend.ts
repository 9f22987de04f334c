// A directory of blob files named by their ids, as `create --blob-dir` writes them.
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobNotFoundError, ShortReadError, type BlobBackend } from './backend.js';
import { isBlobId } from '../rafs/blob.js';


export class LocalDirBackend implements BlobBackend {
  private readonly handles = new Map<string, Promise<FileHandle>>();

  constructor(readonly dir: string) {}

  async readRange(blobId: string, offset: number, length: number): Promise<Buffer> {
    const fh = await this.handle(blobId);
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) {
        throw new ShortReadError(`blob ${blobId}: wanted ${length} bytes at ${offset}, the file ends after ${done}`);
      }
      done += bytesRead;
    }
    return buf;
  }

  async size(blobId: string): Promise<number> {
    return (await (await this.handle(blobId)).stat()).size;
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(all.map(async (h) => (await h.catch(() => undefined))?.close()));
  }

  private handle(blobId: string): Promise<FileHandle> {
    if (!isBlobId(blobId)) return Promise.reject(new BlobNotFoundError(blobId, this.dir));
    let h = this.handles.get(blobId);
    if (!h) {
      h = open(join(this.dir, blobId), 'r').catch((err: NodeJS.ErrnoException) => {
        this.handles.delete(blobId);
        throw err.code === 'ENOENT' ? new BlobNotFoundError(blobId, this.dir) : err;
      });
      this.handles.set(blobId, h);
    }
    return h;
  }
}
