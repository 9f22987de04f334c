// Typed errors of the tar reader and writer. Everything that comes from an untrusted archive is
// reported as one of these, never as a crash, a RangeError from Buffer, or a hang.

/** The archive is malformed, truncated, or uses a feature we refuse (sparse files, …). */
export class TarFormatError extends Error {
  override readonly name = 'TarFormatError';
  /** Byte offset in the (decompressed) archive where the problem was found, when known. */
  readonly offset: number | undefined;
  /** Path of the entry being read (a byte string), when known. */
  readonly entry: string | undefined;

  constructor(message: string, opts: { offset?: number; entry?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.offset = opts.offset;
    this.entry = opts.entry;
  }
}

/** An entry path (or hardlink target) that would escape the root or is otherwise unusable. */
export class TarPathError extends Error {
  override readonly name = 'TarPathError';

  /** `path` is the offending path as a byte string. */
  constructor(message: string, readonly path: string) {
    super(message);
  }
}

/** A compressed layer stream is corrupt, truncated, or in a format we cannot decompress. */
export class LayerDecompressError extends Error {
  override readonly name = 'LayerDecompressError';

  constructor(message: string, readonly format: 'gzip' | 'zstd' | 'unknown', opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Shows a byte string (one char code per byte) in an error message: valid UTF-8 decoded, anything
 * else with \xNN escapes; cut at `max` characters.
 */
export function quoteBytes(s: string, max = 200): string {
  const cut = s.length > max;
  const part = cut ? s.slice(0, max) : s;
  let text: string;
  let escapeHigh = false;
  try {
    text = utf8.decode(Buffer.from(part, 'latin1'));
  } catch {
    text = part;
    escapeHigh = true;
  }
  let out = '';
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (c < 0x20 || c === 0x7f || (escapeHigh && c >= 0x80)) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return `"${out}${cut ? '…' : ''}"`;
}
