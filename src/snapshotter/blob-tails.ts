// The tails of an image's eStargz layers, each read in one request. A TOC lies at the end of its
// layer, behind a footer that says where it starts: reading the footer and then the TOC is two round
// trips, and one read of the tail usually holds both. The first layer's tail is asked for as soon
// as its Prepare names it, beside the image's manifest (a suffix range needs no size); the other
// layers' once the manifest gives their sizes, each long enough for a TOC of its layer's size. A
// tail is only a copy of bytes the reader would have fetched: what they are is checked as ever (the
// TOC against its digest).
import type { BlobRangeReader } from '../image/stargz-image.js';
import type { BlobTail, ImageStore } from '../registry/image-store.js';

/** The first layer's tail, its size unknown: most TOCs fit (debian-ml's largest is 309 KB). */
export const FIRST_TAIL = 512 << 10;
const MIN_TAIL = 64 << 10;
const MAX_TAIL = 1 << 20;

/** How much of a layer of `size` bytes to read as its tail: 1/128 of it (debian-ml's TOCs are 0.3 to 0.6 %), within 64 KiB to 1 MiB. */
export const tailLength = (size: number): number => Math.min(MAX_TAIL, Math.max(MIN_TAIL, Math.ceil(size / 128)));

export class BlobTails {
  private readonly tails = new Map<string, Promise<BlobTail | undefined>>();

  constructor(private readonly store: Promise<ImageStore>) {}

  /** Starts reading the last `length` bytes of blob `digest`, unless its tail is asked for already. */
  prefetch(digest: string, length: number): void {
    if (this.tails.has(digest)) return;
    // a store without suffix ranges, or a failed read: the reads go to the store as they come
    this.tails.set(digest, this.store.then((s) => s.getBlobTail?.(digest, length)).catch(() => undefined));
  }

  /** `length` bytes at `offset` of blob `digest`: from its tail when that holds them (the part before it read), else from the store. */
  readonly read: BlobRangeReader = async (digest, offset, length) => {
    const tail = await this.tails.get(digest);
    const store = await this.store;
    const tailStart = tail ? tail.size - tail.bytes.length : Infinity;
    if (!tail || offset + length <= tailStart || offset + length > tail.size) return store.getBlobRange(digest, offset, length);
    const inTail = tail.bytes.subarray(Math.max(0, offset - tailStart), offset + length - tailStart);
    return offset >= tailStart ? Buffer.from(inTail) : Buffer.concat([await store.getBlobRange(digest, offset, tailStart - offset), inTail]);
  };
}
