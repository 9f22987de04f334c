// A file-backed BlockDevice for the NBD server's tests: random bytes with zero holes where the test says,
// the holes reported as extents, and hooks to slow down or fail reads.
import { randomBytes } from 'node:crypto';
import { open, writeFile, type FileHandle } from 'node:fs/promises';
import type { BlockDevice } from '../../src/block/nbd/device.js';

export interface Range {
  offset: number;
  length: number;
}

export class FileBlockDevice implements BlockDevice {
  /** Reads asked of the device (holes are never asked for). */
  reads: Range[] = [];
  /** Called before each read: may wait (to hold requests in flight) or throw (a failing device). */
  beforeRead: ((r: Range) => Promise<void> | void) | undefined;

  private constructor(
    private readonly file: FileHandle,
    readonly size: number,
    private readonly holes: Range[],
  ) {}

  /** Writes `size` random bytes with `holes` zeroed to `path` and serves them; also returns the bytes. */
  static async create(path: string, size: number, holes: Range[]): Promise<{ device: FileBlockDevice; content: Buffer }> {
    const content = randomBytes(size);
    for (const h of holes) content.fill(0, h.offset, h.offset + h.length);
    await writeFile(path, content);
    const sorted = [...holes].sort((a, b) => a.offset - b.offset);
    return { device: new FileBlockDevice(await open(path, 'r'), size, sorted), content };
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.reads.push({ offset, length });
    await this.beforeRead?.({ offset, length });
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.file.read(buf, 0, length, offset);
    if (bytesRead !== length) throw new Error(`short read at ${offset}`);
    return buf;
  }

  extents(offset: number, length: number): { length: number; hole: boolean }[] {
    const out: { length: number; hole: boolean }[] = [];
    const end = offset + length;
    let at = offset;
    for (const h of this.holes) {
      if (h.offset + h.length <= at) continue;
      if (h.offset >= end) break;
      if (h.offset > at) out.push({ length: h.offset - at, hole: false });
      const holeEnd = Math.min(h.offset + h.length, end);
      out.push({ length: holeEnd - Math.max(h.offset, at), hole: true });
      at = holeEnd;
    }
    if (at < end) out.push({ length: end - at, hole: false });
    return out;
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
