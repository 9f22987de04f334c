// Hand-made stargz-family layers for tests: gzip members / zstd frames built with node:zlib and the
// native codec, a TOC written as given, and the footers of spec §1.4 and §1.11.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { zstdCompress } from '../../src/native/index.js';
import type { RangeReader } from '../../src/stargz/range-reader.js';
import { estargzFooter } from '../../src/stargz/footer.js';

export { estargzFooter };

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** A range reader over a Buffer, refusing reads outside it (as a registry would). */
export function bufferReader(blob: Buffer): RangeReader {
  return async (offset, length) => {
    if (offset < 0 || offset + length > blob.length) throw new Error(`read [${offset}, ${offset + length}) outside ${blob.length} bytes`);
    return Buffer.from(blob.subarray(offset, offset + length));
  };
}

/** A 512-byte ustar header for a regular file. */
export function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 'latin1');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0' + '00', 257, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

/** The TOC member's tar stream: header, JSON, padding, end-of-archive blocks. */
export function tocTar(json: Buffer): Buffer {
  return Buffer.concat([tarHeader('stargz.index.json', json.length), json, Buffer.alloc((512 - (json.length % 512)) % 512), Buffer.alloc(1024)]);
}

export function legacyFooter(tocOffset: number): Buffer {
  return Buffer.concat([
    Buffer.from('1f8b08040000000000ff1600', 'hex'),
    Buffer.from(tocOffset.toString(16).padStart(16, '0') + 'STARGZ', 'latin1'),
    Buffer.from('010000ffff0000000000000000', 'hex'),
  ]);
}

/** An eStargz layer: `data` (already gzip members), then the TOC member for `toc`, then the footer. */
export function estargzLayer(data: Buffer, toc: object | string | Buffer): Buffer {
  const json = Buffer.isBuffer(toc) ? toc : Buffer.from(typeof toc === 'string' ? toc : JSON.stringify(toc, null, '\t'));
  return Buffer.concat([data, gzipSync(tocTar(json)), estargzFooter(data.length)]);
}

/** A zstd:chunked layer: `data`, the TOC in a skippable frame, and a 40- (or 64-) byte footer frame. */
export function zstdChunkedLayer(data: Buffer, toc: object | string, variant: 40 | 64 = 40): Buffer {
  const json = Buffer.from(typeof toc === 'string' ? toc : JSON.stringify(toc));
  const stored = zstdCompress(json);
  const frame = (payload: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(0x184d2a50, 0);
    head.writeUInt32LE(payload.length, 4);
    return Buffer.concat([head, payload]);
  };
  const footer = Buffer.alloc(variant);
  footer.writeBigUInt64LE(BigInt(data.length + 8), 0);
  footer.writeBigUInt64LE(BigInt(stored.length), 8);
  footer.writeBigUInt64LE(BigInt(json.length), 16);
  footer.writeBigUInt64LE(1n, 24);
  footer.write('GnUlInUx', variant - 8, 'latin1');
  return Buffer.concat([data, frame(stored), frame(footer)]);
}

export interface SynthFile {
  name: string;
  type?: string;
  content?: Buffer;
  /** Extra TOC fields (mode, uid, modtime, linkName, xattrs, …). */
  fields?: Record<string, unknown>;
}

/**
 * An eStargz layer as the reference writer lays it out: each file's content in pieces of
 * `chunkSize`, each piece in a fresh gzip member; with `minChunkSize`, small pieces share a member
 * and carry `innerOffset` (a 512-byte stand-in for the tar header before each payload).
 */
export function synthEstargz(files: SynthFile[], opts: { chunkSize: number; minChunkSize?: number }): { blob: Buffer; data: Buffer; toc: { version: number; entries: object[] } } {
  const members: Buffer[] = [];
  let offset = 0;
  let open: Buffer[] = [];
  const flush = (): void => {
    if (open.length === 0) return;
    const member = gzipSync(Buffer.concat(open), { level: 9 });
    members.push(member);
    offset += member.length;
    open = [];
  };
  const entries: object[] = [];
  const put = (payload: Buffer): { offset: number; innerOffset?: number } => {
    if (opts.minChunkSize === undefined || payload.length >= opts.minChunkSize) {
      flush();
      open = [payload];
      const at = { offset };
      flush();
      return at;
    }
    const inner = open.reduce((n, b) => n + b.length, 0) + 512;
    open.push(Buffer.alloc(512), payload);
    return { offset, innerOffset: inner };
  };
  for (const f of files) {
    const type = f.type ?? 'reg';
    const content = f.content ?? Buffer.alloc(0);
    const base: Record<string, unknown> = { name: f.name, type, ...f.fields };
    if (type !== 'reg' || content.length === 0) {
      entries.push(type === 'reg' ? { ...base, digest: `sha256:${sha256(content)}` } : base);
      continue;
    }
    for (let at = 0; at < content.length; at += opts.chunkSize) {
      const piece = content.subarray(at, at + opts.chunkSize);
      const place = put(piece);
      const last = at + opts.chunkSize >= content.length;
      const pieceFields = { ...place, ...(at > 0 ? { chunkOffset: at } : {}), ...(last ? {} : { chunkSize: piece.length }), chunkDigest: `sha256:${sha256(piece)}` };
      entries.push(at === 0 ? { ...base, size: content.length, digest: `sha256:${sha256(content)}`, ...pieceFields } : { name: f.name, type: 'chunk', ...pieceFields });
    }
  }
  flush();
  const toc = { version: 1, entries };
  const data = Buffer.concat(members);
  return { blob: estargzLayer(data, toc), data, toc };
}
