// The one place that loads the Rust addon (native/). Everything else imports these typed functions.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Codec = 'zstd' | 'lz4_block' | 'gzip' | 'deflate';
export type DigestAlgorithm = 'blake3' | 'sha256';
/** The codecs whose streams are made of members: gzip members (eStargz) and zstd frames (zstd:chunked). */
export type MemberCodec = 'gzip' | 'zstd';

/** Error codes thrown by the addon (as `err.code`). */
export type NativeErrorCode = 'ERR_NATIVE_ARGUMENT' | 'ERR_NATIVE_CORRUPT' | 'ERR_NATIVE_SIZE' | 'ERR_NATIVE_INTERNAL';

interface Addon {
  version: string;
  compress(codec: Codec, src: Uint8Array, level: number): Buffer;
  decompress(codec: Codec, src: Uint8Array, size?: number, maxSize?: number): Buffer;
  decompressInto(codec: Codec, src: Uint8Array, dst: Uint8Array): number;
  digest(algo: DigestAlgorithm, src: Uint8Array): Buffer;
  hasherCreate(algo: DigestAlgorithm): unknown;
  hasherUpdate(handle: unknown, src: Uint8Array): void;
  hasherClone(handle: unknown): unknown;
  hasherFinish(handle: unknown): Buffer;
  compressBatch(codec: Codec, srcs: Uint8Array[], level: number): Promise<Buffer[]>;
  decompressBatch(codec: Codec, srcs: Uint8Array[], sizes?: (number | undefined)[], maxSize?: number): Promise<Buffer[]>;
  digestBatch(algo: DigestAlgorithm, srcs: Uint8Array[]): Promise<Buffer[]>;
  memberDecodeInto(codec: MemberCodec, src: Uint8Array, skip: number, dst: Uint8Array): number;
  memberDecodeBatch(codec: MemberCodec, srcs: Uint8Array[], skips: number[], sizes: number[]): Promise<Buffer[]>;
  gzipIndexCreate(span: number): unknown;
  gzipIndexPush(handle: unknown, src: Uint8Array): void;
  gzipIndexPull(handle: unknown): Buffer;
  gzipIndexTake(handle: unknown): [Buffer, [number, number, number, Buffer][]];
  gzipIndexFinish(handle: unknown): void;
  gzipExtractInto(src: Uint8Array, bits: number, window: Uint8Array, skip: number, dst: Uint8Array): number;
  zstdStreamCreate(): unknown;
  zstdStreamPush(handle: unknown, src: Uint8Array): void;
  zstdStreamPull(handle: unknown): Buffer;
  zstdStreamFinish(handle: unknown): void;
  gzipMemberStreamCreate(algo: DigestAlgorithm, skip: number, size: number): unknown;
  gzipMemberStreamPush(handle: unknown, src: Uint8Array, dst: Uint8Array): number;
  gzipMemberStreamFinish(handle: unknown): Buffer;
  pidfdGetfd(pid: number, fd: number): number;
  fdSend(path: string, fd: number, data: Uint8Array, timeoutMs: number): void;
  fdReceive(path: string, timeoutMs: number): [number, Buffer];
  pidfdOpen(pid: number): number;
  pidfdSendSignal(pidfd: number, signal: number): number;
  flockTryExclusive(fd: number): number;
  mountReadOnly(fstype: string, source: string, target: string, options: string): void;
  netlinkGenericTransact(message: Uint8Array, timeoutMs: number): Buffer;
  mknod(path: Uint8Array, mode: number, major: number, minor: number): void;
  lsetxattr(path: Uint8Array, name: Uint8Array, value: Uint8Array): void;
}

function addonPath(): string {
  if (process.env.NYDUSIFY_NATIVE_PATH) return process.env.NYDUSIFY_NATIVE_PATH;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`nydusify-ts native module: unsupported platform ${process.platform}-${process.arch}`);
  }
  // src/native/index.ts and dist/native/index.js both sit two levels below the repo root
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return join(root, 'native', 'nydusify-native.linux-x64-gnu.node');
}

function load(): Addon {
  const path = addonPath();
  try {
    return createRequire(import.meta.url)(path) as Addon;
  } catch (err) {
    throw new Error(`cannot load the native module ${path} (run \`npm run build\`): ${(err as Error).message}`);
  }
}

const addon = load();

export const nativeVersion = addon.version;

export const DEFAULT_LEVEL: Record<Codec, number> = { zstd: 3, lz4_block: 0, gzip: 6, deflate: 6 };

export function compress(codec: Codec, src: Uint8Array, level = DEFAULT_LEVEL[codec]): Buffer {
  return addon.compress(codec, src, level);
}

/**
 * Decompresses `src`. With `size`, the result must have exactly that length (else ERR_NATIVE_SIZE);
 * without it, the size comes from the data (zstd frame header) or is grown up to `maxSize`
 * (default 1 GiB). lz4_block always needs `size`.
 */
export function decompress(codec: Codec, src: Uint8Array, opts: { size?: number; maxSize?: number } = {}): Buffer {
  const { size } = opts;
  // an odd size is the addon's to refuse, with its own error codes
  if (size === undefined || !Number.isSafeInteger(size) || size < 0 || size > 1 << 30) return addon.decompress(codec, src, size, opts.maxSize);
  // a size known up front: decode into memory V8 owns and frees by itself (see decompressInto)
  const out = Buffer.allocUnsafeSlow(size);
  addon.decompressInto(codec, src, out);
  return out;
}

/**
 * Decompresses into `dst`, which must be exactly the decompressed size; returns that size. Into a
 * buffer V8 allocated, the result is freed by garbage collection alone, with no finalizer to run
 * on the event loop: what FUSE worker threads (which never return to theirs) need.
 */
export function decompressInto(codec: Codec, src: Uint8Array, dst: Uint8Array): number {
  return addon.decompressInto(codec, src, dst);
}

export const zstdCompress = (src: Uint8Array, level = DEFAULT_LEVEL.zstd): Buffer => compress('zstd', src, level);
export const zstdDecompress = (src: Uint8Array, size?: number): Buffer => decompress('zstd', src, { size });
export const lz4BlockCompress = (src: Uint8Array): Buffer => compress('lz4_block', src);
export const lz4BlockDecompress = (src: Uint8Array, size: number): Buffer => decompress('lz4_block', src, { size });
export const gzipCompress = (src: Uint8Array, level = DEFAULT_LEVEL.gzip): Buffer => compress('gzip', src, level);
export const gzipDecompress = (src: Uint8Array, size?: number): Buffer => decompress('gzip', src, { size });
export const deflateRawCompress = (src: Uint8Array, level = DEFAULT_LEVEL.deflate): Buffer => compress('deflate', src, level);
export const deflateRawDecompress = (src: Uint8Array, size?: number): Buffer => decompress('deflate', src, { size });

/** The raw 32-byte digest. */
export function digest(algo: DigestAlgorithm, src: Uint8Array): Buffer {
  return addon.digest(algo, src);
}

export const blake3Raw = (src: Uint8Array): Buffer => digest('blake3', src);
export const blake3 = (src: Uint8Array): string => digest('blake3', src).toString('hex');
export const sha256Raw = (src: Uint8Array): Buffer => digest('sha256', src);
export const sha256 = (src: Uint8Array): string => digest('sha256', src).toString('hex');

/** Incremental digest of a stream; `digest()` may be called once. */
export class Hasher {
  private readonly handle: unknown;

  constructor(readonly algorithm: DigestAlgorithm, from?: Hasher) {
    this.handle = from ? addon.hasherClone(from.handle) : addon.hasherCreate(algorithm);
  }

  /** An independent hasher in the same state: the digest of a prefix while this one goes on. */
  clone(): Hasher {
    return new Hasher(this.algorithm, this);
  }

  update(src: Uint8Array): this {
    addon.hasherUpdate(this.handle, src);
    return this;
  }

  digest(): Buffer {
    return addon.hasherFinish(this.handle);
  }

  hexDigest(): string {
    return this.digest().toString('hex');
  }
}

/** How many pool jobs a batch is split into: one per core keeps both cores busy. */
const batchWays = Math.max(1, availableParallelism());

async function splitBatch<T>(items: T[], run: (part: T[], start: number) => Promise<Buffer[]>): Promise<Buffer[]> {
  if (items.length === 0) return [];
  const per = Math.ceil(items.length / Math.min(batchWays, items.length));
  const parts: Promise<Buffer[]>[] = [];
  for (let start = 0; start < items.length; start += per) {
    // argument errors throw synchronously, item errors reject: both get renumbered
    const part = (async () => run(items.slice(start, start + per), start))();
    parts.push(part.catch((err: Error) => {
      throw renumber(err, start);
    }));
  }
  return (await Promise.all(parts)).flat();
}

/** The addon numbers items within its part of a batch; make the numbers refer to the whole batch. */
function renumber(err: Error, start: number): Error {
  err.message = err.message
    .replace(/^item (\d+):/, (_m, i: string) => `item ${start + Number(i)}:`)
    .replace(/^(inputs|sizes|skips)\[(\d+)\]/, (_m, what: string, i: string) => `${what}[${start + Number(i)}]`);
  return err;
}

/** Compresses every input on the libuv thread pool. */
export function compressBatch(codec: Codec, srcs: Uint8Array[], level = DEFAULT_LEVEL[codec]): Promise<Buffer[]> {
  return splitBatch(srcs, (part) => addon.compressBatch(codec, part, level));
}

/** Decompresses every input on the libuv thread pool; `sizes[i]` is required for lz4_block. */
export function decompressBatch(codec: Codec, srcs: Uint8Array[], sizes?: (number | undefined)[], maxSize?: number): Promise<Buffer[]> {
  if (sizes && sizes.length !== srcs.length) {
    return Promise.reject(new RangeError(`sizes has ${sizes.length} entries for ${srcs.length} inputs`));
  }
  return splitBatch(srcs, (part, start) => addon.decompressBatch(codec, part, sizes?.slice(start, start + part.length), maxSize));
}

/** Raw digests of every input, computed on the libuv thread pool. */
export async function digestBatch(algo: DigestAlgorithm, srcs: Uint8Array[]): Promise<Buffer[]> {
  const digests = await splitBatch(srcs, (part) => addon.digestBatch(algo, part));
  // views into one buffer: callers keep digests for long, and one small native buffer each costs more than the digest
  const all = Buffer.concat(digests);
  return digests.map((_d, i) => all.subarray(i * 32, i * 32 + 32));
}

/**
 * Fills `dst` from the FIRST gzip member or zstd frame at the start of `src`, after dropping its
 * first `skip` decoded bytes; returns dst.length. Decoding stops once `dst` is full: whatever the
 * member holds after that (or members after it) is never decoded, so the work is bounded by
 * `skip + dst.length`. A member that ends, or input that runs out, before `dst` is full is an
 * ERR_NATIVE_CORRUPT. The gzip trailer's CRC is not reached: verify the bytes' digest.
 */
export function decodeMemberInto(codec: MemberCodec, src: Uint8Array, skip: number, dst: Uint8Array): number {
  return addon.memberDecodeInto(codec, src, skip, dst);
}

/** decodeMemberInto into a new buffer of `size` bytes (V8-owned: see decompressInto). */
export function decodeMember(codec: MemberCodec, src: Uint8Array, skip: number, size: number): Buffer {
  const out = Buffer.allocUnsafeSlow(size);
  addon.memberDecodeInto(codec, src, skip, out);
  return out;
}

/** decodeMember of every input on the libuv thread pool. */
export function decodeMemberBatch(codec: MemberCodec, srcs: Uint8Array[], skips: number[], sizes: number[]): Promise<Buffer[]> {
  if (skips.length !== srcs.length || sizes.length !== srcs.length) {
    return Promise.reject(new RangeError(`${skips.length} skips and ${sizes.length} sizes for ${srcs.length} inputs`));
  }
  return splitBatch(srcs, (part, start) => addon.memberDecodeBatch(codec, part, skips.slice(start, start + part.length), sizes.slice(start, start + part.length)));
}

/**
 * The first gzip member of bytes fed in pieces as they arrive, decoded as each comes, as
 * decodeMemberInto decodes it whole: its first `skip` decoded bytes dropped, the next fill `out`
 * (exactly the size wanted), nothing past them decoded. Each piece is inflated into `out` and
 * hashed with `algo` at once, so the digest is ready when the last piece is in.
 */
export class GzipMemberStream {
  private readonly handle: unknown;

  constructor(algo: DigestAlgorithm, skip: number, readonly out: Buffer) {
    this.handle = addon.gzipMemberStreamCreate(algo, skip, out.length);
  }

  /** Decodes the next piece of the member (ERR_NATIVE_CORRUPT if it is not one); whether `out` is full. */
  push(src: Uint8Array): boolean {
    return addon.gzipMemberStreamPush(this.handle, src, this.out) === this.out.length;
  }

  /** The digest of `out`, once it is full (else ERR_NATIVE_CORRUPT: the member ended, or its bytes did, first). */
  digest(): Buffer {
    return addon.gzipMemberStreamFinish(this.handle);
  }
}

/**
 * Decodes a zstd stream (one or more frames) fed in arbitrary pieces. Output is pulled in pieces
 * of at most 1 MiB, so memory stays bounded however far a piece of input expands.
 */
export class ZstdDecompressStream {
  private readonly handle = addon.zstdStreamCreate();

  /** Feeds compressed bytes (copied: `src` may be reused at once); pull() then returns their output. */
  push(src: Uint8Array): void {
    addon.zstdStreamPush(this.handle, src);
  }

  /**
   * The next piece of output (at most 1 MiB); empty once everything the pushed input completed has
   * been returned. Pushing again before that is an ERR_NATIVE_ARGUMENT.
   */
  pull(): Buffer {
    return addon.zstdStreamPull(this.handle);
  }

  /** Throws ERR_NATIVE_CORRUPT when the input ended inside a frame (or there was none). */
  end(): void {
    addon.zstdStreamFinish(this.handle);
  }
}

/**
 * Where decoding an unmodified gzip stream may start again (a deflate block boundary): `input`
 * bytes into the stream, with `bits` (0–7) of the byte before not yet consumed, `output` bytes into
 * the output, which ended with `window` (the last ≤ 32 KiB, what back-references may reach).
 */
export interface GzipCheckpoint {
  input: number;
  output: number;
  bits: number;
  window: Buffer;
}

/** The stored bytes decoding from a checkpoint starts at: the byte holding its first bits when it has any. */
export const checkpointStart = (c: Pick<GzipCheckpoint, 'input' | 'bits'>): number => c.input - (c.bits > 0 ? 1 : 0);

/**
 * One pass over a gzip stream (members one after another are one stream) fed in arbitrary pieces:
 * its output, pulled in pieces of at most 1 MiB, and beside it a checkpoint at most every `span`
 * bytes of output and marks, (input, output) pairs at every block boundary and every 16 KiB of
 * output, from which the stored bytes holding a range of the output are known.
 */
export class GzipIndexStream {
  private readonly handle: unknown;

  constructor(span: number) {
    this.handle = addon.gzipIndexCreate(span);
  }

  /** Feeds compressed bytes (copied); pull() then returns their output. */
  push(src: Uint8Array): void {
    addon.gzipIndexPush(this.handle, src);
  }

  /** The next piece of output (at most 1 MiB); empty once the pushed input is all decoded. */
  pull(): Buffer {
    return addon.gzipIndexPull(this.handle);
  }

  /**
   * Marks (input, output offsets, interleaved) recorded since the last call, and the
   * checkpoints whose windows are final: reduced, a little after each checkpoint, to the bytes
   * decoding from it uses (the rest zero). The last ones come after end().
   */
  take(): { marks: Float64Array; checkpoints: GzipCheckpoint[] } {
    const [marks, cps] = addon.gzipIndexTake(this.handle);
    return {
      marks: new Float64Array(marks.buffer.slice(marks.byteOffset, marks.byteOffset + marks.length)),
      checkpoints: cps.map(([input, output, bits, window]) => ({ input, output, bits, window })),
    };
  }

  /** Throws ERR_NATIVE_CORRUPT when the input ended inside a gzip member (or there was none). */
  end(): void {
    addon.gzipIndexFinish(this.handle);
  }
}

/**
 * Fills `dst` with the output of a gzip stream from `skip` bytes past a checkpoint on, decoding
 * `stored` (the stream's bytes from checkpointStart on) with the checkpoint's bits and window. The
 * work is bounded by `skip + dst.length`. Stored bytes that run out or do not decode are an
 * ERR_NATIVE_CORRUPT; nothing checks what they decode to: verify its digest.
 */
export function gzipExtractInto(stored: Uint8Array, bits: number, window: Uint8Array, skip: number, dst: Uint8Array): void {
  addon.gzipExtractInto(stored, bits, window, skip, dst);
}

/**
 * A copy, in this process, of descriptor `fd` of process `pid` (pidfd_getfd(2); close-on-exec).
 * Needs ptrace rights over it (root) and Linux 5.6.
 */
/**
 * Sends descriptor `fd` with `data` to the unix socket at `path` (SCM_RIGHTS with the first bytes),
 * then closes the connection: how nydusd hands its /dev/fuse descriptor to a supervisor.
 */
export function fdSendTo(path: string, fd: number, data: Uint8Array, timeoutMs = 5000): void {
  addon.fdSend(path, fd, data, timeoutMs);
}

/**
 * The one descriptor and the message the unix socket at `path` sends, read until it closes (a
 * supervisor handing a FUSE connection back). The descriptor is close-on-exec and the caller's.
 */
export function fdReceiveFrom(path: string, timeoutMs = 5000): { fd: number; data: Buffer } {
  const [fd, data] = addon.fdReceive(path, timeoutMs);
  return { fd, data };
}

export function pidfdGetfd(pid: number, fd: number): number {
  return addon.pidfdGetfd(pid, fd);
}

/** A descriptor naming process `pid` while held (pidfd_open(2)), or undefined when there is no such process. */
export function pidfdOpen(pid: number): number | undefined {
  const fd = addon.pidfdOpen(pid);
  return fd < 0 ? undefined : fd;
}

/** Sends signal number `signal` to the process `pidfd` names; false when it has exited. */
export function pidfdSendSignal(pidfd: number, signal: number): boolean {
  return addon.pidfdSendSignal(pidfd, signal) === 1;
}

/** mount(2) read-only of `source` at `target`: a regular file is read by the filesystem itself, no loop device. */
export function mountReadOnly(fstype: string, source: string, target: string, options = ''): void {
  addon.mountReadOnly(fstype, source, target, options);
}

/**
 * mknod(2): node `path` (bytes: a layer's names need not be UTF-8) of type and permissions `mode`
 * (S_IFCHR, S_IFBLK or S_IFIFO, umask applied), device `major:minor`.
 */
export function mknod(path: Uint8Array, mode: number, major = 0, minor = 0): void {
  addon.mknod(path, mode, major, minor);
}

/** lsetxattr(2): extended attribute `name` of `path` itself (a symlink's own) set to `value`. */
export function lsetxattr(path: Uint8Array, name: Uint8Array, value: Uint8Array): void {
  addon.lsetxattr(path, name, value);
}

/** Takes flock(2)'s exclusive lock on `fd` if nobody holds it; the kernel drops it when the descriptor closes. */
export function flockTryExclusive(fd: number): boolean {
  return addon.flockTryExclusive(fd) === 1;
}

/**
 * One generic-netlink exchange (AF_NETLINK, NETLINK_GENERIC): sends `message`, one complete netlink
 * request, and returns the kernel's reply messages, concatenated, through the first NLMSG_ERROR
 * (an ack is error 0) or NLMSG_DONE. The request must set NLM_F_ACK. Synchronous: the kernel's
 * answer takes microseconds; `timeoutMs` bounds a kernel that never answers.
 */
export function netlinkGenericTransact(message: Uint8Array, timeoutMs = 5000): Buffer {
  return addon.netlinkGenericTransact(message, timeoutMs);
}
