// The NBD protocol (NetworkBlockDevice/nbd doc/proto.md, big endian) as a pure codec: the fixed newstyle
// handshake, option requests and replies, transmission requests, simple and structured replies. No I/O.
// Every decoder checks lengths against the bytes it was given and throws NbdProtocolError on anything
// malformed, so the serving loop drops that one client instead of dying.

/** 'NBDMAGIC', the first 8 bytes a server sends. */
export const NBD_MAGIC = 0x4e42444d41474943n;
/** 'IHAVEOPT': the newstyle greeting's second magic, and the magic of every option request. */
export const IHAVEOPT = 0x49484156454f5054n;
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

export const GREETING_SIZE = 18;
export const CLIENT_FLAGS_SIZE = 4;
export const OPTION_HEADER_SIZE = 16;
export const OPTION_REPLY_HEADER_SIZE = 20;
export const REQUEST_SIZE = 28;
export const SIMPLE_REPLY_SIZE = 16;
export const STRUCTURED_HEADER_SIZE = 20;
/** The reserved zeroes after an NBD_OPT_EXPORT_NAME reply, unless NO_ZEROES was negotiated. */
export const EXPORT_NAME_PADDING = 124;
/** Strings (export names, queries, messages) MUST NOT be longer than this. */
export const MAX_STRING = 4096;

export const HandshakeFlag = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;
export const ClientFlag = { FIXED_NEWSTYLE: 1 << 0, NO_ZEROES: 1 << 1 } as const;

export const TransmissionFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
} as const;

export const Opt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const;

/** Option reply types; errors have bit 31 set. */
export const Rep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_PLATFORM: 0x80000004,
  ERR_TLS_REQD: 0x80000005,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
  ERR_BLOCK_SIZE_REQD: 0x80000008,
  ERR_TOO_BIG: 0x80000009,
} as const;

export function isErrorReply(type: number): boolean {
  return type >= 0x80000000;
}

export const Info = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

export const Cmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
  RESIZE: 8,
} as const;

export const CmdFlag = { FUA: 1 << 0, NO_HOLE: 1 << 1, DF: 1 << 2, REQ_ONE: 1 << 3, FAST_ZERO: 1 << 4 } as const;

export const ReplyFlag = { DONE: 1 << 0 } as const;

/** Error chunk types have bit 15 set. */
export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: 0x8001,
  ERROR_OFFSET: 0x8002,
} as const;

/** The error values of the transmission phase (the spec's fixed subset of errno). */
export const NbdErrno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** base:allocation extent flags. */
export const State = { HOLE: 1 << 0, ZERO: 1 << 1 } as const;
export const BASE_ALLOCATION = 'base:allocation';

/** Bytes that do not follow the protocol: the connection they came on cannot go on. */
export class NbdProtocolError extends Error {}

function need(buf: Buffer, size: number, what: string): void {
  if (buf.length < size) throw new NbdProtocolError(`${what}: ${buf.length} bytes, need ${size}`);
}

function exactly(buf: Buffer, size: number, what: string): void {
  if (buf.length !== size) throw new NbdProtocolError(`${what}: ${buf.length} bytes, expected ${size}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A protocol string: valid UTF-8, no NUL, at most MAX_STRING bytes. */
function decodeString(bytes: Buffer, what: string): string {
  if (bytes.length > MAX_STRING) throw new NbdProtocolError(`${what}: ${bytes.length} bytes, at most ${MAX_STRING}`);
  if (bytes.includes(0)) throw new NbdProtocolError(`${what}: contains NUL`);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new NbdProtocolError(`${what}: not UTF-8`);
  }
}

function encodeString(s: string, what: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length > MAX_STRING) throw new RangeError(`${what}: ${bytes.length} bytes, at most ${MAX_STRING}`);
  return bytes;
}

/** A u64 as a number; values past 2^53 (never valid sizes or offsets here) become Infinity. */
function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64BE(at);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : Infinity;
}

/** A string preceded by its u32 length, at `at` of `buf`; returns it and where the next field starts. */
function lengthPrefixed(buf: Buffer, at: number, what: string): { value: string; next: number } {
  need(buf, at + 4, what);
  const len = buf.readUInt32BE(at);
  if (len > buf.length - at - 4) throw new NbdProtocolError(`${what}: length ${len} past the end of ${buf.length} bytes`);
  return { value: decodeString(buf.subarray(at + 4, at + 4 + len), what), next: at + 4 + len };
}

/** A message for people, cut to MAX_STRING bytes on a character boundary. */
function messageBytes(message: string): Buffer {
  const bytes = Buffer.from(message, 'utf8');
  if (bytes.length <= MAX_STRING) return bytes;
  let end = MAX_STRING;
  while ((bytes[end]! & 0xc0) === 0x80) end--; // not inside a UTF-8 sequence
  return bytes.subarray(0, end);
}

function withLength(s: string, what: string): Buffer {
  const bytes = encodeString(s, what);
  const out = Buffer.alloc(4 + bytes.length);
  out.writeUInt32BE(bytes.length, 0);
  bytes.copy(out, 4);
  return out;
}

// ---- handshake ----

export function encodeGreeting(handshakeFlags: number): Buffer {
  const out = Buffer.alloc(GREETING_SIZE);
  out.writeBigUInt64BE(NBD_MAGIC, 0);
  out.writeBigUInt64BE(IHAVEOPT, 8);
  out.writeUInt16BE(handshakeFlags, 16);
  return out;
}

/** The server's newstyle greeting; returns its handshake flags. Oldstyle servers are refused. */
export function decodeGreeting(buf: Buffer): number {
  exactly(buf, GREETING_SIZE, 'greeting');
  if (buf.readBigUInt64BE(0) !== NBD_MAGIC) throw new NbdProtocolError('greeting: not NBDMAGIC');
  if (buf.readBigUInt64BE(8) !== IHAVEOPT) throw new NbdProtocolError('greeting: not a newstyle server');
  return buf.readUInt16BE(16);
}

export function encodeClientFlags(flags: number): Buffer {
  const out = Buffer.alloc(CLIENT_FLAGS_SIZE);
  out.writeUInt32BE(flags >>> 0, 0);
  return out;
}

export function decodeClientFlags(buf: Buffer): number {
  exactly(buf, CLIENT_FLAGS_SIZE, 'client flags');
  return buf.readUInt32BE(0);
}

// ---- option requests ----

export interface OptionHeader {
  option: number;
  length: number;
}

export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(OPTION_HEADER_SIZE + data.length);
  out.writeBigUInt64BE(IHAVEOPT, 0);
  out.writeUInt32BE(option, 8);
  out.writeUInt32BE(data.length, 12);
  data.copy(out, OPTION_HEADER_SIZE);
  return out;
}

export function decodeOptionHeader(buf: Buffer): OptionHeader {
  exactly(buf, OPTION_HEADER_SIZE, 'option header');
  if (buf.readBigUInt64BE(0) !== IHAVEOPT) throw new NbdProtocolError('option header: not IHAVEOPT');
  return { option: buf.readUInt32BE(8), length: buf.readUInt32BE(12) };
}

/** The data of NBD_OPT_EXPORT_NAME: the name, nothing else. */
export function encodeExportNameData(name: string): Buffer {
  return encodeString(name, 'export name');
}

export function decodeExportNameData(data: Buffer): string {
  return decodeString(data, 'export name');
}

/** The data of NBD_OPT_INFO and NBD_OPT_GO: an export name and the NBD_INFO_* types asked for. */
export interface InfoRequest {
  name: string;
  requests: number[];
}

export function encodeInfoRequest(req: InfoRequest): Buffer {
  const list = Buffer.alloc(2 + 2 * req.requests.length);
  list.writeUInt16BE(req.requests.length, 0);
  req.requests.forEach((r, i) => list.writeUInt16BE(r, 2 + 2 * i));
  return Buffer.concat([withLength(req.name, 'export name'), list]);
}

export function decodeInfoRequest(data: Buffer): InfoRequest {
  const { value: name, next } = lengthPrefixed(data, 0, 'info request name');
  need(data, next + 2, 'info request count');
  const count = data.readUInt16BE(next);
  exactly(data, next + 2 + 2 * count, `info request with ${count} types`);
  const requests = Array.from({ length: count }, (_, i) => data.readUInt16BE(next + 2 + 2 * i));
  return { name, requests };
}

/** The data of NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT. */
export interface MetaContextRequest {
  exportName: string;
  queries: string[];
}

export function encodeMetaContextRequest(req: MetaContextRequest): Buffer {
  const count = Buffer.alloc(4);
  count.writeUInt32BE(req.queries.length, 0);
  return Buffer.concat([withLength(req.exportName, 'export name'), count, ...req.queries.map((q) => withLength(q, 'query'))]);
}

export function decodeMetaContextRequest(data: Buffer): MetaContextRequest {
  const { value: exportName, next } = lengthPrefixed(data, 0, 'meta context export name');
  need(data, next + 4, 'meta context query count');
  const count = data.readUInt32BE(next);
  // each query takes at least its 4-byte length: a count the data cannot hold is refused before looping
  if (count > (data.length - next - 4) / 4) throw new NbdProtocolError(`meta context: ${count} queries in ${data.length} bytes`);
  const queries: string[] = [];
  let at = next + 4;
  for (let i = 0; i < count; i++) {
    const q = lengthPrefixed(data, at, 'meta context query');
    queries.push(q.value);
    at = q.next;
  }
  exactly(data, at, 'meta context request');
  return { exportName, queries };
}

// ---- option replies ----

export interface OptionReplyHeader {
  option: number;
  type: number;
  length: number;
}

export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(OPTION_REPLY_HEADER_SIZE + data.length);
  out.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  out.writeUInt32BE(option, 8);
  out.writeUInt32BE(type, 12);
  out.writeUInt32BE(data.length, 16);
  data.copy(out, OPTION_REPLY_HEADER_SIZE);
  return out;
}

export function decodeOptionReplyHeader(buf: Buffer): OptionReplyHeader {
  exactly(buf, OPTION_REPLY_HEADER_SIZE, 'option reply header');
  if (buf.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new NbdProtocolError('option reply: bad magic');
  return { option: buf.readUInt32BE(8), type: buf.readUInt32BE(12), length: buf.readUInt32BE(16) };
}

/** An error reply: its type and a message for people. */
export function encodeOptionError(option: number, type: number, message: string): Buffer {
  return encodeOptionReply(option, type, messageBytes(message));
}

/** NBD_REP_SERVER data: one export of NBD_OPT_LIST, with an optional description for people. */
export function encodeServerReply(name: string, description = ''): Buffer {
  return Buffer.concat([withLength(name, 'export name'), encodeString(description, 'export description')]);
}

export function decodeServerReply(data: Buffer): { name: string; description: string } {
  const { value: name, next } = lengthPrefixed(data, 0, 'server reply');
  return { name, description: decodeString(data.subarray(next), 'server reply description') };
}

/** NBD_REP_META_CONTEXT data: a context id and its name. */
export function encodeMetaContextReply(id: number, name: string): Buffer {
  const bytes = encodeString(name, 'context name');
  const out = Buffer.alloc(4 + bytes.length);
  out.writeUInt32BE(id, 0);
  bytes.copy(out, 4);
  return out;
}

export function decodeMetaContextReply(data: Buffer): { id: number; name: string } {
  need(data, 4, 'meta context reply');
  return { id: data.readUInt32BE(0), name: decodeString(data.subarray(4), 'meta context name') };
}

/** NBD_REP_INFO data, by type. */
export type InfoReply =
  | { type: typeof Info.EXPORT; size: number; flags: number }
  | { type: typeof Info.NAME; name: string }
  | { type: typeof Info.DESCRIPTION; description: string }
  | { type: typeof Info.BLOCK_SIZE; minimum: number; preferred: number; maximum: number }
  | { type: 'unknown'; info: number };

export function encodeInfoReply(info: Exclude<InfoReply, { type: 'unknown' }>): Buffer {
  const head = Buffer.alloc(2);
  head.writeUInt16BE(info.type, 0);
  switch (info.type) {
    case Info.EXPORT: {
      const body = Buffer.alloc(10);
      body.writeBigUInt64BE(BigInt(info.size), 0);
      body.writeUInt16BE(info.flags, 8);
      return Buffer.concat([head, body]);
    }
    case Info.NAME:
      return Buffer.concat([head, encodeString(info.name, 'export name')]);
    case Info.DESCRIPTION:
      return Buffer.concat([head, encodeString(info.description, 'export description')]);
    case Info.BLOCK_SIZE: {
      const body = Buffer.alloc(12);
      body.writeUInt32BE(info.minimum, 0);
      body.writeUInt32BE(info.preferred, 4);
      body.writeUInt32BE(info.maximum, 8);
      return Buffer.concat([head, body]);
    }
  }
}

export function decodeInfoReply(data: Buffer): InfoReply {
  need(data, 2, 'info reply');
  const type = data.readUInt16BE(0);
  const body = data.subarray(2);
  switch (type) {
    case Info.EXPORT:
      exactly(body, 10, 'NBD_INFO_EXPORT');
      return { type, size: u64(body, 0), flags: body.readUInt16BE(8) };
    case Info.NAME:
      return { type, name: decodeString(body, 'NBD_INFO_NAME') };
    case Info.DESCRIPTION:
      return { type, description: decodeString(body, 'NBD_INFO_DESCRIPTION') };
    case Info.BLOCK_SIZE:
      exactly(body, 12, 'NBD_INFO_BLOCK_SIZE');
      return { type, minimum: body.readUInt32BE(0), preferred: body.readUInt32BE(4), maximum: body.readUInt32BE(8) };
    default:
      return { type: 'unknown', info: type };
  }
}

/** The reply to NBD_OPT_EXPORT_NAME (no option reply header): size, transmission flags, padding. */
export function encodeExportNameReply(size: number, flags: number, noZeroes: boolean): Buffer {
  const out = Buffer.alloc(10 + (noZeroes ? 0 : EXPORT_NAME_PADDING));
  out.writeBigUInt64BE(BigInt(size), 0);
  out.writeUInt16BE(flags, 8);
  return out;
}

export function decodeExportNameReply(buf: Buffer): { size: number; flags: number } {
  need(buf, 10, 'export name reply');
  return { size: u64(buf, 0), flags: buf.readUInt16BE(8) };
}

// ---- transmission ----

export interface Request {
  flags: number;
  type: number;
  /** Opaque to the server: echoed in every reply to this request. */
  handle: bigint;
  offset: number;
  length: number;
}

export function encodeRequest(req: Request): Buffer {
  const out = Buffer.alloc(REQUEST_SIZE);
  out.writeUInt32BE(REQUEST_MAGIC, 0);
  out.writeUInt16BE(req.flags, 4);
  out.writeUInt16BE(req.type, 6);
  out.writeBigUInt64BE(req.handle, 8);
  out.writeBigUInt64BE(BigInt(req.offset), 16);
  out.writeUInt32BE(req.length, 24);
  return out;
}

export function decodeRequest(buf: Buffer): Request {
  exactly(buf, REQUEST_SIZE, 'request');
  const magic = buf.readUInt32BE(0);
  if (magic !== REQUEST_MAGIC) throw new NbdProtocolError(`request: bad magic 0x${magic.toString(16)}`);
  return {
    flags: buf.readUInt16BE(4),
    type: buf.readUInt16BE(6),
    handle: buf.readBigUInt64BE(8),
    offset: u64(buf, 16),
    length: buf.readUInt32BE(24),
  };
}

/** A simple reply's header; a successful NBD_CMD_READ's data follows it. */
export function encodeSimpleReply(handle: bigint, error: number): Buffer {
  const out = Buffer.alloc(SIMPLE_REPLY_SIZE);
  out.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  out.writeUInt32BE(error, 4);
  out.writeBigUInt64BE(handle, 8);
  return out;
}

export function decodeSimpleReply(buf: Buffer): { handle: bigint; error: number } {
  exactly(buf, SIMPLE_REPLY_SIZE, 'simple reply');
  if (buf.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) throw new NbdProtocolError('simple reply: bad magic');
  return { error: buf.readUInt32BE(4), handle: buf.readBigUInt64BE(8) };
}

export interface StructuredHeader {
  flags: number;
  type: number;
  handle: bigint;
  length: number;
}

export function encodeStructuredHeader(h: StructuredHeader): Buffer {
  const out = Buffer.alloc(STRUCTURED_HEADER_SIZE);
  out.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  out.writeUInt16BE(h.flags, 4);
  out.writeUInt16BE(h.type, 6);
  out.writeBigUInt64BE(h.handle, 8);
  out.writeUInt32BE(h.length, 16);
  return out;
}

export function decodeStructuredHeader(buf: Buffer): StructuredHeader {
  exactly(buf, STRUCTURED_HEADER_SIZE, 'structured reply header');
  if (buf.readUInt32BE(0) !== STRUCTURED_REPLY_MAGIC) throw new NbdProtocolError('structured reply: bad magic');
  return { flags: buf.readUInt16BE(4), type: buf.readUInt16BE(6), handle: buf.readBigUInt64BE(8), length: buf.readUInt32BE(16) };
}

/**
 * The header of an NBD_REPLY_TYPE_OFFSET_DATA chunk up to and including its offset: `dataLength` bytes
 * of data follow (written separately, so large reads are not copied).
 */
export function encodeOffsetDataHead(handle: bigint, flags: number, offset: number, dataLength: number): Buffer {
  const out = Buffer.alloc(STRUCTURED_HEADER_SIZE + 8);
  encodeStructuredHeader({ flags, type: ReplyType.OFFSET_DATA, handle, length: 8 + dataLength }).copy(out, 0);
  out.writeBigUInt64BE(BigInt(offset), STRUCTURED_HEADER_SIZE);
  return out;
}

export function encodeOffsetHole(handle: bigint, flags: number, offset: number, length: number): Buffer {
  const out = Buffer.alloc(STRUCTURED_HEADER_SIZE + 12);
  encodeStructuredHeader({ flags, type: ReplyType.OFFSET_HOLE, handle, length: 12 }).copy(out, 0);
  out.writeBigUInt64BE(BigInt(offset), STRUCTURED_HEADER_SIZE);
  out.writeUInt32BE(length, STRUCTURED_HEADER_SIZE + 8);
  return out;
}

export interface StatusDescriptor {
  length: number;
  flags: number;
}

export function encodeBlockStatus(handle: bigint, flags: number, contextId: number, descriptors: StatusDescriptor[]): Buffer {
  const payload = 4 + 8 * descriptors.length;
  const out = Buffer.alloc(STRUCTURED_HEADER_SIZE + payload);
  encodeStructuredHeader({ flags, type: ReplyType.BLOCK_STATUS, handle, length: payload }).copy(out, 0);
  out.writeUInt32BE(contextId, STRUCTURED_HEADER_SIZE);
  descriptors.forEach((d, i) => {
    out.writeUInt32BE(d.length, STRUCTURED_HEADER_SIZE + 4 + 8 * i);
    out.writeUInt32BE(d.flags, STRUCTURED_HEADER_SIZE + 8 + 8 * i);
  });
  return out;
}

/** NBD_REPLY_TYPE_ERROR, or NBD_REPLY_TYPE_ERROR_OFFSET when `offset` is given. */
export function encodeStructuredError(handle: bigint, flags: number, error: number, message: string, offset?: number): Buffer {
  const text = messageBytes(message);
  const tail = offset === undefined ? 0 : 8;
  const payload = 6 + text.length + tail;
  const type = offset === undefined ? ReplyType.ERROR : ReplyType.ERROR_OFFSET;
  const out = Buffer.alloc(STRUCTURED_HEADER_SIZE + payload);
  encodeStructuredHeader({ flags, type, handle, length: payload }).copy(out, 0);
  out.writeUInt32BE(error, STRUCTURED_HEADER_SIZE);
  out.writeUInt16BE(text.length, STRUCTURED_HEADER_SIZE + 4);
  text.copy(out, STRUCTURED_HEADER_SIZE + 6);
  if (offset !== undefined) out.writeBigUInt64BE(BigInt(offset), STRUCTURED_HEADER_SIZE + 6 + text.length);
  return out;
}

export function encodeNone(handle: bigint): Buffer {
  return encodeStructuredHeader({ flags: ReplyFlag.DONE, type: ReplyType.NONE, handle, length: 0 });
}

/** A structured reply chunk's payload, by type. */
export type StructuredPayload =
  | { type: typeof ReplyType.NONE }
  | { type: typeof ReplyType.OFFSET_DATA; offset: number; data: Buffer }
  | { type: typeof ReplyType.OFFSET_HOLE; offset: number; length: number }
  | { type: typeof ReplyType.BLOCK_STATUS; contextId: number; descriptors: StatusDescriptor[] }
  | { type: typeof ReplyType.ERROR | typeof ReplyType.ERROR_OFFSET; error: number; message: string; offset?: number }
  | { type: 'unknown'; replyType: number };

export function decodeStructuredPayload(type: number, payload: Buffer): StructuredPayload {
  switch (type) {
    case ReplyType.NONE:
      exactly(payload, 0, 'NBD_REPLY_TYPE_NONE');
      return { type };
    case ReplyType.OFFSET_DATA:
      need(payload, 9, 'NBD_REPLY_TYPE_OFFSET_DATA');
      return { type, offset: u64(payload, 0), data: payload.subarray(8) };
    case ReplyType.OFFSET_HOLE:
      exactly(payload, 12, 'NBD_REPLY_TYPE_OFFSET_HOLE');
      return { type, offset: u64(payload, 0), length: payload.readUInt32BE(8) };
    case ReplyType.BLOCK_STATUS: {
      if (payload.length < 12 || (payload.length - 4) % 8 !== 0) throw new NbdProtocolError(`NBD_REPLY_TYPE_BLOCK_STATUS: ${payload.length} bytes`);
      const descriptors = Array.from({ length: (payload.length - 4) / 8 }, (_, i) => ({
        length: payload.readUInt32BE(4 + 8 * i),
        flags: payload.readUInt32BE(8 + 8 * i),
      }));
      return { type, contextId: payload.readUInt32BE(0), descriptors };
    }
    case ReplyType.ERROR:
    case ReplyType.ERROR_OFFSET: {
      need(payload, 6, 'error chunk');
      const messageLength = payload.readUInt16BE(4);
      const tail = type === ReplyType.ERROR_OFFSET ? 8 : 0;
      exactly(payload, 6 + messageLength + tail, 'error chunk');
      const message = decodeString(payload.subarray(6, 6 + messageLength), 'error message');
      const offset = tail ? u64(payload, 6 + messageLength) : undefined;
      return { type, error: payload.readUInt32BE(0), message, ...(offset === undefined ? {} : { offset }) };
    }
    default:
      return { type: 'unknown', replyType: type };
  }
}
