// A small NBD client: the fixed newstyle handshake with NBD_OPT_GO, leaving the socket at the start of the
// transmission phase with simple replies only, which is what the kernel's nbd driver takes over (its
// descriptor handed on through netlink). `read` speaks simple replies too, for tests and tools.
import { connect, type Socket } from 'node:net';
import { formatNbdAddress, parseNbdAddress, type NbdAddress } from './address.js';
import {
  ClientFlag,
  Cmd,
  GREETING_SIZE,
  HandshakeFlag,
  Info,
  NbdProtocolError,
  OPTION_REPLY_HEADER_SIZE,
  Opt,
  Rep,
  SIMPLE_REPLY_SIZE,
  decodeGreeting,
  decodeInfoReply,
  decodeOptionReplyHeader,
  decodeSimpleReply,
  encodeClientFlags,
  encodeInfoRequest,
  encodeOption,
  encodeRequest,
  isErrorReply,
} from './protocol.js';

export interface ConnectOptions {
  /** The handshake must be over by then (default 10 s). */
  timeoutMs?: number;
}

/** An error reply to one request; the connection goes on. */
export class NbdRequestError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

/** Option replies longer than this are not believed. */
const MAX_OPTION_REPLY = 64 * 1024;

/** Buffers a socket's bytes and hands them out in exact amounts. */
class ByteReader {
  private buffered: Buffer = Buffer.alloc(0);
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.wake();
  };
  private readonly onEnd = (err?: Error): void => {
    this.failure ??= err ?? new Error('NBD server closed the connection');
    this.wake();
  };

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('error', this.onEnd);
    socket.on('close', () => this.onEnd());
  }

  read(n: number): Promise<Buffer> {
    if (this.waiter) throw new Error('one read at a time');
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.wake();
    });
  }

  /** Stops taking the socket's bytes (there must be none left over), leaving it paused. */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.pause();
    if (this.buffered.length > 0) throw new NbdProtocolError(`${this.buffered.length} unexpected bytes after the handshake`);
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.buffered.length >= w.n) {
      this.waiter = undefined;
      const out = this.buffered.subarray(0, w.n);
      this.buffered = this.buffered.subarray(w.n);
      w.resolve(out);
    } else if (this.failure) {
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }
}

export class NbdConnection {
  private reader: ByteReader | undefined;
  private readonly pending = new Map<bigint, { length: number; resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  private readonly inFlight = new Set<Promise<Buffer>>();
  private nextHandle = 1n;

  constructor(
    /** In the transmission phase, simple replies: ready for the kernel. */
    readonly socket: Socket,
    readonly size: number,
    /** The export's transmission flags (NBD_FLAG_*). */
    readonly flags: number,
  ) {}

  /** `length` bytes at `offset`; several reads may be in flight. */
  read(offset: number, length: number): Promise<Buffer> {
    const handle = this.nextHandle++;
    const done = new Promise<Buffer>((resolve, reject) => this.pending.set(handle, { length, resolve, reject }));
    this.inFlight.add(done);
    const settled = (): void => void this.inFlight.delete(done);
    done.then(settled, settled);
    if (!this.reader) {
      this.reader = new ByteReader(this.socket);
      this.socket.resume();
      void this.receiveReplies(this.reader);
    }
    this.socket.write(encodeRequest({ flags: 0, type: Cmd.READ, handle, offset, length }));
    return done;
  }

  /** Drops our end of the connection (after handing the socket to the kernel: only our descriptor). */
  close(): void {
    this.socket.destroy();
  }

  /** Ends the session politely (NBD_CMD_DISC), once the reads in flight are answered. */
  async disconnect(): Promise<void> {
    await Promise.allSettled(this.inFlight);
    if (this.socket.destroyed) return;
    const closed = new Promise((resolve) => this.socket.once('close', resolve));
    this.socket.end(encodeRequest({ flags: 0, type: Cmd.DISC, handle: 0n, offset: 0, length: 0 }));
    await closed;
  }

  private async receiveReplies(reader: ByteReader): Promise<void> {
    try {
      for (;;) {
        const reply = decodeSimpleReply(await reader.read(SIMPLE_REPLY_SIZE));
        const p = this.pending.get(reply.handle);
        if (!p) throw new NbdProtocolError(`reply to handle ${reply.handle}, which is not in flight`);
        this.pending.delete(reply.handle);
        if (reply.error !== 0) p.reject(new NbdRequestError(reply.error, `NBD read failed: error ${reply.error}`));
        else p.resolve(Buffer.from(await reader.read(p.length)));
      }
    } catch (err) {
      for (const p of this.pending.values()) p.reject(err as Error);
      this.pending.clear();
      this.socket.destroy();
    }
  }
}

function repName(type: number): string {
  return Object.entries(Rep).find(([, v]) => v === type)?.[0] ?? `reply ${type}`;
}

/** Connects to `address` and chooses `exportName` with NBD_OPT_GO. */
export async function connectNbd(address: string | NbdAddress, exportName: string, opts: ConnectOptions = {}): Promise<NbdConnection> {
  const where = typeof address === 'string' ? parseNbdAddress(address) : address;
  const socket = where.kind === 'unix' ? connect(where.path) : connect(where.port, where.host);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const timer = setTimeout(() => socket.destroy(new Error(`NBD handshake with ${formatNbdAddress(where)} timed out after ${timeoutMs} ms`)), timeoutMs);
  const reader = new ByteReader(socket);
  try {
    const { size, flags } = await handshake(socket, reader, exportName);
    reader.detach();
    return new NbdConnection(socket, size, flags);
  } catch (err) {
    socket.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function handshake(socket: Socket, reader: ByteReader, exportName: string): Promise<{ size: number; flags: number }> {
  const serverFlags = decodeGreeting(await reader.read(GREETING_SIZE));
  if (!(serverFlags & HandshakeFlag.FIXED_NEWSTYLE)) throw new NbdProtocolError('the NBD server does not speak fixed newstyle');
  socket.write(encodeClientFlags(ClientFlag.FIXED_NEWSTYLE | (serverFlags & HandshakeFlag.NO_ZEROES ? ClientFlag.NO_ZEROES : 0)));
  socket.write(encodeOption(Opt.GO, encodeInfoRequest({ name: exportName, requests: [] })));
  let exported: { size: number; flags: number } | undefined;
  for (;;) {
    const header = decodeOptionReplyHeader(await reader.read(OPTION_REPLY_HEADER_SIZE));
    if (header.option !== Opt.GO) throw new NbdProtocolError(`reply to option ${header.option}, NBD_OPT_GO was sent`);
    if (header.length > MAX_OPTION_REPLY) throw new NbdProtocolError(`option reply of ${header.length} bytes`);
    const data = header.length > 0 ? await reader.read(header.length) : Buffer.alloc(0);
    if (isErrorReply(header.type)) throw new Error(`NBD export ${JSON.stringify(exportName)}: ${repName(header.type)} ${data.toString('utf8')}`.trim());
    if (header.type === Rep.INFO) {
      const info = decodeInfoReply(data);
      if (info.type === Info.EXPORT) exported = { size: info.size, flags: info.flags };
    } else if (header.type === Rep.ACK) {
      if (!exported) throw new NbdProtocolError('NBD_OPT_GO acknowledged without NBD_INFO_EXPORT');
      return exported;
    }
  }
}
