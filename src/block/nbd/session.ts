// One client of the NBD server, from greeting to disconnect: the handshake, then requests served
// concurrently and answered as each finishes. Whatever the client sends, the worst it gets is its own
// connection closed: malformed bytes drop it, a handshake that drags on drops it, and what it may have in
// flight (requests, bytes being read, replies it has not taken) is bounded by pausing its socket.
import type { Socket } from 'node:net';
import { log } from '../../util/log.js';
import { serve, errorReply, type Reply } from './commands.js';
import type { NbdExports } from './device.js';
import { MAX_OPTION_LENGTH, type SessionLimits } from './limits.js';
import { negotiate, type ChosenExport, type NegotiationState } from './negotiation.js';
import {
  CLIENT_FLAGS_SIZE,
  ClientFlag,
  Cmd,
  HandshakeFlag,
  NbdErrno,
  NbdProtocolError,
  OPTION_HEADER_SIZE,
  REQUEST_SIZE,
  Rep,
  decodeClientFlags,
  decodeOptionHeader,
  decodeRequest,
  encodeGreeting,
  encodeOptionError,
  type Request,
} from './protocol.js';

export interface SessionCounters {
  requests: number;
  readBytes: number;
  errors: number;
}

const HANDSHAKE_FLAGS = HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES;

type Phase = 'client-flags' | 'options' | 'transmission' | 'done';

export class NbdSession {
  private buffered: Buffer = Buffer.alloc(0);
  private phase: Phase = 'client-flags';
  private readonly negotiation: NegotiationState = { noZeroes: false, structuredReplies: false, allocationContextFor: undefined };
  private chosen: ChosenExport | undefined;
  /** Bytes of an NBD_CMD_WRITE payload still to skip. */
  private discarding = 0;
  private inFlight = 0;
  private inFlightBytes = 0;
  private disconnectRequested = false;
  private readonly handshakeTimer: NodeJS.Timeout;
  private readonly log;

  constructor(
    private readonly socket: Socket,
    private readonly exports: NbdExports,
    private readonly counters: SessionCounters,
    private readonly limits: SessionLimits,
    peer: string,
  ) {
    this.log = log.child({ nbdClient: peer });
    this.handshakeTimer = setTimeout(() => this.drop(`no export chosen within ${limits.handshakeTimeoutMs} ms`), limits.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('drain', () => this.pump());
    socket.on('error', (err) => this.log.debug('nbd client socket error', { err }));
    socket.on('close', () => this.closed());
    // no traffic either way for a while: fine for an idle client, not for one that leaves its replies untaken
    socket.setTimeout(limits.stallTimeoutMs);
    socket.on('timeout', () => {
      if (socket.writableLength === 0) return;
      this.drop(`took no replies for ${limits.stallTimeoutMs} ms`);
      socket.destroy(); // also when it was closing already, its last replies untaken
    });
    socket.write(encodeGreeting(HANDSHAKE_FLAGS));
  }

  /** Ends the connection now (server shutdown). */
  destroy(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    if (this.phase === 'done') return;
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.pump();
  }

  private take(n: number): Buffer {
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** Handles every complete message buffered, as far as the limits allow; pauses the socket when they do not. */
  private pump(): void {
    try {
      while (this.phase !== 'done' && this.step());
    } catch (err) {
      if (!(err instanceof NbdProtocolError)) this.log.error('nbd session failed', { err });
      this.drop(err instanceof Error ? err.message : String(err));
    }
    if (this.phase === 'done' || this.busy()) this.socket.pause();
    else this.socket.resume();
  }

  /** One message handled: true to go on, false to wait for bytes (or for requests in flight to finish). */
  private step(): boolean {
    if (this.discarding > 0) {
      this.discarding -= this.take(this.discarding).length;
      return this.discarding === 0;
    }
    if (this.busy()) return false;
    switch (this.phase) {
      case 'client-flags':
        return this.buffered.length >= CLIENT_FLAGS_SIZE && this.clientFlags(decodeClientFlags(this.take(CLIENT_FLAGS_SIZE)));
      case 'options':
        return this.option();
      case 'transmission':
        if (this.disconnectRequested) {
          this.buffered = Buffer.alloc(0); // nothing may follow NBD_CMD_DISC
          return false;
        }
        if (this.buffered.length < REQUEST_SIZE) return false;
        this.request(decodeRequest(this.take(REQUEST_SIZE)));
        return true;
      case 'done':
        return false;
    }
  }

  private clientFlags(flags: number): boolean {
    if (flags & ~(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES)) throw new NbdProtocolError(`unknown client flags 0x${flags.toString(16)}`);
    this.negotiation.noZeroes = (flags & ClientFlag.NO_ZEROES) !== 0;
    this.phase = 'options';
    return true;
  }

  private option(): boolean {
    if (this.buffered.length < OPTION_HEADER_SIZE) return false;
    const header = decodeOptionHeader(this.buffered.subarray(0, OPTION_HEADER_SIZE));
    if (header.length > MAX_OPTION_LENGTH) {
      this.socket.write(encodeOptionError(header.option, Rep.ERR_TOO_BIG, `option data of ${header.length} bytes, at most ${MAX_OPTION_LENGTH}`));
      this.drop(`option ${header.option} with ${header.length} bytes of data`, 'after-replies');
      return false;
    }
    if (this.buffered.length < OPTION_HEADER_SIZE + header.length) return false;
    const data = this.take(OPTION_HEADER_SIZE + header.length).subarray(OPTION_HEADER_SIZE);
    const outcome = negotiate(this.exports, this.negotiation, header.option, data);
    if (outcome.next === 'drop') {
      this.drop(outcome.reason);
      return false;
    }
    for (const reply of outcome.replies) this.socket.write(reply);
    if (outcome.next === 'abort') {
      this.close('after-replies');
      return false;
    }
    if (outcome.next === 'transmission') {
      clearTimeout(this.handshakeTimer);
      this.chosen = outcome.chosen;
      this.phase = 'transmission';
      this.log.debug('nbd client chose an export', { export: outcome.chosen.name, structuredReplies: outcome.chosen.structuredReplies });
    }
    return true;
  }

  private busy(): boolean {
    return (
      this.inFlight >= this.limits.maxInFlight ||
      this.inFlightBytes >= this.limits.maxInFlightBytes ||
      this.socket.writableLength >= this.limits.maxPendingOutput
    );
  }

  private request(req: Request): void {
    const exp = this.chosen!;
    this.counters.requests++;
    if (req.type === Cmd.DISC) {
      this.disconnectRequested = true;
      this.endWhenIdle();
      return;
    }
    if (req.type === Cmd.WRITE) this.discarding = req.length;
    let reply: Reply | Promise<Reply>;
    try {
      reply = serve(exp, req);
    } catch (err) {
      // a device whose extents() or read() throws synchronously: that request fails, not the session
      reply = errorReply(exp, req, NbdErrno.EIO, err instanceof Error ? err.message : String(err));
    }
    if (!(reply instanceof Promise)) {
      this.send(reply);
      return;
    }
    const bytes = req.length;
    this.inFlight++;
    this.inFlightBytes += bytes;
    reply
      .then((r) => {
        this.inFlight--;
        this.inFlightBytes -= bytes;
        this.send(r);
        this.endWhenIdle();
        this.pump();
      })
      .catch((err: unknown) => {
        this.log.error('nbd reply failed', { err });
        this.drop('reply failed');
      });
  }

  private send(reply: Reply): void {
    if (reply.error) this.counters.errors++;
    else this.counters.readBytes += reply.readBytes;
    if (this.socket.destroyed) return;
    // one reply's pieces go out back to back: nothing of another reply can come between them
    this.socket.cork();
    for (const piece of reply.pieces) this.socket.write(piece);
    this.socket.uncork();
  }

  private endWhenIdle(): void {
    if (this.disconnectRequested && this.inFlight === 0 && this.phase === 'transmission') this.close('after-replies');
  }

  /** Drops a client that broke the protocol or its limits. */
  private drop(reason: string, how: 'now' | 'after-replies' = 'now'): void {
    if (this.phase === 'done') return;
    this.counters.errors++;
    this.log.warn('nbd client dropped', { reason });
    this.close(how);
  }

  private close(how: 'now' | 'after-replies'): void {
    this.phase = 'done';
    this.buffered = Buffer.alloc(0);
    clearTimeout(this.handshakeTimer);
    // destroyed, not just ended, once the replies are out: a client need not close its side for us to let go
    if (how === 'after-replies') this.socket.end(() => this.socket.destroy());
    else this.socket.destroy();
  }

  private closed(): void {
    this.phase = 'done';
    clearTimeout(this.handshakeTimer);
  }
}
