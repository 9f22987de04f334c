// The transmission phase, server side: one request of a read-only export in, its reply out (simple, or
// structured chunks when negotiated). Holes are never read from the device: they are zeroes, sent as
// OFFSET_HOLE chunks or zero bytes. A device error fails that request with EIO, nothing more.
import { extentsOf, type BlockDevice, type Extent } from './device.js';
import { MAX_REQUEST_LENGTH, MAX_STATUS_DESCRIPTORS, MAX_STATUS_SPAN } from './limits.js';
import { ALLOCATION_CONTEXT_ID, type ChosenExport } from './negotiation.js';
import {
  Cmd,
  CmdFlag,
  NbdErrno,
  ReplyFlag,
  State,
  encodeBlockStatus,
  encodeOffsetDataHead,
  encodeOffsetHole,
  encodeSimpleReply,
  encodeStructuredError,
  type Request,
} from './protocol.js';

/** A request's whole reply: its pieces are written back to back, as one message. */
export interface Reply {
  pieces: Buffer[];
  /** An error was answered. */
  error: boolean;
  /** Bytes of the export this reply carries (holes included). */
  readBytes: number;
}

/** The reply to any request but NBD_CMD_DISC: at once, or when the device has read. */
export function serve(exp: ChosenExport, req: Request): Reply | Promise<Reply> {
  const refusal = refuse(exp, req);
  if (refusal) return errorReply(exp, req, refusal.errno, refusal.message);
  switch (req.type) {
    case Cmd.READ:
      return read(exp, req).catch((err: unknown) => errorReply(exp, req, NbdErrno.EIO, `read failed: ${err instanceof Error ? err.message : String(err)}`));
    case Cmd.BLOCK_STATUS:
      return { pieces: [blockStatus(exp.device, req)], error: false, readBytes: 0 };
    default: // NBD_CMD_FLUSH: nothing is ever written
      return { pieces: [encodeSimpleReply(req.handle, 0)], error: false, readBytes: 0 };
  }
}

export function errorReply(exp: ChosenExport, req: Request, errno: number, message: string): Reply {
  const piece = exp.structuredReplies ? encodeStructuredError(req.handle, ReplyFlag.DONE, errno, message) : encodeSimpleReply(req.handle, errno);
  return { pieces: [piece], error: true, readBytes: 0 };
}

/** Why a request cannot be served, if it cannot. */
function refuse(exp: ChosenExport, req: Request): { errno: number; message: string } | undefined {
  const einval = (message: string) => ({ errno: NbdErrno.EINVAL, message });
  switch (req.type) {
    case Cmd.READ: {
      const allowed = exp.structuredReplies ? CmdFlag.DF : 0;
      if (req.flags & ~allowed) return einval(`NBD_CMD_READ: flags 0x${req.flags.toString(16)}`);
      if (req.length > MAX_REQUEST_LENGTH) return einval(`NBD_CMD_READ of ${req.length} bytes, at most ${MAX_REQUEST_LENGTH}`);
      return range(exp.device, req);
    }
    case Cmd.BLOCK_STATUS:
      if (!exp.allocationContext) return einval('NBD_CMD_BLOCK_STATUS without a negotiated meta context');
      if (req.flags & ~CmdFlag.REQ_ONE) return einval(`NBD_CMD_BLOCK_STATUS: flags 0x${req.flags.toString(16)}`);
      return range(exp.device, req);
    case Cmd.FLUSH:
      return req.flags ? einval(`NBD_CMD_FLUSH: flags 0x${req.flags.toString(16)}`) : undefined;
    case Cmd.WRITE:
    case Cmd.TRIM:
    case Cmd.WRITE_ZEROES:
      return { errno: NbdErrno.EPERM, message: 'the export is read-only' };
    default:
      return einval(`unknown command ${req.type}`);
  }
}

function range(device: BlockDevice, req: Request): { errno: number; message: string } | undefined {
  if (req.length === 0) return { errno: NbdErrno.EINVAL, message: 'zero-length request' };
  if (req.offset > device.size || req.length > device.size - req.offset) {
    return { errno: NbdErrno.EINVAL, message: `range ${req.offset}+${req.length} past the end of the export (${device.size} bytes)` };
  }
  return undefined;
}

async function readExtent(device: BlockDevice, e: Extent): Promise<Buffer | undefined> {
  if (e.hole) return undefined;
  const data = await device.read(e.offset, e.length);
  // a device that answers with the wrong number of bytes would shift every byte after: refuse it
  if (!Buffer.isBuffer(data) || data.length !== e.length) throw new Error(`device returned ${Buffer.isBuffer(data) ? data.length : 'no'} bytes for ${e.length}`);
  return data;
}

async function read(exp: ChosenExport, req: Request): Promise<Reply> {
  const extents = extentsOf(exp.device, req.offset, req.length);
  const data = await Promise.all(extents.map((e) => readExtent(exp.device, e)));
  const bytes = (i: number): Buffer => data[i] ?? Buffer.alloc(extents[i]!.length);
  let pieces: Buffer[];
  if (!exp.structuredReplies) {
    pieces = [encodeSimpleReply(req.handle, 0), ...extents.map((_, i) => bytes(i))];
  } else if (extents.length === 1 && extents[0]!.hole) {
    pieces = [encodeOffsetHole(req.handle, ReplyFlag.DONE, req.offset, req.length)];
  } else if (req.flags & CmdFlag.DF) {
    // don't fragment: one data chunk, holes as zero bytes in it
    pieces = [encodeOffsetDataHead(req.handle, ReplyFlag.DONE, req.offset, req.length), ...extents.map((_, i) => bytes(i))];
  } else {
    pieces = extents.flatMap((e, i) => {
      const flags = i === extents.length - 1 ? ReplyFlag.DONE : 0;
      return e.hole ? [encodeOffsetHole(req.handle, flags, e.offset, e.length)] : [encodeOffsetDataHead(req.handle, flags, e.offset, e.length), data[i]!];
    });
  }
  return { pieces, error: false, readBytes: req.length };
}

/** base:allocation of (up to MAX_STATUS_SPAN of) the range: holes read as zeroes, the rest is data. */
function blockStatus(device: BlockDevice, req: Request): Buffer {
  const extents = extentsOf(device, req.offset, Math.min(req.length, MAX_STATUS_SPAN));
  const wanted = req.flags & CmdFlag.REQ_ONE ? 1 : MAX_STATUS_DESCRIPTORS;
  const descriptors = extents.slice(0, wanted).map((e) => ({ length: e.length, flags: e.hole ? State.HOLE | State.ZERO : 0 }));
  return encodeBlockStatus(req.handle, ReplyFlag.DONE, ALLOCATION_CONTEXT_ID, descriptors);
}
