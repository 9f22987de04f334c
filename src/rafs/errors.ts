// Typed errors of the RAFS format library. Decoding untrusted bytes must only ever raise
// RafsFormatError; RafsEncodeError reports a model value that the on-disk format cannot hold.

/** Malformed or unsupported on-disk data; the message names the structure and its byte offset. */
export class RafsFormatError extends Error {
  override readonly name = 'RafsFormatError';
  readonly code = 'ERR_RAFS_FORMAT';

  constructor(
    readonly structure: string,
    readonly offset: number,
    readonly detail: string,
  ) {
    super(`${structure} at offset ${offset}: ${detail}`);
  }
}

/** A value (from a Bootstrap or a codec argument) that cannot be represented on disk. */
export class RafsEncodeError extends Error {
  override readonly name = 'RafsEncodeError';
  readonly code = 'ERR_RAFS_ENCODE';

  constructor(
    readonly structure: string,
    readonly detail: string,
  ) {
    super(`cannot encode ${structure}: ${detail}`);
  }
}
