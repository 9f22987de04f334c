// What one NBD client may ask of the server, and how much of it at once: every bound a hostile client
// meets. Reads are capped at the maximum block size the server advertises.
import { MiB } from '../../util/bytes.js';

/** The largest NBD_CMD_READ served (NBD_INFO_BLOCK_SIZE maximum); longer ones get EINVAL. */
export const MAX_REQUEST_LENGTH = 32 * MiB;
/** The block size clients should use (the EROFS block). */
export const PREFERRED_BLOCK_SIZE = 4096;
/** Option data longer than this is refused (NBD_REP_ERR_TOO_BIG) and the client dropped. */
export const MAX_OPTION_LENGTH = 16 * 1024;
/** One NBD_CMD_BLOCK_STATUS reply covers at most this much of the export (clients ask again for more). */
export const MAX_STATUS_SPAN = 256 * MiB;
/** ...in at most this many descriptors. */
export const MAX_STATUS_DESCRIPTORS = 16 * 1024;

export interface SessionLimits {
  /** A client that has not finished the handshake by then is dropped (slow loris). */
  handshakeTimeoutMs: number;
  /** Requests of one client being served at once; more wait in the socket (it is paused). */
  maxInFlight: number;
  /** Bytes of READs of one client being served at once. */
  maxInFlightBytes: number;
  /** Reply bytes not yet taken by a client before its socket is paused. */
  maxPendingOutput: number;
  /** A client with replies waiting that takes none of them for this long is dropped (an idle one is not). */
  stallTimeoutMs: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  handshakeTimeoutMs: 10_000,
  maxInFlight: 16,
  maxInFlightBytes: 64 * MiB,
  maxPendingOutput: 4 * MiB,
  stallTimeoutMs: 60_000,
};
