// Where blob bytes come from. Every backend answers the same two questions, so the fetcher and
// cache above it never know whether a blob lives in a directory or a registry.

export interface BlobBackend {
  /**
   * Exactly `length` bytes at `offset` of blob `blobId`, or a rejection. A backend that streams may
   * report the bytes as they arrive to `progress` (`buf` is filled up to `filled`; it may start
   * over from 0 when a request is retried). `signal` gives up on the read (its connection, retries
   * and failover included).
   */
  readRange(blobId: string, offset: number, length: number, progress?: (buf: Buffer, filled: number) => void, signal?: AbortSignal): Promise<Buffer>;
  /** Bytes this backend gave for `blobId` did not verify; one that knows other sources of it asks another next. */
  demote?(blobId: string): void;
  /** Size of the blob object in bytes. */
  size(blobId: string): Promise<number>;
  close(): Promise<void>;
}

export class BlobNotFoundError extends Error {
  constructor(readonly blobId: string, where: string) {
    super(`blob ${blobId} not found in ${where}`);
  }
}

export class ShortReadError extends Error {}
