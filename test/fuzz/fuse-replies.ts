// What a well-formed FUSE reply is, for the targets that feed requests to the router: one per request
// that expects one, its header's length the bytes written, the request's unique echoed, an error
// (a known errno, no payload) or a payload of the size the opcode's reply struct has, never more
// than the caller's buffer.
import {
  ATTR_OUT_SIZE, decodeOutHeader, DIRENT_HEADER_SIZE, DIRENTPLUS_HEADER_SIZE, direntplusSize, direntSize, ENTRY_OUT_SIZE, Errno, GETXATTR_OUT_SIZE,
  INIT_OUT_SIZE, MAX_NAME_LENGTH, MAX_WRITE, Opcode, OPEN_OUT_SIZE, OUT_HEADER_SIZE, STATFS_OUT_SIZE,
} from '../../src/daemon/fuse/protocol.js';

const ERRNOS = new Set<number>(Object.values(Errno));
const NO_REPLY = new Set<number>([Opcode.FORGET, Opcode.BATCH_FORGET, Opcode.INTERRUPT]);

export class MalformedReplyError extends Error {}

/** The parts of a reply are what the kernel accepts for `request` (exactly the bytes read). */
export function checkReply(request: Buffer, parts: Buffer[] | null): void {
  const fail = (why: string): never => {
    throw new MalformedReplyError(`${why}; request ${request.subarray(0, 200).toString('hex')}`);
  };
  const opcode = request.length >= 8 ? request.readUInt32LE(4) : -1;
  if (parts === null) {
    if (request.length >= 16 && !NO_REPLY.has(opcode)) fail('no reply');
    return;
  }
  if (request.length < 16) fail('a reply to a request without a unique');
  if (NO_REPLY.has(opcode)) fail(`a reply to opcode ${opcode}, which expects none`);
  if (parts.some((p) => p.length === 0)) fail('an empty reply part');
  const reply = Buffer.concat(parts);
  const h = decodeOutHeader(reply);
  if (h.len !== reply.length) fail(`header says ${h.len} bytes, reply has ${reply.length}`);
  if (h.unique !== request.readBigUInt64LE(8)) fail('unique not echoed');
  if (h.error > 0) fail(`positive error ${h.error}`);
  if (h.error < 0) {
    if (!ERRNOS.has(-h.error)) fail(`unknown errno ${-h.error}`);
    if (h.len !== OUT_HEADER_SIZE) fail('an error with a payload');
    return;
  }
  checkPayload(opcode, request, reply.subarray(OUT_HEADER_SIZE), fail);
}

const FIXED_SIZES = new Map<number, number>([
  [Opcode.LOOKUP, ENTRY_OUT_SIZE], [Opcode.GETATTR, ATTR_OUT_SIZE], [Opcode.STATFS, STATFS_OUT_SIZE], [Opcode.OPEN, OPEN_OUT_SIZE],
  [Opcode.OPENDIR, OPEN_OUT_SIZE], [Opcode.INIT, INIT_OUT_SIZE], [Opcode.ACCESS, 0], [Opcode.RELEASE, 0], [Opcode.RELEASEDIR, 0], [Opcode.DESTROY, 0],
]);

function checkPayload(opcode: number, request: Buffer, payload: Buffer, fail: (why: string) => never): void {
  const fixed = FIXED_SIZES.get(opcode);
  if (fixed !== undefined) {
    if (payload.length !== fixed) fail(`opcode ${opcode}: payload of ${payload.length} bytes, expected ${fixed}`);
    return;
  }
  // the caller's buffer: fuse_read_in.size, or fuse_getxattr_in.size
  const size = (): number => request.readUInt32LE(40 + (opcode === Opcode.GETXATTR || opcode === Opcode.LISTXATTR ? 0 : 16));
  switch (opcode) {
    case Opcode.READ:
      if (payload.length > Math.min(size(), MAX_WRITE)) fail(`READ of ${size()} answered with ${payload.length} bytes`);
      return;
    case Opcode.READDIR:
    case Opcode.READDIRPLUS:
      if (payload.length > Math.min(size(), MAX_WRITE)) fail(`READDIR of ${size()} answered with ${payload.length} bytes`);
      checkDirents(payload, opcode === Opcode.READDIRPLUS, fail);
      return;
    case Opcode.GETXATTR:
    case Opcode.LISTXATTR:
      if (size() === 0 ? payload.length !== GETXATTR_OUT_SIZE : payload.length > size()) fail(`xattr reply of ${payload.length} bytes for size ${size()}`);
      return;
    case Opcode.READLINK:
      // the kernel takes at most PATH_MAX - 1 bytes (a longer reply fails its write with EINVAL)
      if (payload.length > 4095) fail(`symlink target of ${payload.length} bytes`);
      return;
    default:
      fail(`success for opcode ${opcode}`);
  }
}

/** Packed dirents fill the payload exactly, each with a 1–255 byte name. */
function checkDirents(buf: Buffer, plus: boolean, fail: (why: string) => never): void {
  const header = plus ? DIRENTPLUS_HEADER_SIZE : DIRENT_HEADER_SIZE;
  let at = 0;
  while (at < buf.length) {
    if (at + header > buf.length) fail('a truncated dirent');
    const namelen = buf.readUInt32LE(at + header - 8);
    if (namelen === 0 || namelen > MAX_NAME_LENGTH) fail(`a dirent name of ${namelen} bytes`);
    at += plus ? direntplusSize(namelen) : direntSize(namelen);
  }
  if (at !== buf.length) fail('dirents overrun the payload');
}
