// The NBD codec against the byte layouts of the protocol (NetworkBlockDevice/nbd doc/proto.md): round
// trips of every message, the exact bytes of a few, and the typed error every malformed input becomes.
import { describe, expect, it } from 'vitest';
import {
  BASE_ALLOCATION, Cmd, CmdFlag, EXPORT_NAME_PADDING, GREETING_SIZE, HandshakeFlag, IHAVEOPT, Info, MAX_STRING, NBD_MAGIC, NbdErrno,
  NbdProtocolError, OPTION_REPLY_MAGIC, Opt, Rep, ReplyFlag, ReplyType, REQUEST_MAGIC, REQUEST_SIZE, STRUCTURED_HEADER_SIZE,
  decodeClientFlags, decodeExportNameData, decodeExportNameReply, decodeGreeting, decodeInfoReply, decodeInfoRequest,
  decodeMetaContextReply, decodeMetaContextRequest, decodeOptionHeader, decodeOptionReplyHeader, decodeRequest, decodeServerReply,
  decodeSimpleReply, decodeStructuredHeader, decodeStructuredPayload, encodeBlockStatus, encodeClientFlags, encodeExportNameData,
  encodeExportNameReply, encodeGreeting, encodeInfoReply, encodeInfoRequest, encodeMetaContextReply, encodeMetaContextRequest,
  encodeNone, encodeOffsetDataHead, encodeOffsetHole, encodeOption, encodeOptionError, encodeOptionReply, encodeRequest,
  encodeServerReply, encodeSimpleReply, encodeStructuredError, isErrorReply,
} from '../../../src/block/nbd/protocol.js';

/** A structured chunk split back into its header and decoded payload. */
function chunk(bytes: Buffer) {
  const header = decodeStructuredHeader(bytes.subarray(0, STRUCTURED_HEADER_SIZE));
  expect(bytes.length).toBe(STRUCTURED_HEADER_SIZE + header.length);
  return { header, payload: decodeStructuredPayload(header.type, bytes.subarray(STRUCTURED_HEADER_SIZE)) };
}

const HANDLE = 0xfedcba9876543210n;

describe('handshake', () => {
  it('greeting: NBDMAGIC, IHAVEOPT, 16-bit handshake flags', () => {
    const g = encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES);
    expect(g.length).toBe(GREETING_SIZE);
    expect(g.subarray(0, 16).toString('latin1')).toBe('NBDMAGICIHAVEOPT');
    expect(g.readUInt16BE(16)).toBe(3);
    expect(decodeGreeting(g)).toBe(3);
  });

  it('refuses an oldstyle greeting and anything that is not NBDMAGIC', () => {
    const old = encodeGreeting(0);
    old.writeBigUInt64BE(0x00420281861253n, 8);
    expect(() => decodeGreeting(old)).toThrow(/newstyle/);
    const bad = encodeGreeting(0);
    bad.write('X', 0);
    expect(() => decodeGreeting(bad)).toThrow(NbdProtocolError);
    expect(() => decodeGreeting(encodeGreeting(0).subarray(0, 17))).toThrow(NbdProtocolError);
  });

  it('client flags are 32 bits', () => {
    expect(encodeClientFlags(3)).toEqual(Buffer.from([0, 0, 0, 3]));
    expect(decodeClientFlags(encodeClientFlags(0xffffffff))).toBe(0xffffffff);
    expect(() => decodeClientFlags(Buffer.alloc(3))).toThrow(NbdProtocolError);
  });
});

describe('option requests', () => {
  it('header: IHAVEOPT, option, length, then the data', () => {
    const o = encodeOption(Opt.GO, Buffer.from('abc'));
    expect(o.readBigUInt64BE(0)).toBe(IHAVEOPT);
    expect(decodeOptionHeader(o.subarray(0, 16))).toEqual({ option: Opt.GO, length: 3 });
    expect(o.subarray(16).toString()).toBe('abc');
    const bad = Buffer.from(o.subarray(0, 16));
    bad.writeUInt8(0, 0);
    expect(() => decodeOptionHeader(bad)).toThrow(/IHAVEOPT/);
  });

  it('NBD_OPT_GO / NBD_OPT_INFO data round-trips', () => {
    const req = { name: 'déjà vu', requests: [Info.NAME, Info.BLOCK_SIZE] };
    const data = encodeInfoRequest(req);
    expect(data.readUInt32BE(0)).toBe(Buffer.byteLength('déjà vu'));
    expect(decodeInfoRequest(data)).toEqual(req);
    expect(decodeInfoRequest(encodeInfoRequest({ name: '', requests: [] }))).toEqual({ name: '', requests: [] });
  });

  it('NBD_OPT_GO data is bounds-checked: name past the end, count past the end, trailing bytes', () => {
    const data = encodeInfoRequest({ name: 'x', requests: [1, 2] });
    const longName = Buffer.from(data);
    longName.writeUInt32BE(0xffffffff, 0);
    expect(() => decodeInfoRequest(longName)).toThrow(/past the end/);
    expect(() => decodeInfoRequest(data.subarray(0, data.length - 1))).toThrow(NbdProtocolError);
    expect(() => decodeInfoRequest(Buffer.concat([data, Buffer.alloc(1)]))).toThrow(NbdProtocolError);
    expect(() => decodeInfoRequest(Buffer.alloc(2))).toThrow(NbdProtocolError);
  });

  it('strings: no NUL, valid UTF-8, at most 4096 bytes', () => {
    expect(() => decodeExportNameData(Buffer.from('a\0b'))).toThrow(/NUL/);
    expect(() => decodeExportNameData(Buffer.from([0xc3, 0x28]))).toThrow(/UTF-8/);
    expect(() => decodeExportNameData(Buffer.alloc(MAX_STRING + 1, 0x61))).toThrow(/at most/);
    expect(decodeExportNameData(encodeExportNameData('image'))).toBe('image');
    expect(() => encodeExportNameData('x'.repeat(MAX_STRING + 1))).toThrow(RangeError);
  });

  it('meta context requests round-trip', () => {
    const req = { exportName: 'img', queries: [BASE_ALLOCATION, 'qemu:dirty-bitmap:x'] };
    expect(decodeMetaContextRequest(encodeMetaContextRequest(req))).toEqual(req);
    expect(decodeMetaContextRequest(encodeMetaContextRequest({ exportName: '', queries: [] }))).toEqual({ exportName: '', queries: [] });
  });

  it('meta context requests are bounds-checked: a query count the data cannot hold is refused before looping', () => {
    const data = encodeMetaContextRequest({ exportName: 'img', queries: ['base:'] });
    const huge = Buffer.from(data);
    huge.writeUInt32BE(0xffffffff, 4 + 3);
    expect(() => decodeMetaContextRequest(huge)).toThrow(/queries in/);
    const queryPastEnd = Buffer.from(data);
    queryPastEnd.writeUInt32BE(1000, 4 + 3 + 4);
    expect(() => decodeMetaContextRequest(queryPastEnd)).toThrow(/past the end/);
    expect(() => decodeMetaContextRequest(Buffer.concat([data, Buffer.alloc(2)]))).toThrow(NbdProtocolError);
    expect(() => decodeMetaContextRequest(data.subarray(0, 9))).toThrow(NbdProtocolError);
  });
});

describe('option replies', () => {
  it('header: reply magic, option, type, length', () => {
    const r = encodeOptionReply(Opt.LIST, Rep.SERVER, encodeServerReply('a', 'the a image'));
    expect(r.readBigUInt64BE(0)).toBe(OPTION_REPLY_MAGIC);
    const h = decodeOptionReplyHeader(r.subarray(0, 20));
    expect(h).toEqual({ option: Opt.LIST, type: Rep.SERVER, length: r.length - 20 });
    expect(decodeServerReply(r.subarray(20))).toEqual({ name: 'a', description: 'the a image' });
    expect(() => decodeOptionReplyHeader(Buffer.alloc(20))).toThrow(/magic/);
  });

  it('error replies have bit 31 set and carry a message cut to 4096 bytes on a character boundary', () => {
    expect(isErrorReply(Rep.ERR_UNSUP)).toBe(true);
    expect(isErrorReply(Rep.ACK)).toBe(false);
    expect(Rep.ERR_TOO_BIG).toBe(2 ** 31 + 9);
    const r = encodeOptionError(Opt.GO, Rep.ERR_UNKNOWN, 'é'.repeat(3000));
    const h = decodeOptionReplyHeader(r.subarray(0, 20));
    expect(h.type).toBe(Rep.ERR_UNKNOWN);
    expect(h.length).toBe(4096);
    expect(r.subarray(20).toString('utf8')).toBe('é'.repeat(2048));
  });

  it('NBD_REP_INFO payloads round-trip', () => {
    const infos = [
      { type: Info.EXPORT, size: 2 ** 40 + 7, flags: 0x1a7 },
      { type: Info.NAME, name: 'image' },
      { type: Info.DESCRIPTION, description: 'a lazy EROFS image' },
      { type: Info.BLOCK_SIZE, minimum: 1, preferred: 4096, maximum: 32 << 20 },
    ] as const;
    for (const info of infos) expect(decodeInfoReply(encodeInfoReply(info))).toEqual(info);
    expect(encodeInfoReply(infos[0]).length).toBe(12);
    expect(decodeInfoReply(Buffer.from([0, 99]))).toEqual({ type: 'unknown', info: 99 });
    expect(() => decodeInfoReply(Buffer.from([0, 0, 1]))).toThrow(NbdProtocolError);
    expect(() => decodeInfoReply(Buffer.from([0, 3, 0, 0]))).toThrow(NbdProtocolError);
  });

  it('a size past 2^53 decodes as Infinity, never as a wrong smaller number', () => {
    const data = encodeInfoReply({ type: Info.EXPORT, size: 0, flags: 1 });
    data.writeBigUInt64BE(2n ** 63n + 1n, 2);
    expect(decodeInfoReply(data)).toEqual({ type: Info.EXPORT, size: Infinity, flags: 1 });
  });

  it('NBD_REP_META_CONTEXT round-trips', () => {
    expect(decodeMetaContextReply(encodeMetaContextReply(7, BASE_ALLOCATION))).toEqual({ id: 7, name: BASE_ALLOCATION });
    expect(() => decodeMetaContextReply(Buffer.alloc(3))).toThrow(NbdProtocolError);
  });

  it('the NBD_OPT_EXPORT_NAME reply: size, flags and 124 zeroes unless NO_ZEROES', () => {
    expect(encodeExportNameReply(4096, 3, false).length).toBe(10 + EXPORT_NAME_PADDING);
    const r = encodeExportNameReply(4096, 3, true);
    expect(r.length).toBe(10);
    expect(decodeExportNameReply(r)).toEqual({ size: 4096, flags: 3 });
    expect(() => decodeExportNameReply(r.subarray(0, 9))).toThrow(NbdProtocolError);
  });
});

describe('transmission', () => {
  it('a request is 28 bytes: magic, flags, type, handle, offset, length', () => {
    const req = { flags: CmdFlag.DF, type: Cmd.READ, handle: HANDLE, offset: 2 ** 40, length: 65536 };
    const bytes = encodeRequest(req);
    expect(bytes.length).toBe(REQUEST_SIZE);
    expect(bytes.readUInt32BE(0)).toBe(REQUEST_MAGIC);
    expect(bytes.readUInt16BE(4)).toBe(CmdFlag.DF);
    expect(decodeRequest(bytes)).toEqual(req);
  });

  it('a request with a bad magic, too few bytes or an offset past 2^53 is refused or out of range', () => {
    const bytes = encodeRequest({ flags: 0, type: Cmd.READ, handle: 1n, offset: 0, length: 1 });
    const bad = Buffer.from(bytes);
    bad.writeUInt32BE(0x21e41c71, 0); // extended header magic: never negotiated here
    expect(() => decodeRequest(bad)).toThrow(/bad magic/);
    expect(() => decodeRequest(bytes.subarray(0, 27))).toThrow(NbdProtocolError);
    const far = Buffer.from(bytes);
    far.writeBigUInt64BE(2n ** 64n - 1n, 16);
    expect(decodeRequest(far).offset).toBe(Infinity);
  });

  it('simple reply round-trips', () => {
    expect(decodeSimpleReply(encodeSimpleReply(HANDLE, NbdErrno.EIO))).toEqual({ handle: HANDLE, error: 5 });
    expect(() => decodeSimpleReply(Buffer.alloc(16))).toThrow(/magic/);
  });

  it('OFFSET_DATA: the head carries the offset, the data follows', () => {
    const data = Buffer.from('hello');
    const { header, payload } = chunk(Buffer.concat([encodeOffsetDataHead(HANDLE, 0, 4096, data.length), data]));
    expect(header).toEqual({ flags: 0, type: ReplyType.OFFSET_DATA, handle: HANDLE, length: 8 + 5 });
    expect(payload).toEqual({ type: ReplyType.OFFSET_DATA, offset: 4096, data });
  });

  it('OFFSET_HOLE, NONE and BLOCK_STATUS round-trip', () => {
    expect(chunk(encodeOffsetHole(HANDLE, ReplyFlag.DONE, 8192, 4096)).payload).toEqual({ type: ReplyType.OFFSET_HOLE, offset: 8192, length: 4096 });
    const none = chunk(encodeNone(HANDLE));
    expect(none.header.flags).toBe(ReplyFlag.DONE);
    expect(none.payload).toEqual({ type: ReplyType.NONE });
    const descriptors = [{ length: 4096, flags: 0 }, { length: 8192, flags: 3 }];
    expect(chunk(encodeBlockStatus(HANDLE, ReplyFlag.DONE, 1, descriptors)).payload).toEqual({ type: ReplyType.BLOCK_STATUS, contextId: 1, descriptors });
  });

  it('ERROR and ERROR_OFFSET round-trip', () => {
    expect(chunk(encodeStructuredError(HANDLE, ReplyFlag.DONE, NbdErrno.EINVAL, 'past the end')).payload).toEqual({
      type: ReplyType.ERROR, error: 22, message: 'past the end',
    });
    expect(chunk(encodeStructuredError(HANDLE, 0, NbdErrno.EIO, 'bad chunk', 12345)).payload).toEqual({
      type: ReplyType.ERROR_OFFSET, error: 5, message: 'bad chunk', offset: 12345,
    });
  });

  it('structured payloads are bounds-checked', () => {
    expect(() => decodeStructuredPayload(ReplyType.OFFSET_DATA, Buffer.alloc(8))).toThrow(NbdProtocolError);
    expect(() => decodeStructuredPayload(ReplyType.OFFSET_HOLE, Buffer.alloc(11))).toThrow(NbdProtocolError);
    expect(() => decodeStructuredPayload(ReplyType.BLOCK_STATUS, Buffer.alloc(4))).toThrow(NbdProtocolError);
    expect(() => decodeStructuredPayload(ReplyType.BLOCK_STATUS, Buffer.alloc(13))).toThrow(NbdProtocolError);
    expect(() => decodeStructuredPayload(ReplyType.NONE, Buffer.alloc(1))).toThrow(NbdProtocolError);
    const err = encodeStructuredError(HANDLE, 0, 5, 'abc').subarray(STRUCTURED_HEADER_SIZE);
    err.writeUInt16BE(100, 4); // message length past the chunk
    expect(() => decodeStructuredPayload(ReplyType.ERROR, err)).toThrow(NbdProtocolError);
    expect(decodeStructuredPayload(77, Buffer.alloc(0))).toEqual({ type: 'unknown', replyType: 77 });
    expect(() => decodeStructuredHeader(Buffer.alloc(STRUCTURED_HEADER_SIZE))).toThrow(/magic/);
  });

  it('constants match the spec', () => {
    expect(NBD_MAGIC).toBe(BigInt('0x' + Buffer.from('NBDMAGIC').toString('hex')));
    expect([Opt.GO, Opt.STRUCTURED_REPLY, Opt.LIST_META_CONTEXT, Opt.SET_META_CONTEXT]).toEqual([7, 8, 9, 10]);
    expect([ReplyType.ERROR, ReplyType.ERROR_OFFSET]).toEqual([0x8001, 0x8002]);
    expect([Cmd.BLOCK_STATUS, NbdErrno.EOVERFLOW, NbdErrno.ESHUTDOWN]).toEqual([7, 75, 108]);
  });
});
