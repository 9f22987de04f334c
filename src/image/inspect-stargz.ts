// `inspect` of a stargz-family layer file (eStargz, legacy stargz, zstd:chunked): what its footer
// and TOC say — kind, where the TOC is, its digest, entries by type, the RAFS chunk size its pieces
// fit and the files its builder prioritized.
import { withLayerFile } from '../convert/stargz-ref.js';
import { NotStargzError } from '../stargz/errors.js';
import { NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, prefetchList, stargzBootstrap } from '../stargz/bootstrap.js';
import { readStargzToc, type StargzToc } from '../stargz/toc.js';
import type { TocEntryType } from '../stargz/toc-entry.js';

export interface StargzLayerSummary {
  kind: StargzToc['footer']['kind'];
  blobSize: number;
  footerSize: number;
  tocOffset: number;
  tocSize: number;
  /** `sha256:…` of the TOC JSON (what `containerd.io/snapshot/stargz/toc.digest` names). */
  tocDigest: string;
  /** zstd:chunked: `sha256:…` of the stored TOC (what `manifest-checksum` names). */
  storedTocDigest?: string;
  /** TOC entries by type (`chunk` = continuation pieces of large files). */
  counts: Record<TocEntryType, number> & { entries: number; pieces: number };
  /** The RAFS chunk size `create --type estargz-ref` would use, or why the layer cannot be served. */
  chunkSize: number | { error: string };
  /** Which landmark the layer carries. */
  landmark: 'prefetch' | 'no-prefetch' | 'none';
  prefetch: string[];
}

/** The summary of the layer file at `path`; undefined when it is no stargz-family layer (no footer). */
export async function inspectStargzLayer(path: string): Promise<StargzLayerSummary | undefined> {
  try {
    return await withLayerFile(path, async (read, size) => summarize(await readStargzToc(read, size), size));
  } catch (err) {
    if (err instanceof NotStargzError) return undefined;
    throw err;
  }
}

function summarize(toc: StargzToc, blobSize: number): StargzLayerSummary {
  const counts = { entries: toc.entries.length, pieces: 0, dir: 0, reg: 0, symlink: 0, hardlink: 0, char: 0, block: 0, fifo: 0, chunk: 0 };
  for (const e of toc.entries) {
    counts[e.type]++;
    if (e.type === 'chunk' || (e.type === 'reg' && e.size > 0)) counts.pieces++;
  }
  const hasLandmark = (name: string): boolean => toc.entries.some((e) => e.name === name && e.type === 'reg');
  const { footer } = toc;
  return {
    kind: footer.kind,
    blobSize,
    footerSize: footer.footerSize,
    tocOffset: footer.tocOffset,
    tocSize: footer.tocSize,
    tocDigest: toc.tocDigest,
    ...(toc.storedTocDigest ? { storedTocDigest: toc.storedTocDigest } : {}),
    counts,
    chunkSize: chunkSizeOf(toc, blobSize),
    landmark: hasLandmark(PREFETCH_LANDMARK) ? 'prefetch' : hasLandmark(NO_PREFETCH_LANDMARK) ? 'no-prefetch' : 'none',
    prefetch: prefetchList(toc),
  };
}

/** The layer model's chunk size: building it is what checks that every piece fits the grid. */
function chunkSizeOf(toc: StargzToc, blobSize: number): StargzLayerSummary['chunkSize'] {
  try {
    return stargzBootstrap(toc, { blobId: '0'.repeat(64), blobSize }).chunkSize;
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** The summary as text lines. */
export function stargzSummaryLines(s: StargzLayerSummary): string[] {
  const { counts: c } = s;
  return [
    `${s.kind} layer, ${s.blobSize} bytes, footer ${s.footerSize} bytes`,
    `TOC at ${s.tocOffset}, ${s.tocSize} bytes stored, digest ${s.tocDigest}${s.storedTocDigest ? ` (stored ${s.storedTocDigest})` : ''}`,
    `entries ${c.entries}: ${c.dir} dirs, ${c.reg} files, ${c.symlink} symlinks, ${c.hardlink} hardlinks, ${c.char + c.block + c.fifo} devices/fifos, ${c.chunk} chunk entries; ${c.pieces} pieces`,
    typeof s.chunkSize === 'number' ? `chunk size 0x${s.chunkSize.toString(16)}` : `chunk size: none fits (${s.chunkSize.error})`,
    `landmark ${s.landmark}${s.prefetch.length ? `, prefetch ${s.prefetch.join(' ')}` : ''}`,
  ];
}
