// An image mounted in the daemon, seen as a block device: its flat EROFS image (rafs/flat-image.ts)
// read by byte range, every chunk through the daemon's one storage path (the blob cache and fetcher
// for a registry image, the blob file for a local one), verified against this image's own digests.
// This is what the NBD server exports.
import type { ImageMount } from '../daemon/image-mount.js';
import type { FlatImageMap } from '../rafs/flat-image.js';
import type { BlockDevice } from './nbd/device.js';

export class ImageBlockDevice implements BlockDevice {
  private readonly map: FlatImageMap;
  private readonly bootstrap: Buffer;

  constructor(private readonly mount: ImageMount) {
    this.map = mount.flatMap();
    this.bootstrap = mount.bootstrap();
  }

  get size(): number {
    return this.map.size;
  }

  /** [offset, offset + length) of the image; chunks of the range are fetched together. */
  async read(offset: number, length: number): Promise<Buffer> {
    const parts = await Promise.all(this.map.pieces(offset, length).map(async (p) => {
      if (p.kind === 'meta') return this.bootstrap.subarray(p.offset, p.offset + p.length);
      if (p.kind === 'hole') return Buffer.alloc(p.length);
      const chunk = await this.mount.readChunk(p.chunk);
      return chunk.subarray(p.start, p.start + p.length);
    }));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
  }

  /** Which parts of [offset, offset + length) hold data and which are holes (always zeros). */
  extents(offset: number, length: number): { length: number; hole: boolean }[] {
    const out: { length: number; hole: boolean }[] = [];
    for (const p of this.map.pieces(offset, length)) {
      const hole = p.kind === 'hole';
      const last = out[out.length - 1];
      if (last && last.hole === hole) last.length += p.length;
      else out.push({ length: p.length, hole });
    }
    return out;
  }
}
