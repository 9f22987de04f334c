// Shared by the native tests: running the real C command-line tools, sample data, and the bits of
// the LZ4 frame format needed to carry the addon's raw LZ4 blocks to and from the `lz4` CLI.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { expect } from 'vitest';

/** Runs a CLI with `input` on stdin and returns its stdout; a non-zero exit is an error. */
export function cli(cmd: string, args: string[], input?: Uint8Array): Buffer {
  const r = spawnSync(cmd, args, { input, maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}: ${r.stderr.toString().trim()}`);
  }
  return r.stdout;
}

/** A failing call's Error `code`, so assertions can name the expected code. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    return String((err as NodeJS.ErrnoException).code);
  }
  throw new Error('expected the call to throw');
}

export async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    return err as Error & { code?: string };
  }
  throw new Error('expected the promise to reject');
}

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const SIZES = [0, 1, 4 * KiB, MiB, 16 * MiB];

function readSlice(path: string, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    const n = readSync(fd, buf, 0, length, offset);
    if (n !== length) throw new Error(`${path} is too short for ${length} bytes at ${offset}`);
  } finally {
    closeSync(fd);
  }
  return buf;
}

export interface Sample {
  name: string;
  data: Buffer;
}

const sizeName = (n: number): string => (n >= MiB ? `${n / MiB} MiB` : n >= KiB ? `${n / KiB} KiB` : `${n} B`);

let cachedSamples: Sample[] | undefined;

/**
 * Every size in SIZES as incompressible random bytes and as real machine code (the running node
 * binary, past its headers), which compresses like the files in a container image layer.
 */
export function samples(): Sample[] {
  if (!cachedSamples) {
    const largest = Math.max(...SIZES);
    const random = randomBytes(largest);
    const real = readSlice(process.execPath, 8 * MiB, largest);
    cachedSamples = SIZES.flatMap((n) => [
      { name: `random ${sizeName(n)}`, data: random.subarray(0, n) },
      { name: `node binary ${sizeName(n)}`, data: real.subarray(0, n) },
    ]);
  }
  return cachedSamples;
}

export function sample(name: string): Buffer {
  const found = samples().find((s) => s.name === name);
  if (!found) throw new Error(`no sample named ${name}`);
  return found.data;
}

// --- xxHash32, which the LZ4 frame format uses for its header, block and content checksums ---

const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;

const rotl = (x: number, r: number): number => (x << r) | (x >>> (32 - r));
const round = (acc: number, lane: number): number => Math.imul(rotl((acc + Math.imul(lane, P2)) | 0, 13), P1);

export function xxh32(data: Uint8Array, seed = 0): number {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const len = data.length;
  let i = 0;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    for (; i + 16 <= len; i += 16) {
      v1 = round(v1, view.getUint32(i, true));
      v2 = round(v2, view.getUint32(i + 4, true));
      v3 = round(v3, view.getUint32(i + 8, true));
      v4 = round(v4, view.getUint32(i + 12, true));
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (seed + P5) | 0;
  }
  h = (h + len) | 0;
  for (; i + 4 <= len; i += 4) h = Math.imul(rotl((h + Math.imul(view.getUint32(i, true), P3)) | 0, 17), P4);
  for (; i < len; i++) h = Math.imul(rotl((h + Math.imul(data[i]!, P5)) | 0, 11), P1);
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

// --- LZ4 frame format (lz4/doc/lz4_Frame_format.md) ---

const LZ4_MAGIC = 0x184d2204;
const LZ4_UNCOMPRESSED_BIT = 0x80000000;
/** BD "block maximum size" ids → bytes. */
export const LZ4_BLOCK_MAX: Record<number, number> = { 4: 64 * KiB, 5: 256 * KiB, 6: MiB, 7: 4 * MiB };

export interface Lz4Block {
  /** The block exactly as stored in the frame. */
  data: Buffer;
  /** Stored blocks hold their bytes as they are; the others are LZ4 blocks. */
  compressed: boolean;
}

export interface Lz4Frame {
  blockMax: number;
  blocks: Lz4Block[];
  contentSize?: number;
  contentChecksum?: number;
}

/** Splits a single LZ4 frame into its blocks, checking the header and block checksums. */
export function parseLz4Frame(frame: Buffer): Lz4Frame {
  expect(frame.readUInt32LE(0), 'LZ4 frame magic').toBe(LZ4_MAGIC);
  const flg = frame[4]!;
  const bd = frame[5]!;
  expect(flg >> 6, 'LZ4 frame version').toBe(1);
  expect(flg & 0x20, 'blocks must be independent to decode them one by one').toBe(0x20);
  expect(flg & 0x01, 'no dictionary').toBe(0);
  const blockMax = LZ4_BLOCK_MAX[(bd >> 4) & 7];
  if (blockMax === undefined) throw new Error(`bad LZ4 BD byte ${bd}`);
  let pos = 6;
  let contentSize: number | undefined;
  if (flg & 0x08) {
    contentSize = Number(frame.readBigUInt64LE(pos));
    pos += 8;
  }
  expect(frame[pos], 'frame header checksum').toBe((xxh32(frame.subarray(4, pos)) >>> 8) & 0xff);
  pos += 1;

  const blocks: Lz4Block[] = [];
  for (;;) {
    const word = frame.readUInt32LE(pos);
    pos += 4;
    if (word === 0) break; // EndMark
    const size = (word & ~LZ4_UNCOMPRESSED_BIT) >>> 0;
    expect(size).toBeLessThanOrEqual(blockMax);
    const data = frame.subarray(pos, pos + size);
    pos += size;
    if (flg & 0x10) {
      expect(frame.readUInt32LE(pos), `block ${blocks.length} checksum`).toBe(xxh32(data));
      pos += 4;
    }
    blocks.push({ data, compressed: (word & LZ4_UNCOMPRESSED_BIT) === 0 });
  }
  let contentChecksum: number | undefined;
  if (flg & 0x04) {
    contentChecksum = frame.readUInt32LE(pos);
    pos += 4;
  }
  expect(pos, 'one frame and nothing after it').toBe(frame.length);
  return { blockMax, blocks, contentSize, contentChecksum };
}

/**
 * Builds an LZ4 frame (independent blocks, content size and content checksum) from `content`,
 * cut into blocks of the BD id's maximum size and compressed with `compressBlock`. A block that
 * does not shrink is stored, as the format requires when it would exceed the block maximum.
 */
export function buildLz4Frame(content: Buffer, blockSizeId: number, compressBlock: (block: Buffer) => Buffer): Buffer {
  const blockMax = LZ4_BLOCK_MAX[blockSizeId]!;
  const descriptor = Buffer.alloc(10);
  descriptor[0] = 0x40 | 0x20 | 0x08 | 0x04; // version 01, independent blocks, content size, content checksum
  descriptor[1] = blockSizeId << 4;
  descriptor.writeBigUInt64LE(BigInt(content.length), 2);
  const parts: Buffer[] = [u32le(LZ4_MAGIC), descriptor, Buffer.of((xxh32(descriptor) >>> 8) & 0xff)];
  for (let off = 0; off < content.length; off += blockMax) {
    const raw = content.subarray(off, off + blockMax);
    const packed = compressBlock(raw);
    if (packed.length < raw.length) {
      parts.push(u32le(packed.length), packed);
    } else {
      parts.push(u32le((raw.length | LZ4_UNCOMPRESSED_BIT) >>> 0), raw);
    }
  }
  parts.push(u32le(0), u32le(xxh32(content)));
  return Buffer.concat(parts);
}

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

// --- gzip member framing (RFC 1952) around raw deflate data ---

/** The raw deflate stream inside a single gzip member (header fields per FLG, 8-byte trailer). */
export function gzipBody(member: Buffer): Buffer {
  expect(member.subarray(0, 3)).toEqual(Buffer.from([0x1f, 0x8b, 8]));
  const flg = member[3]!;
  let pos = 10;
  if (flg & 0x04) pos += 2 + member.readUInt16LE(pos); // FEXTRA
  if (flg & 0x08) pos = member.indexOf(0, pos) + 1; // FNAME
  if (flg & 0x10) pos = member.indexOf(0, pos) + 1; // FCOMMENT
  if (flg & 0x02) pos += 2; // FHCRC
  return member.subarray(pos, member.length - 8);
}

/** A gzip member around a raw deflate stream of `content`. */
export function gzipWrap(deflated: Buffer, content: Buffer): Buffer {
  const header = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]); // no flags, no mtime, OS unix
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(content), 0);
  trailer.writeUInt32LE(content.length % 2 ** 32, 4);
  return Buffer.concat([header, deflated, trailer]);
}
