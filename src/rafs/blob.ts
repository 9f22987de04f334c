// The tail of a nydus data blob (docs/rafs-v6.md §3.3-§3.8): chunk data is followed by named sections — the
// CI array and its header (`blob.meta`), chunk digests (`blob.digest`), the layer bootstrap
// (`image.boot`) and a table of contents (`rafs.blob.toc`) — each followed by a reverse-tar header.
// BlobTail reads them through a ByteSource (ranged reads); encodeBlobTail writes them (variant c).
import { alignUp, checkRange } from './bytes.js';
import { BlobFeature } from './blob-table.js';
import {
  CI_HEADER_SIZE, CI_V1_ENTRY_SIZE, CI_V2_ENTRY_SIZE, type CiEntry, type CiHeader, decodeCiHeader, decodeCiV1, decodeCiV2, encodeCiHeader, encodeCiV1,
} from './blob-meta.js';
import { RafsEncodeError, RafsFormatError } from './errors.js';
import { decompress, sha256Raw, zstdCompress } from '../native/index.js';
import { decodeTarHeader, encodeTarHeader, TAR_HEADER_SIZE, walkReverseTar } from './reverse-tar.js';
import { type ByteSource, readExact, toSource } from './source.js';
import { decodeToc, encodeToc, type TocEntry } from './toc.js';
import type { BlobInfo, Compressor } from './tree.js';

/** Blob id recorded in a bootstrap inlined in its own blob, whose id is not known yet (docs/rafs-v6.md §3.2). */
export const BLOB_ID_PLACEHOLDER = 'x'.repeat(64);

/** A real blob id: the sha256 of the blob, lowercase hex (safe as a file name too). */
export const isBlobId = (id: string): boolean => /^[0-9a-f]{64}$/.test(id);

export const Section = {
  CHUNK_DATA: 'image.blob',
  CHUNK_INFO: 'blob.meta',
  CHUNK_INFO_HEADER: 'blob.meta.header',
  CHUNK_DIGESTS: 'blob.digest',
  BOOTSTRAP: 'image.boot',
  TOC: 'rafs.blob.toc',
} as const;

/** Sections are read into memory whole; larger claims are treated as corruption. */
const MAX_SECTION_SIZE = 2 ** 31;
const DIGEST_SIZE = 32;
const ZSTD_MAGIC = 0xfd2fb528;
/** Every blob this library writes: 4 KiB-aligned chunks, tar headers, a TOC, built ">= 2.2". */
const BASE_FEATURES = BlobFeature.ALIGNED | BlobFeature.HAS_TAR_HEADER | BlobFeature.HAS_TOC | BlobFeature.CAP_TAR_TOC;

export interface BlobSection {
  name: string;
  offset: number;
  /** Bytes as stored. */
  size: number;
  uncompressedSize: number;
  /** Undefined when only a tar header describes the section (the compression is not recorded). */
  compressor: Compressor | undefined;
  /** sha256 of the uncompressed data, when a TOC records it. */
  digest: Buffer | undefined;
}

/** Where to find the TOC, from the blob table; without it the TOC is auto-detected. */
export interface TocLocation {
  tocSize?: number;
  /** sha256 of TOC entries + tar header; all-zero or absent skips the check. */
  tocDigest?: Buffer;
}

export interface BlobMeta {
  header: CiHeader;
  chunks: CiEntry[];
}

export class BlobTail {
  private constructor(
    private readonly src: ByteSource,
    /** Undefined when the blob only has reverse-tar headers (no TOC). */
    readonly toc: readonly TocEntry[] | undefined,
    readonly sections: ReadonlyMap<string, BlobSection>,
  ) {}

  /** Locates the tail sections: through the TOC if there is one, else by walking the tar headers. */
  static async open(blob: ByteSource | Buffer, where: TocLocation = {}): Promise<BlobTail> {
    const src = toSource(blob);
    const toc = await readToc(src, where);
    const sections = toc ? tocSections(src, toc) : await tarSections(src);
    return new BlobTail(src, toc, sections);
  }

  /** A section's uncompressed bytes, digest-checked when the TOC has a digest. */
  async section(name: string): Promise<Buffer | undefined> {
    const section = this.sections.get(name);
    return section && this.load(section);
  }

  private async load(section: BlobSection): Promise<Buffer> {
    const data = inflate(await readExact(this.src, section.offset, section.size, section.name), section);
    if (section.digest?.some((b) => b !== 0) && !sha256Raw(data).equals(section.digest)) {
      throw new RafsFormatError(section.name, section.offset, 'sha256 does not match the TOC');
    }
    return data;
  }

  /** The inlined layer bootstrap, if the blob carries one. */
  bootstrap(): Promise<Buffer | undefined> {
    return this.section(Section.BOOTSTRAP);
  }

  /** The chunk-info array and its header (whose compressor applies when no TOC names one). */
  async chunkInfo(): Promise<BlobMeta | undefined> {
    const headerBytes = await this.section(Section.CHUNK_INFO_HEADER);
    const stored = this.sections.get(Section.CHUNK_INFO);
    if (headerBytes === undefined || stored === undefined) return undefined;
    const header = decodeCiHeader(headerBytes);
    if (header.ciOffset !== stored.offset || header.ciCompressedSize !== stored.size) {
      throw new RafsFormatError('CI header', stored.offset + stored.size, 'does not describe the blob.meta section it follows');
    }
    const compressor = stored.compressor ?? header.ciCompressor;
    const ci = await this.load({ ...stored, compressor, uncompressedSize: header.ciUncompressedSize });
    return { header, chunks: decodeChunkInfoArray(ci, header) };
  }

  /** Per-chunk digests in CI order (`blob.digest`), if present. */
  async chunkDigests(): Promise<Buffer[] | undefined> {
    const data = await this.section(Section.CHUNK_DIGESTS);
    if (data === undefined) return undefined;
    if (data.length % DIGEST_SIZE !== 0) throw new RafsFormatError(Section.CHUNK_DIGESTS, this.sections.get(Section.CHUNK_DIGESTS)!.offset, `size ${data.length} is not a multiple of 32`);
    return Array.from({ length: data.length / DIGEST_SIZE }, (_, i) => Buffer.from(data.subarray(i * DIGEST_SIZE, (i + 1) * DIGEST_SIZE)));
  }
}

/** The TOC entries, or undefined when the blob has no TOC. */
async function readToc(src: ByteSource, where: TocLocation): Promise<TocEntry[] | undefined> {
  if (src.size < TAR_HEADER_SIZE) throw new RafsFormatError('blob', 0, `${src.size} bytes cannot hold a tail section`);
  const headerOffset = src.size - TAR_HEADER_SIZE;
  const header = decodeTarHeader(await readExact(src, headerOffset, TAR_HEADER_SIZE, 'tar header'), headerOffset);
  if (header.name !== Section.TOC) {
    if (where.tocSize) throw new RafsFormatError('tar header', headerOffset, `the blob table promises a TOC, found ${JSON.stringify(header.name)}`);
    return undefined;
  }
  const tocSize = header.size + TAR_HEADER_SIZE;
  if (where.tocSize && where.tocSize !== tocSize) throw new RafsFormatError('TOC', headerOffset, `size ${tocSize} differs from the blob table's ${where.tocSize}`);
  const tocBytes = await readExact(src, src.size - tocSize, tocSize, 'TOC');
  if (where.tocDigest && where.tocDigest.some((b) => b !== 0) && !sha256Raw(tocBytes).equals(where.tocDigest)) {
    throw new RafsFormatError('TOC', src.size - tocSize, 'sha256 does not match the blob table');
  }
  return decodeToc(tocBytes.subarray(0, header.size), src.size - tocSize);
}

function tocSections(src: ByteSource, toc: readonly TocEntry[]): Map<string, BlobSection> {
  const sections = new Map<string, BlobSection>();
  for (const entry of toc) {
    // Upstream records image.blob's offset as its end; chunk data always starts the blob.
    const offset = entry.name === Section.CHUNK_DATA ? 0 : entry.compressedOffset;
    checkRange(src.size, offset, entry.compressedSize, entry.name);
    const { name, compressedSize: size, uncompressedSize, compressor, digest } = entry;
    sections.set(name, { name, offset, size, uncompressedSize, compressor, digest });
  }
  return sections;
}

/** Walks the reverse-tar headers; `blob.meta` (CI + header) is split into its two parts. */
async function tarSections(src: ByteSource): Promise<Map<string, BlobSection>> {
  const sections = new Map<string, BlobSection>();
  const add = (name: string, offset: number, size: number): void => {
    sections.set(name, { name, offset, size, uncompressedSize: size, compressor: undefined, digest: undefined });
  };
  for await (const { name, dataOffset, size } of walkReverseTar(src)) {
    if (name !== Section.CHUNK_INFO) add(name, dataOffset, size);
    else if (size < CI_HEADER_SIZE) throw new RafsFormatError(name, dataOffset, `${size} bytes cannot hold the CI header`);
    else {
      add(Section.CHUNK_INFO, dataOffset, size - CI_HEADER_SIZE);
      add(Section.CHUNK_INFO_HEADER, dataOffset + size - CI_HEADER_SIZE, CI_HEADER_SIZE);
    }
  }
  return sections;
}

/** Decompresses stored section bytes; a section whose compression is unknown is zstd iff it looks like it. */
function inflate(stored: Buffer, section: BlobSection): Buffer {
  const looksZstd = stored.length >= 4 && stored.readUInt32LE(0) === ZSTD_MAGIC;
  const compressor = section.compressor ?? (looksZstd ? 'zstd' : 'none');
  if (compressor === 'none') {
    if (section.compressor && stored.length !== section.uncompressedSize) throw new RafsFormatError(section.name, section.offset, 'uncompressed section with two different sizes');
    return stored;
  }
  if (section.uncompressedSize > MAX_SECTION_SIZE) throw new RafsFormatError(section.name, section.offset, `uncompressed size ${section.uncompressedSize} is too large`);
  const size = section.compressor ? section.uncompressedSize : undefined;
  try {
    return decompress(compressor, stored, { size, maxSize: MAX_SECTION_SIZE });
  } catch (err) {
    throw new RafsFormatError(section.name, section.offset, `cannot ${compressor}-decompress: ${(err as Error).message}`);
  }
}

function decodeChunkInfoArray(ci: Buffer, header: CiHeader): CiEntry[] {
  const v2 = (header.features & BlobFeature.CHUNK_INFO_V2) !== 0;
  if (header.entries * (v2 ? CI_V2_ENTRY_SIZE : CI_V1_ENTRY_SIZE) > ci.length) {
    throw new RafsFormatError('CI header', header.ciOffset + header.ciCompressedSize, `${header.entries} entries do not fit ${ci.length} bytes of CI`);
  }
  return v2 ? decodeCiV2(ci, header.entries) : decodeCiV1(ci, header.entries);
}

/**
 * Reads the CI array the way nydusd does: `ci_compressed_size + 4096` bytes at `ci_offset` as the
 * blob table gives them, the header checked against the table.
 */
export async function readBlobMeta(blob: ByteSource | Buffer, info: BlobInfo): Promise<BlobMeta> {
  const src = toSource(blob);
  const bytes = await readExact(src, info.ciOffset, info.ciCompressedSize + CI_HEADER_SIZE, Section.CHUNK_INFO);
  const headerOffset = info.ciOffset + info.ciCompressedSize;
  const header = decodeCiHeader(bytes, info.ciCompressedSize);
  const same = header.entries === info.chunkCount && header.ciCompressor === info.ciCompressor && header.ciOffset === info.ciOffset
    && header.ciCompressedSize === info.ciCompressedSize && header.ciUncompressedSize === info.ciUncompressedSize;
  if (!same) throw new RafsFormatError('CI header', headerOffset, 'does not match the blob table entry');
  const section: BlobSection = {
    name: Section.CHUNK_INFO, offset: info.ciOffset, size: info.ciCompressedSize, uncompressedSize: info.ciUncompressedSize,
    compressor: info.ciCompressor, digest: undefined,
  };
  return { header, chunks: decodeChunkInfoArray(inflate(bytes.subarray(0, info.ciCompressedSize), section), header) };
}

export interface BlobTailInput {
  /** Bytes of chunk data at the start of the blob, before the tail. */
  chunkDataSize: number;
  /** sha256 of that chunk data, recorded in the TOC; zeros when omitted. */
  chunkDataDigest?: Buffer;
  /** CI entries in CI-index order. */
  chunks: readonly CiEntry[];
  /** Chunk digests in CI-index order: adds `blob.digest` and INLINED_CHUNK_DIGEST. */
  digests?: readonly Buffer[];
  /**
   * The layer bootstrap to inline, or a function building it from the blob-table values known
   * at that point (its blob entry uses BLOB_ID_PLACEHOLDER; tocSize/tocDigest are still 0).
   */
  bootstrap?: Buffer | ((blob: BlobTailFields) => Buffer);
  /**
   * The blob's chunk compressor. The CI is compressed (zstd, if that shrinks it) only for zstd
   * blobs: a TOC cannot name gzip, and nydus-snapshotter cannot read lz4 TOC entries.
   */
  compressor: Compressor;
}

/**
 * The blob-table fields a tail determines. `compressedSize` is the blob's bytes before image.boot
 * when given to the bootstrap callback, then the whole blob size; `features` is 0x70000021 plus
 * INLINED_FS_META (0x2) when a bootstrap is inlined (a merged bootstrap drops 0x2).
 */
export type BlobTailFields = Pick<BlobInfo,
  'chunkCount' | 'uncompressedSize' | 'compressedSize' | 'features' | 'ciCompressor' | 'ciOffset' | 'ciCompressedSize' | 'ciUncompressedSize' | 'tocSize' | 'tocDigest'>;

export interface EncodedBlobTail {
  /** To append, in order, after the chunk data. */
  sections: Buffer[];
  fields: BlobTailFields;
}

/**
 * Encodes variant (c) of docs/rafs-v6.md §3.3: H(image.blob) | CI | CI header | H(blob.meta) | digests |
 * H(blob.digest) | zstd(bootstrap) | H(image.boot) | TOC | H(rafs.blob.toc). A blob without chunks
 * has no CI or digest sections.
 */
export function encodeBlobTail(input: BlobTailInput): EncodedBlobTail {
  const chunkCount = input.chunks.length;
  if (input.digests && (input.digests.length !== chunkCount || input.digests.some((d) => d.length !== DIGEST_SIZE))) {
    throw new RafsEncodeError('blob.digest', 'there must be one 32-byte digest per chunk');
  }
  const withDigests = input.digests !== undefined && chunkCount > 0;
  const features = (BASE_FEATURES | (input.bootstrap ? BlobFeature.INLINED_FS_META : 0) | (withDigests ? BlobFeature.INLINED_CHUNK_DIGEST : 0)) >>> 0;
  const uncompressedSize = input.chunks.reduce((end, c) => Math.max(end, alignUp(c.uncompressedOffset + c.uncompressedSize, 4096)), 0);
  const out = new TailWriter(input.chunkDataSize);
  out.existing(Section.CHUNK_DATA, input.chunkDataSize, uncompressedSize, input.chunkDataDigest ?? Buffer.alloc(DIGEST_SIZE));
  const ci = chunkCount > 0 ? writeChunkInfo(out, input, features) : { ciCompressor: 'none' as const, ciOffset: 0, ciCompressedSize: 0, ciUncompressedSize: 0 };
  if (withDigests) {
    out.add(Section.CHUNK_DIGESTS, Buffer.concat(input.digests!), 'none');
    out.tarHeader(Section.CHUNK_DIGESTS);
  }
  const fields: BlobTailFields = { chunkCount, uncompressedSize, compressedSize: out.position, features, ...ci, tocSize: 0, tocDigest: Buffer.alloc(DIGEST_SIZE) };
  if (input.bootstrap) {
    const bootstrap = typeof input.bootstrap === 'function' ? input.bootstrap({ ...fields }) : input.bootstrap;
    out.add(Section.BOOTSTRAP, bootstrap, 'zstd');
    out.tarHeader(Section.BOOTSTRAP);
  }
  const toc = out.finish();
  return { sections: out.sections, fields: { ...fields, compressedSize: out.position, tocSize: toc.length, tocDigest: sha256Raw(toc) } };
}

/** CI array (zstd for zstd blobs, if that shrinks it), CI header and their tar header. */
function writeChunkInfo(out: TailWriter, input: BlobTailInput, features: number): Pick<BlobTailFields, 'ciCompressor' | 'ciOffset' | 'ciCompressedSize' | 'ciUncompressedSize'> {
  const ci = encodeCiV1(input.chunks);
  const ciOffset = out.position;
  const ciCompressor = out.add(Section.CHUNK_INFO, ci, input.compressor === 'zstd' ? 'zstd' : 'none');
  const ciCompressedSize = out.position - ciOffset;
  const header = encodeCiHeader({
    features, ciCompressor, entries: input.chunks.length, ciOffset, ciCompressedSize, ciUncompressedSize: ci.length, zranOffset: 0, zranSize: 0, zranCount: 0,
  });
  out.add(Section.CHUNK_INFO_HEADER, header, 'none');
  out.tarHeader(Section.CHUNK_INFO);
  return { ciCompressor, ciOffset, ciCompressedSize, ciUncompressedSize: ci.length };
}

/** Accumulates tail sections with their TOC entries, tracking the position in the blob. */
class TailWriter {
  readonly sections: Buffer[] = [];
  private readonly toc: TocEntry[] = [];
  /** Where the data the next tar header describes starts: the chunk data at 0, then after each header. */
  private sectionStart = 0;

  constructor(public position: number) {}

  private push(buf: Buffer): void {
    this.sections.push(buf);
    this.position += buf.length;
  }

  /** TOC entry for the chunk data already written at the start of the blob, and its tar header. */
  existing(name: string, size: number, uncompressedSize: number, digest: Buffer): void {
    this.toc.push({ name, compressor: 'none', digest, compressedOffset: 0, compressedSize: size, uncompressedSize });
    this.tarHeader(name);
  }

  /** Appends data (compressed when that shrinks it) with its TOC entry; returns the compression used. */
  add(name: string, data: Buffer, compressor: 'zstd' | 'none'): Compressor {
    const packed = compressor === 'zstd' ? zstdCompress(data) : data;
    const stored = packed.length < data.length ? packed : data;
    const used = stored === data ? 'none' : 'zstd';
    this.toc.push({ name, compressor: used, digest: sha256Raw(data), compressedOffset: this.position, compressedSize: stored.length, uncompressedSize: data.length });
    this.push(stored);
    return used;
  }

  /** The tar header closing the section that started after the previous header. */
  tarHeader(name: string): void {
    this.push(encodeTarHeader(name, this.position - this.sectionStart));
    this.sectionStart = this.position;
  }

  /** Appends the TOC and its tar header; returns both (what the TOC size and digest cover). */
  finish(): Buffer {
    const entries = encodeToc(this.toc);
    const toc = Buffer.concat([entries, encodeTarHeader(Section.TOC, entries.length)]);
    this.push(toc);
    return toc;
  }
}
