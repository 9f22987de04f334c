// Option haggling of the fixed newstyle handshake, server side: one option request in, the replies out and
// what the session does next. No I/O; the exports are asked for names and devices only.
import type { BlockDevice, NbdExports } from './device.js';
import { MAX_REQUEST_LENGTH, PREFERRED_BLOCK_SIZE } from './limits.js';
import {
  BASE_ALLOCATION,
  Info,
  NbdProtocolError,
  Opt,
  Rep,
  TransmissionFlag,
  decodeExportNameData,
  decodeInfoRequest,
  decodeMetaContextRequest,
  encodeExportNameReply,
  encodeInfoReply,
  encodeMetaContextReply,
  encodeOptionError,
  encodeOptionReply,
  encodeServerReply,
  type InfoRequest,
  type MetaContextRequest,
} from './protocol.js';

/** The id base:allocation gets when a client selects it (ids in NBD_OPT_LIST_META_CONTEXT replies are 0). */
export const ALLOCATION_CONTEXT_ID = 1;

/** What one client has negotiated so far. */
export interface NegotiationState {
  /** The client sent NBD_FLAG_C_NO_ZEROES. */
  noZeroes: boolean;
  structuredReplies: boolean;
  /** The export NBD_OPT_SET_META_CONTEXT last selected base:allocation for, if any. */
  allocationContextFor: string | undefined;
}

/** The export a client chose, as the transmission phase serves it. */
export interface ChosenExport {
  name: string;
  device: BlockDevice;
  flags: number;
  structuredReplies: boolean;
  /** NBD_CMD_BLOCK_STATUS may be answered (base:allocation was selected for this export). */
  allocationContext: boolean;
}

export type OptionOutcome =
  | { next: 'options'; replies: Buffer[] }
  /** NBD_OPT_ABORT: the replies, then close. */
  | { next: 'abort'; replies: Buffer[] }
  /** NBD_OPT_EXPORT_NAME of an export there is not: it cannot be answered, only dropped. */
  | { next: 'drop'; reason: string }
  | { next: 'transmission'; replies: Buffer[]; chosen: ChosenExport };

export function transmissionFlags(structuredReplies: boolean): number {
  const always = TransmissionFlag.HAS_FLAGS | TransmissionFlag.READ_ONLY | TransmissionFlag.SEND_FLUSH | TransmissionFlag.CAN_MULTI_CONN;
  // NBD_FLAG_SEND_DF MUST be clear without structured replies
  return structuredReplies ? always | TransmissionFlag.SEND_DF : always;
}

/** Answers one option request (its data already read in full and bounded by the caller). */
export function negotiate(exports: NbdExports, state: NegotiationState, option: number, data: Buffer): OptionOutcome {
  const invalid = (message: string): OptionOutcome => ({ next: 'options', replies: [encodeOptionError(option, Rep.ERR_INVALID, message)] });
  switch (option) {
    case Opt.EXPORT_NAME:
      return exportName(exports, state, data);
    case Opt.ABORT:
      return { next: 'abort', replies: [encodeOptionReply(option, Rep.ACK)] };
    case Opt.LIST:
      if (data.length !== 0) return invalid('NBD_OPT_LIST takes no data');
      return { next: 'options', replies: list(exports) };
    case Opt.STRUCTURED_REPLY:
      if (data.length !== 0) return invalid('NBD_OPT_STRUCTURED_REPLY takes no data');
      state.structuredReplies = true;
      return { next: 'options', replies: [encodeOptionReply(option, Rep.ACK)] };
    case Opt.INFO:
    case Opt.GO: {
      const req = decoded(() => decodeInfoRequest(data));
      return 'error' in req ? invalid(req.error) : info(exports, state, option, req.value);
    }
    case Opt.LIST_META_CONTEXT:
    case Opt.SET_META_CONTEXT: {
      if (!state.structuredReplies) return invalid('negotiate NBD_OPT_STRUCTURED_REPLY first');
      const req = decoded(() => decodeMetaContextRequest(data));
      return 'error' in req ? invalid(req.error) : metaContext(exports, state, option, req.value);
    }
    default:
      // STARTTLS, EXTENDED_HEADERS and whatever comes next: not spoken here
      return { next: 'options', replies: [encodeOptionError(option, Rep.ERR_UNSUP, `option ${option} is not supported`)] };
  }
}

/** The decoded option data, or why it is malformed. */
function decoded<T>(decode: () => T): { value: T } | { error: string } {
  try {
    return { value: decode() };
  } catch (err) {
    if (err instanceof NbdProtocolError) return { error: err.message };
    throw err;
  }
}

function unknownExport(option: number, name: string): Buffer {
  return encodeOptionError(option, Rep.ERR_UNKNOWN, `no export named ${JSON.stringify(name)}`);
}

function chosen(state: NegotiationState, name: string, device: BlockDevice): ChosenExport {
  return {
    name,
    device,
    flags: transmissionFlags(state.structuredReplies),
    structuredReplies: state.structuredReplies,
    // contexts selected for another export do not carry over to this one
    allocationContext: state.structuredReplies && state.allocationContextFor === name,
  };
}

function exportName(exports: NbdExports, state: NegotiationState, data: Buffer): OptionOutcome {
  const name = decoded(() => decodeExportNameData(data));
  if ('error' in name) return { next: 'drop', reason: `NBD_OPT_EXPORT_NAME: ${name.error}` };
  const device = exports.open(name.value);
  if (!device) return { next: 'drop', reason: `NBD_OPT_EXPORT_NAME: no export named ${JSON.stringify(name.value)}` };
  const exp = chosen(state, name.value, device);
  return { next: 'transmission', replies: [encodeExportNameReply(device.size, exp.flags, state.noZeroes)], chosen: exp };
}

function list(exports: NbdExports): Buffer[] {
  const servers = exports.names().map((name) => encodeOptionReply(Opt.LIST, Rep.SERVER, encodeServerReply(name, exports.description?.(name) ?? '')));
  return [...servers, encodeOptionReply(Opt.LIST, Rep.ACK)];
}

function info(exports: NbdExports, state: NegotiationState, option: number, req: InfoRequest): OptionOutcome {
  const device = exports.open(req.name);
  if (!device) return { next: 'options', replies: [unknownExport(option, req.name)] };
  const exp = chosen(state, req.name, device);
  const replies = [encodeOptionReply(option, Rep.INFO, encodeInfoReply({ type: Info.EXPORT, size: device.size, flags: exp.flags }))];
  if (req.requests.includes(Info.NAME)) {
    replies.push(encodeOptionReply(option, Rep.INFO, encodeInfoReply({ type: Info.NAME, name: req.name })));
  }
  const description = req.requests.includes(Info.DESCRIPTION) ? exports.description?.(req.name) : undefined;
  if (description) {
    replies.push(encodeOptionReply(option, Rep.INFO, encodeInfoReply({ type: Info.DESCRIPTION, description })));
  }
  if (req.requests.includes(Info.BLOCK_SIZE)) {
    const sizes = { type: Info.BLOCK_SIZE, minimum: 1, preferred: PREFERRED_BLOCK_SIZE, maximum: MAX_REQUEST_LENGTH } as const;
    replies.push(encodeOptionReply(option, Rep.INFO, encodeInfoReply(sizes)));
  }
  replies.push(encodeOptionReply(option, Rep.ACK));
  return option === Opt.GO ? { next: 'transmission', replies, chosen: exp } : { next: 'options', replies };
}

function metaContext(exports: NbdExports, state: NegotiationState, option: number, req: MetaContextRequest): OptionOutcome {
  if (!exports.open(req.exportName)) return { next: 'options', replies: [unknownExport(option, req.exportName)] };
  const replies: Buffer[] = [];
  if (option === Opt.LIST_META_CONTEXT) {
    // no query lists every context; "base:" lists the whole namespace
    if (req.queries.length === 0 || req.queries.some((q) => q === BASE_ALLOCATION || q === 'base:')) {
      replies.push(encodeOptionReply(option, Rep.META_CONTEXT, encodeMetaContextReply(0, BASE_ALLOCATION)));
    }
  } else {
    // each SET replaces what an earlier one selected
    const selected = req.queries.includes(BASE_ALLOCATION);
    state.allocationContextFor = selected ? req.exportName : undefined;
    if (selected) replies.push(encodeOptionReply(option, Rep.META_CONTEXT, encodeMetaContextReply(ALLOCATION_CONTEXT_ID, BASE_ALLOCATION)));
  }
  replies.push(encodeOptionReply(option, Rep.ACK));
  return { next: 'options', replies };
}
