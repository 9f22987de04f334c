// The NBD server in-process over a unix socket and loopback TCP: negotiation, READ and BLOCK_STATUS with
// simple and structured replies, concurrency and its caps, and hostile clients speaking raw bytes, each
// of which loses its own connection only while a well-behaved client beside it keeps reading right bytes.
// (The real clients — nbdinfo, nbdcopy, qemu-img, nbdfuse — are in test/e2e/block/nbd-server.test.ts.)
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectNbd, NbdRequestError, type NbdConnection } from '../../../src/block/nbd/client.js';
import {
  BASE_ALLOCATION, ClientFlag, Cmd, CmdFlag, GREETING_SIZE, HandshakeFlag, Info, NbdErrno, Opt, Rep, ReplyFlag, ReplyType, State,
  STRUCTURED_HEADER_SIZE, SIMPLE_REPLY_SIZE, TransmissionFlag, decodeGreeting, decodeInfoReply, decodeMetaContextReply,
  decodeOptionReplyHeader, decodeServerReply, decodeSimpleReply, decodeStructuredHeader, decodeStructuredPayload, encodeClientFlags,
  encodeExportNameData, encodeInfoRequest, encodeMetaContextRequest, encodeOption, encodeRequest, type Request, type StructuredPayload,
} from '../../../src/block/nbd/protocol.js';
import { NbdServer } from '../../../src/block/nbd/server.js';
import { FileBlockDevice } from '../../helpers/nbd-device.js';
import { waitFor } from '../../helpers/wait-for.js';

const SIZE = 2 << 20;
const HOLES = [{ offset: 64 << 10, length: 128 << 10 }, { offset: 1 << 20, length: 256 << 10 }];
const HANDSHAKE_TIMEOUT_MS = 400;

let dir: string;
let device: FileBlockDevice;
let content: Buffer;
let other: FileBlockDevice;
let server: NbdServer;
let sock: string;
let tcpPort: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-server-'));
  ({ device, content } = await FileBlockDevice.create(join(dir, 'disk.img'), SIZE, HOLES));
  ({ device: other } = await FileBlockDevice.create(join(dir, 'other.img'), 8192, []));
  const exports = { '': device, other };
  server = new NbdServer(
    {
      names: () => Object.keys(exports),
      open: (name) => (exports as Record<string, FileBlockDevice>)[name],
      description: (name) => (name === '' ? 'the default export' : undefined),
    },
    { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS },
  );
  sock = join(dir, 'nbd.sock');
  await server.listen(`unix:${sock}`);
  const tcp = await server.listen('tcp::0');
  tcpPort = tcp.kind === 'tcp' ? tcp.port : -1;
});

afterAll(async () => {
  await server.close();
  await device.close();
  await other.close();
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  device.beforeRead = undefined;
});

/** A client speaking raw bytes: exact reads, and the protocol steps the tests need, built from the codec. */
class Raw {
  private buffered: Buffer = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, d]);
      this.wake?.();
    });
    this.closed = new Promise((resolve) => socket.on('close', () => {
      this.ended = true;
      this.wake?.();
      resolve();
    }));
    socket.on('error', () => {});
  }

  static async connect(path = sock): Promise<Raw> {
    const s = connect(path);
    await new Promise((resolve, reject) => s.once('connect', resolve).once('error', reject));
    return new Raw(s);
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  async read(n: number): Promise<Buffer> {
    while (this.buffered.length < n) {
      if (this.ended) throw new Error(`connection closed with ${this.buffered.length} of ${n} bytes`);
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** Resolves once the server has closed the connection, failing after `ms`. */
  async expectClosed(ms = 3000): Promise<void> {
    await waitFor(() => this.ended, 'the server to close the connection', ms);
  }

  async greet(flags = ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES): Promise<number> {
    const serverFlags = decodeGreeting(await this.read(GREETING_SIZE));
    this.write(encodeClientFlags(flags));
    return serverFlags;
  }

  /** Sends an option; the replies up to the final one (ACK or an error). */
  async option(option: number, data: Buffer = Buffer.alloc(0)): Promise<{ type: number; data: Buffer }[]> {
    this.write(encodeOption(option, data));
    const replies: { type: number; data: Buffer }[] = [];
    for (;;) {
      const h = decodeOptionReplyHeader(await this.read(20));
      expect(h.option).toBe(option);
      const reply = { type: h.type, data: await this.read(h.length) };
      replies.push(reply);
      if (h.type !== Rep.SERVER && h.type !== Rep.INFO && h.type !== Rep.META_CONTEXT) return replies;
    }
  }

  /** Handshake up to the transmission phase; returns the export's size and transmission flags. */
  async go(name = '', opts: { structured?: boolean; allocation?: boolean } = {}): Promise<{ size: number; flags: number }> {
    await this.greet();
    if (opts.structured) expect((await this.option(Opt.STRUCTURED_REPLY))[0]!.type).toBe(Rep.ACK);
    if (opts.allocation) await this.option(Opt.SET_META_CONTEXT, encodeMetaContextRequest({ exportName: name, queries: [BASE_ALLOCATION] }));
    const replies = await this.option(Opt.GO, encodeInfoRequest({ name, requests: [] }));
    expect(replies.at(-1)!.type).toBe(Rep.ACK);
    const info = decodeInfoReply(replies[0]!.data);
    if (info.type !== Info.EXPORT) throw new Error('no NBD_INFO_EXPORT first');
    return { size: info.size, flags: info.flags };
  }

  request(req: Partial<Request> & { type: number }): void {
    this.write(encodeRequest({ flags: 0, handle: 7n, offset: 0, length: 0, ...req }));
  }

  async simpleReply(dataLength = 0): Promise<{ handle: bigint; error: number; data: Buffer }> {
    const r = decodeSimpleReply(await this.read(SIMPLE_REPLY_SIZE));
    return { ...r, data: r.error === 0 ? await this.read(dataLength) : Buffer.alloc(0) };
  }

  /** The chunks of one structured reply, up to the one flagged DONE. */
  async structuredReply(): Promise<(StructuredPayload & { handle: bigint })[]> {
    const chunks: (StructuredPayload & { handle: bigint })[] = [];
    for (;;) {
      const h = decodeStructuredHeader(await this.read(STRUCTURED_HEADER_SIZE));
      chunks.push({ ...decodeStructuredPayload(h.type, await this.read(h.length)), handle: h.handle });
      if (h.flags & ReplyFlag.DONE) return chunks;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The export's bytes as the chunks of a structured READ reply describe them. */
function assemble(chunks: StructuredPayload[], offset: number, length: number): Buffer {
  const out = Buffer.alloc(length, 0xee);
  for (const c of chunks) {
    if (c.type === ReplyType.OFFSET_DATA) c.data.copy(out, c.offset - offset);
    else if (c.type === ReplyType.OFFSET_HOLE) out.fill(0, c.offset - offset, c.offset - offset + c.length);
  }
  return out;
}

/** Runs `fn` while a well-behaved client reads random ranges, checking every byte; then checks it got through. */
async function besideGoodClient(fn: () => Promise<void>): Promise<void> {
  const good = await connectNbd(`unix:${sock}`, '');
  let stop = false;
  let reads = 0;
  const loop = (async () => {
    while (!stop) {
      const offset = Math.floor(Math.random() * (SIZE - 65536));
      const length = 1 + Math.floor(Math.random() * 65536);
      expect((await good.read(offset, length)).equals(content.subarray(offset, offset + length))).toBe(true);
      reads++;
    }
  })();
  try {
    await fn();
    const before = reads;
    await waitFor(() => reads > before + 3, 'the good client to keep reading');
  } finally {
    stop = true;
    await loop;
    await good.disconnect();
  }
}

describe('negotiation', () => {
  it('our client: NBD_OPT_GO over unix and TCP, then simple-reply reads', async () => {
    for (const address of [`unix:${sock}`, `tcp:127.0.0.1:${tcpPort}`]) {
      const c = await connectNbd(address, '');
      expect(c.size).toBe(SIZE);
      const want = TransmissionFlag.HAS_FLAGS | TransmissionFlag.READ_ONLY | TransmissionFlag.SEND_FLUSH | TransmissionFlag.CAN_MULTI_CONN;
      expect(c.flags).toBe(want); // no SEND_DF: structured replies were not negotiated
      const [a, b] = await Promise.all([c.read(0, 100_000), c.read(SIZE - 5000, 5000)]);
      expect(a.equals(content.subarray(0, 100_000))).toBe(true);
      expect(b.equals(content.subarray(SIZE - 5000))).toBe(true);
      await c.disconnect();
    }
  });

  it('an unknown export is NBD_REP_ERR_UNKNOWN, and the client may go on to a known one', async () => {
    await expect(connectNbd(`unix:${sock}`, 'nope')).rejects.toThrow(/ERR_UNKNOWN.*nope/);
    const raw = await Raw.connect();
    await raw.greet();
    const [reply] = await raw.option(Opt.GO, encodeInfoRequest({ name: 'nope', requests: [] }));
    expect(reply!.type).toBe(Rep.ERR_UNKNOWN);
    const info = await raw.option(Opt.INFO, encodeInfoRequest({ name: 'other', requests: [Info.NAME, Info.BLOCK_SIZE, Info.DESCRIPTION] }));
    expect(info.map((r) => r.type === Rep.INFO ? decodeInfoReply(r.data) : r.type)).toEqual([
      { type: Info.EXPORT, size: 8192, flags: expect.any(Number) },
      { type: Info.NAME, name: 'other' },
      { type: Info.BLOCK_SIZE, minimum: 1, preferred: 4096, maximum: 32 << 20 },
      Rep.ACK,
    ]);
    expect((await raw.option(Opt.GO, encodeInfoRequest({ name: 'other', requests: [] }))).at(-1)!.type).toBe(Rep.ACK);
    raw.request({ type: Cmd.READ, offset: 8000, length: 192 });
    expect((await raw.simpleReply(192)).error).toBe(0);
    raw.close();
  });

  it('NBD_OPT_LIST: one NBD_REP_SERVER per export with its description, then ACK', async () => {
    const raw = await Raw.connect();
    await raw.greet();
    const replies = await raw.option(Opt.LIST);
    expect(replies.slice(0, -1).map((r) => decodeServerReply(r.data))).toEqual([
      { name: '', description: 'the default export' },
      { name: 'other', description: '' },
    ]);
    expect(replies.at(-1)!.type).toBe(Rep.ACK);
    expect((await raw.option(Opt.LIST, Buffer.from('x')))[0]!.type).toBe(Rep.ERR_INVALID);
    raw.close();
  });

  it('options not spoken here are NBD_REP_ERR_UNSUP; NBD_OPT_ABORT is acknowledged and the connection closed', async () => {
    const raw = await Raw.connect();
    await raw.greet();
    for (const opt of [Opt.STARTTLS, Opt.EXTENDED_HEADERS, 4, 0xdead]) expect((await raw.option(opt))[0]!.type).toBe(Rep.ERR_UNSUP);
    expect((await raw.option(Opt.ABORT))[0]!.type).toBe(Rep.ACK);
    await raw.expectClosed();
  });

  it('meta contexts: only after structured replies; LIST and SET base:allocation; a selection for another export does not carry over', async () => {
    const raw = await Raw.connect();
    await raw.greet();
    const query = (exportName: string, queries: string[]) => encodeMetaContextRequest({ exportName, queries });
    expect((await raw.option(Opt.SET_META_CONTEXT, query('', [BASE_ALLOCATION])))[0]!.type).toBe(Rep.ERR_INVALID);
    await raw.option(Opt.STRUCTURED_REPLY);
    for (const queries of [[], ['base:'], [BASE_ALLOCATION]]) {
      const list = await raw.option(Opt.LIST_META_CONTEXT, query('', queries));
      expect(list.map((r) => r.type)).toEqual([Rep.META_CONTEXT, Rep.ACK]);
      expect(decodeMetaContextReply(list[0]!.data).name).toBe(BASE_ALLOCATION);
    }
    expect((await raw.option(Opt.LIST_META_CONTEXT, query('', ['qemu:dirty-bitmap:x']))).map((r) => r.type)).toEqual([Rep.ACK]);
    expect((await raw.option(Opt.SET_META_CONTEXT, query('nope', [BASE_ALLOCATION])))[0]!.type).toBe(Rep.ERR_UNKNOWN);
    const set = await raw.option(Opt.SET_META_CONTEXT, query('other', [BASE_ALLOCATION]));
    expect(set.map((r) => r.type)).toEqual([Rep.META_CONTEXT, Rep.ACK]);
    await raw.option(Opt.GO, encodeInfoRequest({ name: '', requests: [] }));
    raw.request({ type: Cmd.BLOCK_STATUS, offset: 0, length: 4096 });
    expect(await raw.structuredReply()).toEqual([expect.objectContaining({ type: ReplyType.ERROR, error: NbdErrno.EINVAL })]);
    raw.close();
  });

  it('NBD_OPT_EXPORT_NAME: size, flags and the 124 zeroes unless NO_ZEROES; an unknown name closes the connection', async () => {
    for (const noZeroes of [true, false]) {
      const raw = await Raw.connect();
      expect(await raw.greet(ClientFlag.FIXED_NEWSTYLE | (noZeroes ? ClientFlag.NO_ZEROES : 0))).toBe(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES);
      raw.write(encodeOption(Opt.EXPORT_NAME, encodeExportNameData('other')));
      const reply = await raw.read(10 + (noZeroes ? 0 : 124));
      expect(reply.readBigUInt64BE(0)).toBe(8192n);
      expect(reply.subarray(10).every((b) => b === 0)).toBe(true);
      raw.request({ type: Cmd.READ, offset: 0, length: 16 });
      expect(await raw.simpleReply(16)).toMatchObject({ error: 0, handle: 7n });
      raw.close();
    }
    const raw = await Raw.connect();
    await raw.greet();
    raw.write(encodeOption(Opt.EXPORT_NAME, encodeExportNameData('nope')));
    await raw.expectClosed();
  });
});

describe('transmission', () => {
  it('structured READ: data and hole chunks cover the range exactly; holes are never read from the device', async () => {
    const raw = await Raw.connect();
    const { flags } = await raw.go('', { structured: true });
    expect(flags & TransmissionFlag.SEND_DF).toBeTruthy();
    device.reads = [];
    const offset = 60_000;
    const length = 200_000; // data, then the first hole, then data
    raw.request({ type: Cmd.READ, offset, length, handle: 99n });
    const chunks = await raw.structuredReply();
    expect(chunks.map((c) => c.type)).toEqual([ReplyType.OFFSET_DATA, ReplyType.OFFSET_HOLE, ReplyType.OFFSET_DATA]);
    expect(chunks.every((c) => c.handle === 99n)).toBe(true);
    expect(assemble(chunks, offset, length).equals(content.subarray(offset, offset + length))).toBe(true);
    const hole = HOLES[0]!;
    expect(device.reads.some((r) => r.offset < hole.offset + hole.length && r.offset + r.length > hole.offset)).toBe(false);

    raw.request({ type: Cmd.READ, offset: hole.offset, length: hole.length });
    expect(await raw.structuredReply()).toEqual([expect.objectContaining({ type: ReplyType.OFFSET_HOLE, offset: hole.offset, length: hole.length })]);

    raw.request({ type: Cmd.READ, flags: CmdFlag.DF, offset, length });
    const df = await raw.structuredReply();
    expect(df.map((c) => c.type)).toEqual([ReplyType.OFFSET_DATA]); // don't fragment: one chunk, the hole as zeroes
    expect(assemble(df, offset, length).equals(content.subarray(offset, offset + length))).toBe(true);
    raw.close();
  });

  it('simple READ across holes returns the zeroes in place', async () => {
    const raw = await Raw.connect();
    await raw.go();
    raw.request({ type: Cmd.READ, offset: 0, length: SIZE });
    expect((await raw.simpleReply(SIZE)).data.equals(content)).toBe(true);
    raw.request({ type: Cmd.READ, flags: CmdFlag.DF, offset: 0, length: 10 }); // DF without structured replies
    expect((await raw.simpleReply()).error).toBe(NbdErrno.EINVAL);
    raw.close();
  });

  it('BLOCK_STATUS base:allocation: holes are HOLE|ZERO, data 0; REQ_ONE gives one descriptor; past the end is EINVAL', async () => {
    const raw = await Raw.connect();
    await raw.go('', { structured: true, allocation: true });
    raw.request({ type: Cmd.BLOCK_STATUS, offset: 0, length: SIZE });
    const [status] = await raw.structuredReply();
    expect(status).toMatchObject({ type: ReplyType.BLOCK_STATUS, contextId: 1 });
    const [h1, h2] = HOLES as [typeof HOLES[0], typeof HOLES[0]];
    const hz = State.HOLE | State.ZERO;
    expect(status!.type === ReplyType.BLOCK_STATUS && status!.descriptors).toEqual([
      { length: h1.offset, flags: 0 },
      { length: h1.length, flags: hz },
      { length: h2.offset - h1.offset - h1.length, flags: 0 },
      { length: h2.length, flags: hz },
      { length: SIZE - h2.offset - h2.length, flags: 0 },
    ]);
    raw.request({ type: Cmd.BLOCK_STATUS, flags: CmdFlag.REQ_ONE, offset: h1.offset + 4096, length: SIZE - h1.offset - 4096 });
    const [one] = await raw.structuredReply();
    expect(one!.type === ReplyType.BLOCK_STATUS && one!.descriptors).toEqual([{ length: h1.length - 4096, flags: hz }]);
    raw.request({ type: Cmd.BLOCK_STATUS, offset: SIZE - 4096, length: 8192 });
    expect(await raw.structuredReply()).toEqual([expect.objectContaining({ type: ReplyType.ERROR, error: NbdErrno.EINVAL })]);
    raw.request({ type: Cmd.FLUSH });
    expect((await raw.simpleReply()).error).toBe(0);
    raw.close();
  });

  it('requests of one client are served concurrently, at most 16 at once; the rest wait in its socket', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    device.reads = [];
    device.beforeRead = () => gate;
    const raw = await Raw.connect();
    await raw.go();
    for (let i = 0; i < 40; i++) raw.request({ type: Cmd.READ, handle: BigInt(i), offset: i * 4096, length: 4096 });
    await waitFor(() => device.reads.length === 16, '16 reads in flight');
    await new Promise((r) => setTimeout(r, 100));
    expect(device.reads.length).toBe(16);
    release();
    const handles = new Set<bigint>();
    for (let i = 0; i < 40; i++) {
      const r = await raw.simpleReply(4096);
      const n = Number(r.handle);
      expect(r.data.equals(content.subarray(n * 4096, n * 4096 + 4096))).toBe(true);
      handles.add(r.handle);
    }
    expect(handles.size).toBe(40);
    raw.close();
  });

  it('replies go out as each read finishes, not in request order', async () => {
    let releaseFirst!: () => void;
    const first = new Promise<void>((resolve) => (releaseFirst = resolve));
    device.beforeRead = (r) => (r.offset === 0 ? first : undefined);
    const raw = await Raw.connect();
    await raw.go();
    raw.request({ type: Cmd.READ, handle: 1n, offset: 0, length: 4096 });
    raw.request({ type: Cmd.READ, handle: 2n, offset: 4096, length: 4096 });
    expect((await raw.simpleReply(4096)).handle).toBe(2n);
    releaseFirst();
    expect((await raw.simpleReply(4096)).handle).toBe(1n);
    raw.close();
  });

  it('a device read error is EIO for that request; the connection and other requests go on', async () => {
    device.beforeRead = (r) => {
      if (r.offset === 8192) throw new Error('chunk digest mismatch');
    };
    const c = await connectNbd(`unix:${sock}`, '');
    const results = await Promise.allSettled([c.read(0, 4096), c.read(8192, 4096), c.read(16384, 4096)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(NbdRequestError);
    expect(((results[1] as PromiseRejectedResult).reason as NbdRequestError).errno).toBe(NbdErrno.EIO);
    expect((await c.read(8192 + 4096, 10)).equals(content.subarray(12288, 12298))).toBe(true);
    const raw = await Raw.connect();
    await raw.go('', { structured: true });
    raw.request({ type: Cmd.READ, offset: 8192, length: 4096 });
    expect(await raw.structuredReply()).toEqual([expect.objectContaining({ type: ReplyType.ERROR, error: NbdErrno.EIO })]);
    raw.close();
    await c.disconnect();
  });

  it('NBD_CMD_DISC: the replies in flight are sent first, then the connection is closed', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    device.beforeRead = () => gate;
    const raw = await Raw.connect();
    await raw.go();
    raw.request({ type: Cmd.READ, offset: 0, length: 4096 });
    raw.request({ type: Cmd.DISC });
    raw.request({ type: Cmd.READ, offset: 0, length: 4096 }); // after DISC: ignored
    await new Promise((r) => setTimeout(r, 50));
    release();
    expect((await raw.simpleReply(4096)).data.equals(content.subarray(0, 4096))).toBe(true);
    await raw.expectClosed();
    await expect(raw.read(1)).rejects.toThrow(/closed/);
  });
});

describe('hostile clients lose their own connection only', () => {
  it('garbage instead of the client flags (an HTTP request)', async () => {
    await besideGoodClient(async () => {
      const raw = await Raw.connect();
      await raw.read(GREETING_SIZE);
      raw.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      await raw.expectClosed();
    });
  });

  it('a request before the handshake', async () => {
    await besideGoodClient(async () => {
      const raw = await Raw.connect();
      raw.request({ type: Cmd.READ, offset: 0, length: 4096 });
      await raw.expectClosed();
    });
  });

  it('an option without the IHAVEOPT magic', async () => {
    await besideGoodClient(async () => {
      const raw = await Raw.connect();
      await raw.greet();
      const opt = encodeOption(Opt.LIST);
      opt.write('XXXXXXXX', 0);
      raw.write(opt);
      await raw.expectClosed();
    });
  });

  it('a truncated option, and a client that says nothing: dropped at the handshake timeout (slow loris)', async () => {
    await besideGoodClient(async () => {
      const truncated = await Raw.connect();
      await truncated.greet();
      truncated.write(encodeOption(Opt.GO, encodeInfoRequest({ name: '', requests: [] })).subarray(0, 20));
      const silent = await Raw.connect();
      const started = performance.now();
      await Promise.all([truncated.expectClosed(), silent.expectClosed()]);
      expect(performance.now() - started).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 50);
    });
  });

  it('an option claiming 4 GiB of data: NBD_REP_ERR_TOO_BIG, then closed', async () => {
    await besideGoodClient(async () => {
      const raw = await Raw.connect();
      await raw.greet();
      const header = encodeOption(Opt.GO);
      header.writeUInt32BE(0xffffffff, 12);
      raw.write(header);
      raw.write(Buffer.alloc(64 << 10)); // the start of the promised data
      const reply = decodeOptionReplyHeader(await raw.read(20));
      expect(reply.type).toBe(Rep.ERR_TOO_BIG);
      await raw.expectClosed();
    });
  });

  it('a meta context request claiming 2^32-1 queries is NBD_REP_ERR_INVALID, and negotiation goes on', async () => {
    const raw = await Raw.connect();
    await raw.greet();
    await raw.option(Opt.STRUCTURED_REPLY);
    const data = encodeMetaContextRequest({ exportName: '', queries: [] });
    data.writeUInt32BE(0xffffffff, 4);
    expect((await raw.option(Opt.SET_META_CONTEXT, data))[0]!.type).toBe(Rep.ERR_INVALID);
    expect((await raw.option(Opt.GO, encodeInfoRequest({ name: '', requests: [] }))).at(-1)!.type).toBe(Rep.ACK);
    raw.close();
  });

  it('unknown client flags', async () => {
    const raw = await Raw.connect();
    await raw.greet(0x80);
    await raw.expectClosed();
  });

  it('READ past the end, at offset 2^64-1, of 1 GiB, of 0 bytes; an unknown command: EINVAL, and the connection goes on', async () => {
    await besideGoodClient(async () => {
      for (const structured of [false, true]) {
        const raw = await Raw.connect();
        await raw.go('', { structured });
        const bad: Partial<Request>[] = [
          { offset: SIZE - 100, length: 101 },
          { offset: SIZE + 4096, length: 1 },
          { offset: Number.MAX_SAFE_INTEGER, length: 4096 },
          { offset: 0, length: 1 << 30 },
          { offset: 0, length: 0 },
        ];
        for (const req of bad) {
          raw.request({ type: Cmd.READ, ...req });
          if (structured) expect(await raw.structuredReply()).toEqual([expect.objectContaining({ type: ReplyType.ERROR, error: NbdErrno.EINVAL })]);
          else expect((await raw.simpleReply()).error).toBe(NbdErrno.EINVAL);
        }
        const far = encodeRequest({ flags: 0, type: Cmd.READ, handle: 5n, offset: 0, length: 1 });
        far.writeBigUInt64BE(2n ** 64n - 1n, 16);
        raw.write(far);
        raw.request({ type: 99 });
        raw.request({ type: Cmd.BLOCK_STATUS, length: 4096 }); // no meta context negotiated
        for (let i = 0; i < 3; i++) {
          const error = structured ? (await raw.structuredReply())[0]!.type === ReplyType.ERROR : (await raw.simpleReply()).error === NbdErrno.EINVAL;
          expect(error).toBe(true);
        }
        raw.request({ type: Cmd.READ, offset: SIZE - 100, length: 100 });
        const tail = structured ? assemble(await raw.structuredReply(), SIZE - 100, 100) : (await raw.simpleReply(100)).data;
        expect(tail.equals(content.subarray(SIZE - 100))).toBe(true);
        raw.close();
      }
    });
  });

  it('WRITE (its payload skipped), TRIM and WRITE_ZEROES: EPERM, and the connection goes on', async () => {
    await besideGoodClient(async () => {
      const raw = await Raw.connect();
      await raw.go();
      raw.request({ type: Cmd.WRITE, offset: 0, length: 300_000 });
      raw.write(Buffer.alloc(300_000, 0x25)); // looks like request magic bytes, must not be parsed as requests
      raw.request({ type: Cmd.TRIM, offset: 0, length: 4096 });
      raw.request({ type: Cmd.WRITE_ZEROES, offset: 0, length: 4096 });
      for (let i = 0; i < 3; i++) expect((await raw.simpleReply()).error).toBe(NbdErrno.EPERM);
      raw.request({ type: Cmd.READ, offset: 4096, length: 4096 });
      expect((await raw.simpleReply(4096)).data.equals(content.subarray(4096, 8192))).toBe(true);
      raw.close();
    });
  });

  it('a bad request magic in the transmission phase', async () => {
    await besideGoodClient(async () => {
      const raw = await Raw.connect();
      await raw.go();
      raw.write(Buffer.alloc(28, 0x41));
      await raw.expectClosed();
    });
  });

  it('a client that never takes its replies: the server stops reading its requests instead of buffering without end', async () => {
    await besideGoodClient(async () => {
      const raw = await Raw.connect();
      await raw.go();
      raw.socket.pause();
      device.reads = [];
      // each 1 MiB read is the data before the first hole and the data after it
      const ownReads = () => device.reads.filter((r) => r.offset === 0 && r.length === HOLES[0]!.offset).length;
      const requests = Array.from({ length: 300 }, (_, i) => encodeRequest({ flags: 0, type: Cmd.READ, handle: BigInt(i), offset: 0, length: 1 << 20 }));
      raw.socket.write(Buffer.concat(requests));
      let seen = -1;
      await waitFor(async () => {
        const now = ownReads();
        const settled = now === seen;
        seen = now;
        await new Promise((r) => setTimeout(r, 200));
        return settled;
      }, 'the server to stop reading');
      // 300 MiB asked for; what it holds is bounded by the pending-output cap (4 MiB) and 16 reads in flight
      expect(seen).toBeGreaterThan(0);
      expect(seen).toBeLessThan(40);
      raw.close();
    });
  });

  it('a client that takes none of its replies is dropped after the stall timeout; an idle client is kept', async () => {
    const stallMs = 300;
    const s2 = new NbdServer({ names: () => [''], open: () => device }, { stallTimeoutMs: stallMs });
    const path = join(dir, 'stall.sock');
    await s2.listen(`unix:${path}`);
    const idle = await connectNbd(`unix:${path}`, '');
    const stuck = await Raw.connect(path);
    await stuck.go();
    stuck.socket.pause();
    // twice: the idle client's own timeouts must not have used up the server's watch
    await new Promise((r) => setTimeout(r, stallMs * 2));
    for (let i = 0; i < 64; i++) stuck.request({ type: Cmd.READ, handle: BigInt(i), offset: 0, length: 1 << 20 });
    await waitFor(() => s2.stats.clients === 1, 'the stuck client to be dropped');
    await new Promise((r) => setTimeout(r, stallMs * 2));
    expect((await idle.read(0, 4096)).equals(content.subarray(0, 4096))).toBe(true);
    expect(s2.stats.clients).toBe(1);
    stuck.close();
    await idle.disconnect();
    await s2.close();
  });

  it('the counters saw it all; only the good clients remain connected', async () => {
    await waitFor(() => server.stats.clients === 0, 'every client gone');
    const s = server.stats;
    expect(s.requests).toBeGreaterThan(100);
    expect(s.errors).toBeGreaterThan(10);
    expect(s.readBytes).toBeGreaterThan(SIZE);
    expect(s.connections).toBeGreaterThan(20);
  });
});

describe('listeners', () => {
  it('close() drops clients and removes its unix socket; a stale socket file is replaced, a live one is not', async () => {
    const path = join(dir, 'second.sock');
    const s2 = new NbdServer({ names: () => [''], open: () => other });
    await expect(s2.listen(`unix:${sock}`)).rejects.toThrow(/EADDRINUSE/); // the live server's socket is left alone
    // a socket file nobody listens on any more (its server was killed -9)
    execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
    expect((await stat(path)).isSocket()).toBe(true);
    await s2.listen(`unix:${path}`);
    expect(((await stat(path)).mode & 0o777).toString(8)).toBe('600');
    const c = await connectNbd(`unix:${path}`, '');
    const closed = new Promise((resolve) => c.socket.once('close', resolve));
    await s2.close();
    await closed;
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
    expect(s2.stats.clients).toBe(0);
  });

  it('a TCP address without a host listens on 127.0.0.1', async () => {
    const s3 = new NbdServer({ names: () => [''], open: () => other });
    const bound = await s3.listen('tcp:0');
    expect(bound).toMatchObject({ kind: 'tcp', host: '127.0.0.1' });
    const c: NbdConnection = await connectNbd(bound, '');
    expect(c.size).toBe(8192);
    await c.disconnect();
    await s3.close();
  });
});
