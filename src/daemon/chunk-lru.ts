// A few recently decoded chunks per serving thread: kernel readahead asks for one chunk's pages in
// several requests, and decoding (or even a pread) per request would repeat the work.

export class ChunkLru {
  private readonly entries = new Map<string, Buffer>();

  constructor(private readonly capacity: number) {}

  /** The chunk `blobIndex:ciIndex`, marked most recently used. */
  get(key: string): Buffer | undefined {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    return hit;
  }

  put(key: string, data: Buffer): void {
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, data);
  }

  clear(): void {
    this.entries.clear();
  }
}
