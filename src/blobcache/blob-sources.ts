// Where each blob can be read, for a cache that serves several images at once: a blob is content
// addressed, so any registry (or mirror, or directory) that holds it will do. Every image that
// mounts registers its blobs with its backends in order of preference (mirrors first, then the
// image's own registry); a read tries them in that order and fails over on an error, so one dead
// mirror costs one failed request, not a failed read. Integrity is checked above, by the fetcher,
// which says so (`demote`) when a backend's bytes did not verify: the blob's next read starts at the
// next backend. Images are untrusted toward each other, and the first image to name a blob must
// not be able to make every other image's reads of it fail by offering a backend that lies.
// A backend that fails `failureLimit` reads in a row (a mirror that is down) is asked last for
// `recheckMs` — each read would otherwise pay its retries before failing over — then tried first
// again, as nydusd's mirror failure_limit / health_check_interval do; back to the origin meanwhile.
import { BlobNotFoundError, type BlobBackend } from './backend.js';
import { log } from '../util/log.js';

export interface BlobSourcesOptions {
  /** Failed reads in a row after which a backend is asked last. Default 3. */
  failureLimit?: number;
  /** How long it stays last. Default 10 s. */
  recheckMs?: number;
}

export interface BlobSourceStats {
  /** Reads that failed on one backend and went on to the next. */
  failovers: number;
}

export class BlobSources implements BlobBackend {
  readonly stats: BlobSourceStats = { failovers: 0 };
  /** blobId → (owner → that owner's backends, most preferred first). */
  private readonly sources = new Map<string, Map<object, readonly BlobBackend[]>>();
  /** blobId → the backend whose answer came last. */
  private readonly lastServed = new Map<string, BlobBackend>();
  /** blobId → backends whose bytes did not verify: asked after the others. */
  private readonly distrusted = new Map<string, Set<BlobBackend>>();
  /** Backends failing now: reads failed in a row, and until when they are asked last. */
  private readonly failing = new Map<BlobBackend, { count: number; downUntil: number }>();
  private readonly failureLimit: number;
  private readonly recheckMs: number;

  constructor(options: BlobSourcesOptions = {}) {
    this.failureLimit = options.failureLimit ?? 3;
    this.recheckMs = options.recheckMs ?? 10_000;
  }

  /** Lets `owner` (an image mount) offer `backends` for `blobIds` until it is released. */
  add(owner: object, blobIds: Iterable<string>, backends: readonly BlobBackend[]): void {
    if (backends.length === 0) throw new Error('a blob needs at least one backend');
    for (const id of blobIds) {
      let owners = this.sources.get(id);
      if (!owners) this.sources.set(id, (owners = new Map()));
      owners.set(owner, backends);
    }
  }

  /** Withdraws `owner`'s backends; returns the blobs nobody offers any more. */
  release(owner: object): string[] {
    const gone: string[] = [];
    for (const [id, owners] of this.sources) {
      owners.delete(owner);
      if (owners.size === 0) {
        this.sources.delete(id);
        this.lastServed.delete(id);
        this.distrusted.delete(id);
        gone.push(id);
      }
    }
    return gone;
  }

  has(blobId: string): boolean {
    return this.sources.has(blobId);
  }

  /** The backend that served `blobId` last gave bytes that did not verify: it is asked after the others from now on. */
  demote(blobId: string): void {
    const served = this.lastServed.get(blobId);
    if (!served) return;
    let set = this.distrusted.get(blobId);
    if (!set) this.distrusted.set(blobId, (set = new Set()));
    set.add(served);
  }

  private candidates(blobId: string): BlobBackend[] {
    const owners = this.sources.get(blobId);
    if (!owners) throw new BlobNotFoundError(blobId, 'the backends of any mounted image');
    const all = [...new Set([...owners.values()].flat())];
    const distrusted = this.distrusted.get(blobId) ?? new Set();
    const now = Date.now();
    const down = (b: BlobBackend): boolean => (this.failing.get(b)?.downUntil ?? 0) > now;
    // trusted and up, then up but distrusted, then down (still asked: maybe all are)
    const rank = (b: BlobBackend): number => (down(b) ? 2 : distrusted.has(b) ? 1 : 0);
    return all.map((b, i) => ({ b, i, r: rank(b) })).sort((x, y) => x.r - y.r || x.i - y.i).map((x) => x.b);
  }

  private failed(backend: BlobBackend): void {
    const f = this.failing.get(backend) ?? { count: 0, downUntil: 0 };
    f.count++;
    if (f.count >= this.failureLimit) f.downUntil = Date.now() + this.recheckMs;
    this.failing.set(backend, f);
  }

  async readRange(blobId: string, offset: number, length: number, progress?: (buf: Buffer, filled: number) => void, signal?: AbortSignal): Promise<Buffer> {
    return this.tryEach(blobId, (b) => b.readRange(blobId, offset, length, progress, signal), signal);
  }

  async size(blobId: string): Promise<number> {
    return this.tryEach(blobId, (b) => b.size(blobId));
  }

  private async tryEach<T>(blobId: string, op: (b: BlobBackend) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const all = this.candidates(blobId);
    let last: unknown;
    for (const [i, backend] of all.entries()) {
      try {
        const answer = await op(backend);
        this.lastServed.set(blobId, backend);
        this.failing.delete(backend);
        return answer;
      } catch (err) {
        last = err;
        // given up on: no other backend is asked, and this one is not to blame
        if (signal?.aborted) break;
        this.failed(backend);
        if (i < all.length - 1) {
          this.stats.failovers++;
          log.warn('a source of a blob failed: the next one is asked', { blobId, source: i, error: (err as Error).message });
        }
      }
    }
    throw last;
  }

  /** The backends themselves belong to their owners, who close them. */
  async close(): Promise<void> {
    this.sources.clear();
  }
}
