// Typed error of the SOCI zTOC reader. A zTOC comes from a registry next to the layer it indexes
// and is as untrusted as the layer: every way it can be malformed, hostile or unsupported is this
// one error, never a RangeError or TypeError from the Buffer underneath.

/** Malformed, hostile or unsupported zTOC / zinfo data; the message says what and where. */
export class SociFormatError extends Error {
  override readonly name: string = 'SociFormatError';
  readonly code: string = 'ERR_SOCI_FORMAT';
}
