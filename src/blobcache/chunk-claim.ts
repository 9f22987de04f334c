// What an image claims about a chunk of a blob: its index, where its stored bytes are, where its
// uncompressed bytes go and their digest. Blob ids are shared between images, chunk tables are not
// trusted: two images whose claims about one blob differ must never share a fetch or a cache file
// region, whatever either of them says.
import type { ChunkRef } from '../rafs/tree.js';

/** Two readers share a fetch only when these are equal. */
export function claimKey(blobId: string, ref: ChunkRef): string {
  // chunks of a member (or decoded from a checkpoint) differ by where they start in it
  const from = ref.checkpoint === undefined ? '' : `#${ref.checkpoint}`;
  const inner = ref.innerOffset === undefined ? from : `${from}@${ref.innerOffset}`;
  return `${blobId}:${ref.ciIndex}:${ref.compressedOffset}+${ref.compressedSize}${inner}:${ref.uncompressedOffset}+${ref.uncompressedSize}:${ref.compressed ? 'z' : 'raw'}:${ref.digest.toString('hex')}`;
}

/** The first chunk two tables of one blob describe differently, in words; undefined when they agree. */
export function tableConflict(held: readonly ChunkRef[], claimed: readonly ChunkRef[]): string | undefined {
  if (held === claimed) return undefined;
  const byIndex = new Map(held.map((r) => [r.ciIndex, r]));
  for (const ref of claimed) {
    const other = byIndex.get(ref.ciIndex);
    if (other && claimKey('', other) !== claimKey('', ref)) return `chunk ${ref.ciIndex} is described differently`;
  }
  return undefined;
}
