// Generic netlink, and the kernel nbd driver's family on it, as a pure codec: requests encoded,
// replies decoded, no I/O (the addon's netlinkGenericTransact moves the bytes). Numbers come from
// the Linux uapi headers include/uapi/linux/netlink.h, genetlink.h, nbd-netlink.h and nbd.h.
// Netlink is host byte order; the addon is built for x86_64 only, so that is little endian here.
// Replies are bounds-checked like any input: a length that runs past its container is an error,
// never a read past the end.
import { getSystemErrorName } from 'node:util';

// <linux/netlink.h>
export const NLMSG_HDRLEN = 16;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
/** On an NLMSG_ERROR: the request was echoed back without its payload (NETLINK_CAP_ACK). */
export const NLM_F_CAPPED = 0x100;
/** On an NLMSG_ERROR: extended-ack attributes follow the echoed request (NETLINK_EXT_ACK). */
export const NLM_F_ACK_TLVS = 0x200;
export const NLA_HDRLEN = 4;
export const NLA_F_NESTED = 0x8000;
const NLA_F_NET_BYTEORDER = 0x4000;
const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;
export const NLMSGERR_ATTR_MSG = 1;

// <linux/genetlink.h>
export const GENL_HDRLEN = 4;
export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
/** The version field of a request to the controller (the kernel ignores it; libnl sends 1). */
const CTRL_VERSION = 1;

// <linux/nbd-netlink.h>
export const NBD_GENL_FAMILY_NAME = 'nbd';
export const NBD_GENL_VERSION = 1;
export const NbdCmd = { CONNECT: 1, DISCONNECT: 2, RECONFIGURE: 3, LINK_DEAD: 4, STATUS: 5 } as const;
export const NbdAttr = {
  INDEX: 1, // u32
  SIZE_BYTES: 2, // u64
  BLOCK_SIZE_BYTES: 3, // u64
  TIMEOUT: 4, // u64, seconds
  SERVER_FLAGS: 5, // u64, the transmission flags of the handshake
  CLIENT_FLAGS: 6, // u64, NBD_CFLAG_*
  SOCKETS: 7, // nested: NBD_SOCK_ITEM { NBD_SOCK_FD u32 }...
  DEAD_CONN_TIMEOUT: 8, // u64, seconds
  DEVICE_LIST: 9, // nested: NBD_DEVICE_ITEM { NBD_DEVICE_INDEX u32, NBD_DEVICE_CONNECTED u8 }...
  BACKEND_IDENTIFIER: 10, // string
} as const;
export const NBD_SOCK_ITEM = 1;
export const NBD_SOCK_FD = 1;
export const NBD_DEVICE_ITEM = 1;
export const NBD_DEVICE_INDEX = 1;
export const NBD_DEVICE_CONNECTED = 2;

// <linux/nbd.h>
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
export const NBD_CFLAG_DESTROY_ON_DISCONNECT = 1 << 0;
export const NBD_CFLAG_DISCONNECT_ON_CLOSE = 1 << 1;

const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

/** A reply that is not well-formed netlink (truncated, a length past its end, a wrong type). */
export class NetlinkProtocolError extends Error {}

/** The kernel refused a request: NLMSG_ERROR with a non-zero error. */
export class NetlinkError extends Error {
  /** The errno name, e.g. ENOENT. */
  readonly code: string;

  constructor(readonly request: string, readonly errno: number, readonly extack?: string) {
    const code = errnoName(errno);
    super(`${request}: ${code}${extack ? ` (${extack})` : ''}`);
    this.code = code;
  }
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

const align4 = (n: number): number => (n + 3) & ~3;

// ---- encoding -------------------------------------------------------------------------------

/** One attribute: header, payload, zero padding to 4 bytes. */
export function nla(type: number, payload: Uint8Array): Buffer {
  const len = NLA_HDRLEN + payload.length;
  if (len > U16_MAX) throw new RangeError(`netlink attribute ${type & NLA_TYPE_MASK}: ${payload.length} bytes do not fit its 16-bit length`);
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  out.set(payload, NLA_HDRLEN);
  return out;
}

function checkInteger(name: string, value: number | bigint, max: bigint): bigint {
  const v = BigInt(value);
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new RangeError(`${name} must be an integer, got ${value}`);
  if (v < 0n || v > max) throw new RangeError(`${name} out of range: ${value}`);
  return v;
}

export function nlaU8(type: number, value: number): Buffer {
  return nla(type, Uint8Array.of(Number(checkInteger(`attribute ${type}`, value, 0xffn))));
}

export function nlaU32(type: number, value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(Number(checkInteger(`attribute ${type}`, value, BigInt(U32_MAX))), 0);
  return nla(type, b);
}

export function nlaU64(type: number, value: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(checkInteger(`attribute ${type}`, value, 0xffffffffffffffffn), 0);
  return nla(type, b);
}

/** A NUL-terminated string (NLA_STRING / NLA_NUL_STRING). */
export function nlaString(type: number, value: string): Buffer {
  if (value.includes('\0')) throw new RangeError(`attribute ${type}: a string with a NUL byte`);
  return nla(type, Buffer.from(`${value}\0`, 'utf8'));
}

/** A nested attribute: its payload is the children, each already padded. */
export function nlaNested(type: number, children: Buffer[]): Buffer {
  return nla(type | NLA_F_NESTED, Buffer.concat(children));
}

export interface GenlRequest {
  family: number;
  cmd: number;
  version: number;
  seq: number;
  attributes: Buffer[];
}

/**
 * nlmsghdr + genlmsghdr + attributes. Always NLM_F_REQUEST | NLM_F_ACK, so that every exchange
 * ends with an NLMSG_ERROR (an ack is error 0) and the addon knows when to stop reading. pid 0:
 * the kernel fills in our port.
 */
export function genlRequest(r: GenlRequest): Buffer {
  const attrs = Buffer.concat(r.attributes);
  const out = Buffer.alloc(NLMSG_HDRLEN + GENL_HDRLEN + attrs.length);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(checkU16('family', r.family), 4);
  out.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK, 6);
  out.writeUInt32LE(Number(checkInteger('seq', r.seq, BigInt(U32_MAX))), 8);
  out.writeUInt32LE(0, 12);
  out.writeUInt8(r.cmd, NLMSG_HDRLEN);
  out.writeUInt8(r.version, NLMSG_HDRLEN + 1);
  attrs.copy(out, NLMSG_HDRLEN + GENL_HDRLEN);
  return out;
}

function checkU16(name: string, v: number): number {
  return Number(checkInteger(name, v, BigInt(U16_MAX)));
}

/** CTRL_CMD_GETFAMILY by name: the controller answers with the family's id (or ENOENT). */
export function getFamilyRequest(name: string, seq = 1): Buffer {
  return genlRequest({ family: GENL_ID_CTRL, cmd: CTRL_CMD_GETFAMILY, version: CTRL_VERSION, seq, attributes: [nlaString(CTRL_ATTR_FAMILY_NAME, name)] });
}

/** What NBD_CMD_CONNECT and NBD_CMD_RECONFIGURE carry; attributes left out keep the kernel's value. */
export interface NbdSettings {
  index?: number;
  sizeBytes?: number | bigint;
  blockSizeBytes?: number;
  timeoutSeconds?: number;
  serverFlags?: number;
  clientFlags?: number;
  /** Socket descriptors in the sending process, in the transmission phase of the NBD protocol. */
  sockets?: number[];
  deadConnTimeoutSeconds?: number;
  /** A name the kernel keeps for the device: RECONFIGURE must then give the same one. */
  backend?: string;
}

function socketsAttribute(fds: number[]): Buffer {
  return nlaNested(NbdAttr.SOCKETS, fds.map((fd) => {
    if (!Number.isSafeInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new RangeError(`not a descriptor: ${fd}`);
    return nlaNested(NBD_SOCK_ITEM, [nlaU32(NBD_SOCK_FD, fd)]);
  }));
}

/** The attributes of `s`, in the header's order. */
function nbdAttributes(s: NbdSettings): Buffer[] {
  const out: Buffer[] = [];
  if (s.index !== undefined) out.push(nlaU32(NbdAttr.INDEX, s.index));
  if (s.sizeBytes !== undefined) out.push(nlaU64(NbdAttr.SIZE_BYTES, s.sizeBytes));
  if (s.blockSizeBytes !== undefined) out.push(nlaU64(NbdAttr.BLOCK_SIZE_BYTES, s.blockSizeBytes));
  if (s.timeoutSeconds !== undefined) out.push(nlaU64(NbdAttr.TIMEOUT, s.timeoutSeconds));
  if (s.serverFlags !== undefined) out.push(nlaU64(NbdAttr.SERVER_FLAGS, s.serverFlags));
  if (s.clientFlags !== undefined) out.push(nlaU64(NbdAttr.CLIENT_FLAGS, s.clientFlags));
  if (s.sockets !== undefined) out.push(socketsAttribute(s.sockets));
  if (s.deadConnTimeoutSeconds !== undefined) out.push(nlaU64(NbdAttr.DEAD_CONN_TIMEOUT, s.deadConnTimeoutSeconds));
  if (s.backend !== undefined) out.push(nlaString(NbdAttr.BACKEND_IDENTIFIER, s.backend));
  return out;
}

function nbdRequest(family: number, cmd: number, settings: NbdSettings, seq: number): Buffer {
  return genlRequest({ family, cmd, version: NBD_GENL_VERSION, seq, attributes: nbdAttributes(settings) });
}

/** NBD_CMD_CONNECT: the kernel refuses one without sockets or size (EINVAL); without index it picks a free device. */
export function nbdConnectRequest(family: number, settings: NbdSettings & { sizeBytes: number | bigint; sockets: number[] }, seq = 1): Buffer {
  if (settings.sockets.length === 0) throw new RangeError('NBD_CMD_CONNECT needs at least one socket');
  return nbdRequest(family, NbdCmd.CONNECT, settings, seq);
}

/** NBD_CMD_RECONFIGURE: new sockets take the places of dead connections of device `index`. */
export function nbdReconfigureRequest(family: number, settings: NbdSettings & { index: number }, seq = 1): Buffer {
  return nbdRequest(family, NbdCmd.RECONFIGURE, settings, seq);
}

export function nbdDisconnectRequest(family: number, index: number, seq = 1): Buffer {
  return nbdRequest(family, NbdCmd.DISCONNECT, { index }, seq);
}

/** NBD_CMD_STATUS of one device, or of all without `index`. */
export function nbdStatusRequest(family: number, index?: number, seq = 1): Buffer {
  return nbdRequest(family, NbdCmd.STATUS, { index }, seq);
}

// ---- decoding -------------------------------------------------------------------------------

export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

export interface NetlinkAttribute {
  /** The type without NLA_F_NESTED / NLA_F_NET_BYTEORDER. */
  type: number;
  nested: boolean;
  value: Buffer;
}

/** The messages of a reply stream (one or more datagrams, concatenated). */
export function parseMessages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < NLMSG_HDRLEN) throw new NetlinkProtocolError(`netlink reply: ${buf.length - off} bytes left at ${off}, less than a message header`);
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || len > buf.length - off) throw new NetlinkProtocolError(`netlink reply: message at ${off} has length ${len}, ${buf.length - off} bytes left`);
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off = Math.min(buf.length, off + align4(len));
  }
  return out;
}

/** The attributes in `buf` (a message's or a nested attribute's payload), one level. */
export function parseAttributes(buf: Buffer): NetlinkAttribute[] {
  const out: NetlinkAttribute[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < NLA_HDRLEN) throw new NetlinkProtocolError(`netlink attributes: ${buf.length - off} stray bytes at ${off}`);
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2);
    if (len < NLA_HDRLEN || len > buf.length - off) throw new NetlinkProtocolError(`netlink attribute ${type & NLA_TYPE_MASK} at ${off} has length ${len}, ${buf.length - off} bytes left`);
    out.push({ type: type & NLA_TYPE_MASK, nested: (type & NLA_F_NESTED) !== 0, value: buf.subarray(off + NLA_HDRLEN, off + len) });
    off = Math.min(buf.length, off + align4(len));
  }
  return out;
}

/** Attributes by type; a repeated type keeps its last value, as the kernel's nla_parse does. */
function attributeMap(attrs: NetlinkAttribute[]): Map<number, Buffer> {
  return new Map(attrs.map((a) => [a.type, a.value]));
}

function fixed(what: string, v: Buffer | undefined, size: number): Buffer {
  if (v === undefined) throw new NetlinkProtocolError(`${what}: missing`);
  if (v.length !== size) throw new NetlinkProtocolError(`${what}: ${v.length} bytes, expected ${size}`);
  return v;
}

const readU8 = (what: string, v: Buffer | undefined): number => fixed(what, v, 1).readUInt8(0);
const readU16 = (what: string, v: Buffer | undefined): number => fixed(what, v, 2).readUInt16LE(0);
const readU32 = (what: string, v: Buffer | undefined): number => fixed(what, v, 4).readUInt32LE(0);

function readString(v: Buffer | undefined): string | undefined {
  if (v === undefined) return undefined;
  const nul = v.indexOf(0);
  return v.subarray(0, nul < 0 ? v.length : nul).toString('utf8');
}

/**
 * The data messages of an exchange, once its final NLMSG_ERROR says the request succeeded.
 * Throws NetlinkError when the kernel refused it, NetlinkProtocolError when the stream is malformed,
 * ends without an answer, or answers another request.
 */
export function decodeReplies(request: string, buf: Buffer, seq: number): NetlinkMessage[] {
  const data: NetlinkMessage[] = [];
  for (const m of parseMessages(buf)) {
    if (m.seq !== seq) throw new NetlinkProtocolError(`${request}: reply to request ${m.seq}, expected ${seq}`);
    if (m.type === NLMSG_DONE) return data;
    if (m.type !== NLMSG_ERROR) {
      data.push(m);
      continue;
    }
    const errno = errorCode(request, m);
    if (errno !== 0) throw new NetlinkError(request, errno, extendedAck(m));
    return data;
  }
  throw new NetlinkProtocolError(`${request}: the reply ended without an acknowledgement`);
}

/** The errno of an NLMSG_ERROR (0 for an ack), as a positive number. */
function errorCode(request: string, m: NetlinkMessage): number {
  if (m.payload.length < 4 + NLMSG_HDRLEN) throw new NetlinkProtocolError(`${request}: error message of ${m.payload.length} bytes`);
  const error = m.payload.readInt32LE(0);
  if (error > 0) throw new NetlinkProtocolError(`${request}: positive error ${error}`);
  return -error;
}

/** NLMSGERR_ATTR_MSG, the kernel's reason in words, when extended acks carried one. */
function extendedAck(m: NetlinkMessage): string | undefined {
  if (!(m.flags & NLM_F_ACK_TLVS)) return undefined;
  // after the error: the request's header, and its payload too unless capped
  const echoed = m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(m.payload.readUInt32LE(4));
  if (echoed < NLMSG_HDRLEN || 4 + echoed > m.payload.length) throw new NetlinkProtocolError(`error message: echoed request of ${echoed} bytes in ${m.payload.length}`);
  return readString(attributeMap(parseAttributes(m.payload.subarray(4 + echoed))).get(NLMSGERR_ATTR_MSG));
}

export interface GenlMessage {
  cmd: number;
  version: number;
  attributes: NetlinkAttribute[];
}

export function decodeGenl(m: NetlinkMessage): GenlMessage {
  if (m.payload.length < GENL_HDRLEN) throw new NetlinkProtocolError(`generic netlink message of ${m.payload.length} bytes`);
  return { cmd: m.payload[0]!, version: m.payload[1]!, attributes: parseAttributes(m.payload.subarray(GENL_HDRLEN)) };
}

/** The one generic-netlink message of a reply, of family `family`. */
function onlyGenl(request: string, messages: NetlinkMessage[], family: number): GenlMessage {
  if (messages.length !== 1) throw new NetlinkProtocolError(`${request}: ${messages.length} reply messages, expected 1`);
  const m = messages[0]!;
  if (m.type !== family) throw new NetlinkProtocolError(`${request}: reply of family ${m.type}, expected ${family}`);
  return decodeGenl(m);
}

export interface GenlFamily {
  id: number;
  name: string;
  version: number;
}

/** The CTRL_CMD_NEWFAMILY answer to a GETFAMILY request. */
export function parseFamilyReply(messages: NetlinkMessage[]): GenlFamily {
  const reply = onlyGenl('CTRL_CMD_GETFAMILY', messages, GENL_ID_CTRL);
  if (reply.cmd !== CTRL_CMD_NEWFAMILY) throw new NetlinkProtocolError(`CTRL_CMD_GETFAMILY: reply command ${reply.cmd}`);
  const attrs = attributeMap(reply.attributes);
  return {
    id: readU16('CTRL_ATTR_FAMILY_ID', attrs.get(CTRL_ATTR_FAMILY_ID)),
    name: readString(attrs.get(CTRL_ATTR_FAMILY_NAME)) ?? '',
    version: attrs.has(CTRL_ATTR_VERSION) ? readU32('CTRL_ATTR_VERSION', attrs.get(CTRL_ATTR_VERSION)) : 0,
  };
}

/** The device index NBD_CMD_CONNECT answers with: the N of /dev/nbdN. */
export function parseConnectReply(family: number, messages: NetlinkMessage[]): number {
  const reply = onlyGenl('NBD_CMD_CONNECT', messages, family);
  return readU32('NBD_ATTR_INDEX', attributeMap(reply.attributes).get(NbdAttr.INDEX));
}

export interface NbdDeviceStatus {
  index: number;
  connected: boolean;
}

/** NBD_CMD_STATUS's device list. */
export function parseStatusReply(family: number, messages: NetlinkMessage[]): NbdDeviceStatus[] {
  const reply = onlyGenl('NBD_CMD_STATUS', messages, family);
  const list = attributeMap(reply.attributes).get(NbdAttr.DEVICE_LIST);
  if (list === undefined) throw new NetlinkProtocolError('NBD_CMD_STATUS: no NBD_ATTR_DEVICE_LIST');
  return parseAttributes(list).map((item) => {
    if (item.type !== NBD_DEVICE_ITEM) throw new NetlinkProtocolError(`NBD_ATTR_DEVICE_LIST: attribute ${item.type}, expected NBD_DEVICE_ITEM`);
    const attrs = attributeMap(parseAttributes(item.value));
    return { index: readU32('NBD_DEVICE_INDEX', attrs.get(NBD_DEVICE_INDEX)), connected: readU8('NBD_DEVICE_CONNECTED', attrs.get(NBD_DEVICE_CONNECTED)) !== 0 };
  });
}
