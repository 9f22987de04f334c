// Typed errors of the stargz reader. Everything read from a layer is untrusted: a layer that is not
// of a stargz kind at all, a malformed or hostile one, and a TOC whose digest does not match what
// the manifest promised are three different answers for a caller (fall back to a full pull; refuse;
// refuse loudly), so each has its own class.

/** Malformed, hostile or unsupported stargz data; the message says what and where. */
export class StargzFormatError extends Error {
  override readonly name: string = 'StargzFormatError';
  readonly code: string = 'ERR_STARGZ_FORMAT';
}

/**
 * The layer ends in no eStargz, legacy stargz or zstd:chunked footer: a plain gzip/zstd layer,
 * which a snapshotter pulls whole instead.
 */
export class NotStargzError extends StargzFormatError {
  override readonly name = 'NotStargzError';
  override readonly code = 'ERR_NOT_STARGZ';
}

/** The TOC read from the layer is not the one the manifest's annotation names. */
export class StargzTocDigestError extends StargzFormatError {
  override readonly name = 'StargzTocDigestError';
  override readonly code = 'ERR_STARGZ_TOC_DIGEST';

  constructor(
    readonly annotation: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`stargz TOC digest mismatch: ${annotation} says ${expected}, the layer's TOC is ${actual}`);
  }
}
