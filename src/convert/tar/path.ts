// Entry paths from untrusted archives: normalised to components, refusing anything that could
// escape the root. Paths are byte strings (one char code per byte).

import { TarPathError, quoteBytes } from './errors.js';

/** Longest single path component (Linux NAME_MAX) in bytes. */
export const NAME_MAX = 255;

/**
 * Splits an entry path (or a hardlink's target) into its components: `./a//b/` → ['a', 'b'];
 * `.`, `./` and `/` are the root → []. Throws TarPathError for `..` components, absolute paths
 * other than the bare root, NUL bytes, empty paths, components over 255 bytes, and strings that
 * are not byte strings. Symlink targets are data, not paths: do not pass them here.
 */
export function entryPathComponents(path: string): string[] {
  if (path === '') throw new TarPathError('empty tar entry path', path);
  if (path.includes('\0')) throw new TarPathError(`tar entry path ${quoteBytes(path)} contains a NUL byte`, path);
  if (/[^\x00-\xff]/.test(path)) {
    throw new TarPathError(`tar entry path ${quoteBytes(path)} is not a byte string (char code > 255)`, path);
  }
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new TarPathError(`tar entry path ${quoteBytes(path)} has a '..' component`, path);
    if (part.length > NAME_MAX) {
      throw new TarPathError(`tar entry path ${quoteBytes(path)} has a component of ${part.length} bytes (max ${NAME_MAX})`, path);
    }
    out.push(part);
  }
  if (path.startsWith('/') && out.length > 0) {
    throw new TarPathError(`tar entry path ${quoteBytes(path)} is absolute`, path);
  }
  return out;
}
