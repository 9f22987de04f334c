// Content digests (`algorithm:hex`): validation, hashing, and a pass-through stream that verifies as it goes,
// so no caller ever sees the end of a blob whose bytes are not the ones it asked for.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestMismatchError } from './errors.js';

/** Hex length of each algorithm the client can verify (the OCI-registered ones). */
const ENCODED_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

export class InvalidDigestError extends Error {
  constructor(readonly digest: string, reason: string) {
    super(`invalid digest "${digest}": ${reason}`);
    this.name = 'InvalidDigestError';
  }
}

/** Returns `digest` when it is `sha256:<64 hex>` or `sha512:<128 hex>` (lowercase), else throws InvalidDigestError. */
export function validateDigest(digest: string): string {
  const colon = digest.indexOf(':');
  if (colon <= 0) throw new InvalidDigestError(digest, 'expected algorithm:hex');
  const algorithm = digest.slice(0, colon);
  const encoded = digest.slice(colon + 1);
  const length = ENCODED_LENGTH[algorithm];
  if (length === undefined) throw new InvalidDigestError(digest, `unsupported algorithm ${algorithm} (sha256, sha512)`);
  if (encoded.length !== length || !/^[0-9a-f]+$/.test(encoded)) {
    throw new InvalidDigestError(digest, `${algorithm} needs ${length} lowercase hex digits`);
  }
  return digest;
}

export function isDigest(value: string): boolean {
  try {
    validateDigest(value);
    return true;
  } catch {
    return false;
  }
}

function algorithmOf(digest: string): string {
  return validateDigest(digest).slice(0, digest.indexOf(':'));
}

export function computeDigest(bytes: Uint8Array, algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/** Throws DigestMismatchError unless `bytes` hash to `expected`; `where` names the source for the message. */
export function verifyDigest(bytes: Uint8Array, expected: string, where: string): void {
  const actual = computeDigest(bytes, algorithmOf(expected));
  if (actual !== expected) throw new DigestMismatchError(expected, actual, where);
}

/**
 * Passes bytes through unchanged and fails the stream at its end with DigestMismatchError when they do not
 * hash to `expected`. The consumer therefore gets an error, never a clean end, for a corrupted blob.
 */
export class DigestVerifier extends Transform {
  private readonly hash: Hash;
  private readonly algorithm: string;
  private bytesSeen = 0;

  constructor(
    private readonly expected: string,
    private readonly where: string,
  ) {
    super();
    this.algorithm = algorithmOf(expected);
    this.hash = createHash(this.algorithm);
  }

  /** Bytes passed through so far. */
  get size(): number {
    return this.bytesSeen;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytesSeen += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = `${this.algorithm}:${this.hash.digest('hex')}`;
    callback(actual === this.expected ? null : new DigestMismatchError(this.expected, actual, this.where));
  }
}
