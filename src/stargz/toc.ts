// A stargz-family layer's table of contents: found through its footer, checked against the digest
// the image manifest promises, parsed as it streams, and resolved into pieces whose stored bytes are
// known (spec §1.5, §1.9, §1.11).
import { TOC_DIGEST_ANNOTATION, ZSTD_CHUNKED_CHECKSUM_ANNOTATIONS, ZSTD_CHUNKED_POSITION_ANNOTATIONS } from '../registry/stargz-layers.js';
import { createHash } from 'node:crypto';
import { StargzFormatError, StargzTocDigestError } from './errors.js';
import { ESTARGZ_FOOTER_SIZE, readStargzFooter, type StargzFooter } from './footer.js';
import type { RangeReader } from './range-reader.js';
import { tocJsonBytes } from './toc-bytes.js';
import { OwnerNames, parseTocEntry, type TocEntry } from './toc-entry.js';
import { parseWholeTocJson, TocJsonParser, type TocJsonHandlers, WHOLE_PARSE_BYTES } from './toc-json.js';

/** Default bound on a TOC's JSON: far above real TOCs (a few MB for big images), far below harm. */
export const MAX_TOC_SIZE = 256 << 20;


export interface StargzToc {
  footer: StargzFooter;
  /** `sha256:…` of the TOC's JSON bytes as stored (what `toc.digest` names). */
  tocDigest: string;
  /** zstd:chunked only: `sha256:…` of the compressed TOC (what `manifest-checksum` names). */
  storedTocDigest?: string;
  /** The annotation (or 'expectedTocDigest') whose digest the TOC matched; undefined when none was given. */
  verifiedBy?: string;
  /**
   * Every entry in blob order. Chunk entries carry their file's name; data pieces (non-empty `reg`
   * and `chunk`) have `chunkSize` and `compressedSize` resolved.
   */
  entries: TocEntry[];
}

export interface ReadTocOptions {
  /** `sha256:…` of the TOC JSON, e.g. from a snapshot label. */
  expectedTocDigest?: string;
  /** The layer descriptor's annotations. */
  annotations?: Readonly<Record<string, string>>;
  /** Largest TOC JSON accepted (default MAX_TOC_SIZE). */
  maxTocSize?: number;
  /** Awaited once the TOC's bytes are in, before they are parsed: a caller's turn among several TOCs (the CPU work is the parse). */
  beforeParse?: () => Promise<void>;
}

interface Expectation {
  source: string;
  digest: string;
  /** Which bytes it covers: the JSON, or the stored (compressed) TOC. */
  of: 'json' | 'stored';
}

/** Reads, verifies and resolves the TOC of a `blobSize`-byte layer. */
export async function readStargzToc(read: RangeReader, blobSize: number, opts: ReadTocOptions = {}): Promise<StargzToc> {
  const footer = await readStargzFooter(read, blobSize);
  const expectations = expectedDigests(footer, opts);
  const storedHash = footer.kind === 'zstd:chunked' ? createHash('sha256') : undefined;
  let storedTocDigest: string | undefined;
  const bytes = tocJsonBytes(read, footer, opts.maxTocSize ?? MAX_TOC_SIZE, storedHash);
  const { tocDigest, entries } = await parseTocJson(opts.beforeParse ? thenAwait(bytes, opts.beforeParse) : bytes, (jsonDigest) => {
    storedTocDigest = storedHash && `sha256:${storedHash.digest('hex')}`;
    for (const e of expectations) {
      const actual = e.of === 'json' ? jsonDigest : storedTocDigest!;
      if (actual !== e.digest) throw new StargzTocDigestError(e.source, e.digest, actual);
    }
  });
  resolvePieces(entries, footer);
  return { footer, tocDigest, storedTocDigest, verifiedBy: expectations[0]?.source, entries };
}

/** `bytes`, then `gate` awaited before the iteration ends (a whole TOC is parsed when it does). */
async function* thenAwait(bytes: AsyncIterable<Buffer>, gate: () => Promise<void>): AsyncGenerator<Buffer> {
  yield* bytes;
  await gate();
}

/** Where an eStargz layer's TOC member starts, when only its JSON is at hand. */
export interface TocJsonLayout {
  /** The layer blob's size in bytes. */
  blobSize: number;
  /**
   * Where the TOC's gzip member starts (= where file data ends). Default: the footer's start, so the
   * last piece's stored range also covers the TOC member, which its decoder never reaches.
   */
  tocOffset?: number;
}

/**
 * The TOC of an eStargz layer from its decompressed JSON alone (nydus' `stargz_index` input): no
 * footer is read, so the layout comes from the caller; the JSON is checked against
 * `expectedTocDigest` when given.
 */
export async function stargzTocFromJson(json: Buffer, layout: TocJsonLayout, opts: Pick<ReadTocOptions, 'expectedTocDigest' | 'maxTocSize'> = {}): Promise<StargzToc> {
  const maxSize = opts.maxTocSize ?? MAX_TOC_SIZE;
  if (json.length > maxSize) throw new StargzFormatError(`stargz TOC of ${json.length} bytes, more than the ${maxSize} allowed`);
  const { blobSize } = layout;
  if (!Number.isSafeInteger(blobSize) || blobSize < ESTARGZ_FOOTER_SIZE) throw new StargzFormatError(`eStargz layer size ${blobSize}: not a byte count of at least its ${ESTARGZ_FOOTER_SIZE}-byte footer`);
  const footerStart = blobSize - ESTARGZ_FOOTER_SIZE;
  const tocOffset = layout.tocOffset ?? footerStart;
  if (!Number.isSafeInteger(tocOffset) || tocOffset < 0 || tocOffset > footerStart) throw new StargzFormatError(`TOC offset ${tocOffset} lies outside the ${blobSize}-byte layer's data`);
  const footer: StargzFooter = { kind: 'estargz', footerSize: ESTARGZ_FOOTER_SIZE, tocOffset, tocSize: footerStart - tocOffset, dataEnd: tocOffset };
  const expectations = expectedDigests(footer, { expectedTocDigest: opts.expectedTocDigest });
  const { tocDigest, entries } = await parseTocJson([json], (jsonDigest) => {
    for (const e of expectations) if (jsonDigest !== e.digest) throw new StargzTocDigestError(e.source, e.digest, jsonDigest);
  });
  resolvePieces(entries, footer);
  return { footer, tocDigest, verifiedBy: expectations[0]?.source, entries };
}

/**
 * Parses the TOC JSON as it streams in. `checkDigest` sees the JSON's digest once every byte is
 * hashed and before any parse error is thrown: a TOC that is not the expected one is reported as
 * that, whatever its content.
 */
async function parseTocJson(bytes: AsyncIterable<Buffer> | Iterable<Buffer>, checkDigest: (tocDigest: string) => void): Promise<{ tocDigest: string; entries: TocEntry[] }> {
  const jsonHash = createHash('sha256');
  const entries: TocEntry[] = [];
  let version: unknown;
  const owners = new OwnerNames();
  const handlers: TocJsonHandlers = {
    version: (value) => {
      if (version !== undefined) throw new StargzFormatError('stargz TOC: "version" appears twice');
      version = value;
    },
    entry: (raw, index) => {
      if (index !== entries.length) throw new StargzFormatError('stargz TOC: "entries" appears twice');
      const entry = parseTocEntry(raw, index);
      owners.resolve(entry);
      entries.push(entry);
    },
  };
  const parser = new TocJsonParser(handlers);
  // small TOCs (nearly all) are kept and parsed whole at the end; a larger one streams from the
  // moment it outgrows the bound, so memory follows the largest entry, not the TOC
  let whole: Buffer[] | undefined = [];
  let wholeBytes = 0;
  let parseError: unknown;
  const stream = (piece: Buffer): void => {
    if (parseError !== undefined) return;
    try {
      parser.write(piece);
    } catch (err) {
      parseError = err;
    }
  };
  for await (const piece of bytes) {
    jsonHash.update(piece);
    if (whole) {
      whole.push(piece);
      wholeBytes += piece.length;
      if (wholeBytes <= WHOLE_PARSE_BYTES) continue;
      for (const kept of whole) stream(kept);
      whole = undefined;
    } else stream(piece);
  }
  const tocDigest = `sha256:${jsonHash.digest('hex')}`;
  checkDigest(tocDigest);
  if (whole) parseWholeTocJson(Buffer.concat(whole), handlers);
  else {
    if (parseError !== undefined) throw parseError;
    parser.end();
  }
  if (version !== 1) throw new StargzFormatError(`stargz TOC: version ${JSON.stringify(version)}, only 1 is known`);
  return { tocDigest, entries };
}

function expectedDigests(footer: StargzFooter, opts: ReadTocOptions): Expectation[] {
  const annotations = opts.annotations ?? {};
  const out: Expectation[] = [];
  const add = (source: string, digest: string | undefined, of: Expectation['of']): void => {
    if (digest === undefined) return;
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new StargzFormatError(`${source}: ${JSON.stringify(digest)} is not a sha256 digest`);
    out.push({ source, digest, of });
  };
  add('expectedTocDigest', opts.expectedTocDigest, 'json');
  add(TOC_DIGEST_ANNOTATION, annotations[TOC_DIGEST_ANNOTATION], 'json');
  if (footer.kind === 'zstd:chunked') {
    for (const key of ZSTD_CHUNKED_CHECKSUM_ANNOTATIONS) add(key, annotations[key], 'stored');
    for (const key of ZSTD_CHUNKED_POSITION_ANNOTATIONS) checkPosition(key, annotations[key], footer);
  }
  return out;
}

/** `offset:storedSize:size:type` must describe the TOC the footer points at. */
function checkPosition(key: string, position: string | undefined, footer: StargzFooter): void {
  if (position === undefined) return;
  const expected = `${footer.tocOffset}:${footer.tocSize}:${footer.tocUncompressedSize}:1`;
  if (position !== expected) throw new StargzFormatError(`${key} is ${JSON.stringify(position)}, the layer's footer says ${expected}`);
}

/**
 * Binds each `chunk` entry to its file and resolves every data piece: its length (a stored 0 means
 * "to the end of the file") and its stored range `[offset, offset + compressedSize)` — up to the
 * frame's `endOffset` (zstd:chunked), else up to the next piece's member, else to the TOC. Pieces
 * must tile their file and lie in blob order inside the data part of the blob.
 */
function resolvePieces(entries: TocEntry[], footer: StargzFooter): void {
  const pieces: TocEntry[] = [];
  let file: TocEntry | undefined;
  let covered = 0;
  const fail = (entry: TocEntry, detail: string): never => {
    throw new StargzFormatError(`stargz TOC entry ${JSON.stringify(entry.name)}: ${detail}`);
  };
  const closeFile = (): void => {
    if (file && covered !== file.size) fail(file, `its pieces cover ${covered} of its ${file.size} bytes`);
    file = undefined;
  };
  // an indexed loop: this runs cold, once per entry
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (entry.type !== 'chunk') closeFile();
    if (entry.type === 'reg' && entry.size > 0) {
      if (entry.chunkOffset !== 0) fail(entry, `a file's first piece starts at ${entry.chunkOffset}, not 0`);
      file = entry;
      covered = 0;
    } else if (entry.type === 'chunk') {
      if (!file) return fail(entry, 'a chunk entry outside a regular file with data');
      entry.name = file.name;
      if (entry.chunkOffset !== covered) fail(entry, `chunk at file offset ${entry.chunkOffset}, the file's pieces so far end at ${covered}`);
    } else continue;
    const rest = file!.size - covered;
    entry.chunkSize ||= rest;
    if (entry.chunkSize > rest) fail(entry, `a ${entry.chunkSize}-byte piece at file offset ${covered} runs past the file's ${file!.size} bytes`);
    covered += entry.chunkSize;
    if (entry.offset >= footer.dataEnd) fail(entry, `data at blob offset ${entry.offset}, past the file data (which ends at ${footer.dataEnd})`);
    const previous = pieces[pieces.length - 1];
    if (previous && entry.offset < previous.offset) fail(entry, `data at blob offset ${entry.offset} comes after data at ${previous.offset}`);
    pieces.push(entry);
  }
  closeFile();
  let next = footer.dataEnd;
  for (let i = pieces.length - 1; i >= 0; i--) {
    const piece = pieces[i]!;
    const end = piece.endOffset > 0 ? piece.endOffset : next;
    if (end <= piece.offset || end > footer.dataEnd) fail(piece, `stored range [${piece.offset}, ${end}) is empty or past the file data`);
    piece.compressedSize = end - piece.offset;
    if (i > 0 && pieces[i - 1]!.offset < piece.offset) next = piece.offset;
  }
}
