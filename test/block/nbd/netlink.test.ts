// The generic-netlink and nbd-family codec against the byte layouts of <linux/netlink.h>,
// <linux/genetlink.h> and <linux/nbd-netlink.h>: requests byte for byte, replies captured from this
// kernel or built to the same layout, and the errors truncated or hostile replies turn into.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeReplies, getFamilyRequest, NBD_FLAG_CAN_MULTI_CONN, NBD_FLAG_HAS_FLAGS, NBD_FLAG_READ_ONLY, nbdConnectRequest,
  nbdDisconnectRequest, nbdReconfigureRequest, nbdStatusRequest, nla, nlaNested, nlaString, nlaU32, nlaU64, NetlinkError,
  NetlinkProtocolError, parseAttributes, parseConnectReply, parseFamilyReply, parseMessages, parseStatusReply,
} from '../../../src/block/nbd/netlink.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** nlmsghdr + payload, the way the kernel frames a reply (padded to 4 bytes). */
function message(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const len = 16 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6);
  out.writeUInt32LE(seq, 8);
  out.writeUInt32LE(0xf77, 12);
  payload.copy(out, 16);
  return out;
}
const genl = (cmd: number, version: number, ...attrs: Buffer[]): Buffer => Buffer.concat([Buffer.of(cmd, version, 0, 0), ...attrs]);
/** The ack that ends an exchange: NLMSG_ERROR 0, the request's header echoed (NETLINK_CAP_ACK). */
const ack = (seq: number, errno = 0, tail: Buffer = Buffer.alloc(0), flags = 0x100): Buffer => {
  const payload = Buffer.alloc(20);
  payload.writeInt32LE(-errno, 0);
  payload.writeUInt32LE(28, 4); // the echoed request header: its length, family 0x10, flags, seq
  payload.writeUInt16LE(0x10, 8);
  payload.writeUInt32LE(seq, 12);
  return message(2, flags, seq, Buffer.concat([payload, tail]));
};

const NBD_FAMILY = 0x1a;

// CTRL_CMD_GETFAMILY "nlctrl" on this kernel (6.12), replies as the addon returned them: the
// CTRL_CMD_NEWFAMILY message (id 0x10, version 2, ops, the "notify" multicast group) and the ack.
const capturedNlctrlReply = hex(`
  880000001000000001000000770f0000010200000b0002006e6c6374726c0000
  0600010010000000080003000200000008000400000000000800050000000000
  2c000600140001000800010003000000080002000e0000001400020008000100
  0a000000080002000c0000001c0007001800010008000200100000000b000100
  6e6f746966790000240000000200000101000000770f00000000000020000000
  100005000100000000000000`);
// CTRL_CMD_GETFAMILY "nbd" on this host, which has no nbd driver: NLMSG_ERROR -ENOENT, capped.
const capturedNbdMissing = hex('240000000200000101000000770f0000feffffff1c000000100005000100000000000000');

describe('request encoding', () => {
  it('CTRL_CMD_GETFAMILY by name: nlmsghdr, genlmsghdr, CTRL_ATTR_FAMILY_NAME with its NUL', () => {
    expect(getFamilyRequest('nbd').toString('hex')).toBe(
      '1c000000' + '1000' + '0500' + '01000000' + '00000000' // len 28, GENL_ID_CTRL, REQUEST|ACK, seq 1, pid 0
      + '03' + '01' + '0000' // CTRL_CMD_GETFAMILY, version 1
      + '0800' + '0200' + '6e626400', // len 8, CTRL_ATTR_FAMILY_NAME, "nbd\0"
    );
  });

  it('pads an attribute to 4 bytes with zeros that its length does not count', () => {
    expect(getFamilyRequest('nlctrl', 9).toString('hex')).toBe(
      '20000000' + '1000' + '0500' + '09000000' + '00000000' + '03010000'
      + '0b00' + '0200' + '6e6c6374726c00' + '00', // len 11: "nlctrl\0", one byte of padding
    );
    expect(nlaString(10, 'abcde').toString('hex')).toBe('0a00' + '0a00' + '616263646500' + '0000');
    expect(nla(1, Buffer.alloc(0)).toString('hex')).toBe('04000100');
    expect(nlaU32(1, 0xfffffffe).toString('hex')).toBe('08000100feffffff');
    expect(nlaU64(2, 2n ** 40n + 1n).toString('hex')).toBe('0c0002000100000000010000');
  });

  it('NBD_CMD_CONNECT: size, block size, server flags, nested socket items, dead-connection timeout', () => {
    const request = nbdConnectRequest(NBD_FAMILY, {
      sizeBytes: 1 << 20,
      blockSizeBytes: 4096,
      serverFlags: NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY | NBD_FLAG_CAN_MULTI_CONN,
      sockets: [5, 9],
      deadConnTimeoutSeconds: 60,
    }, 7);
    expect(request.toString('hex')).toBe(
      '60000000' + '1a00' + '0500' + '07000000' + '00000000' // len 96, the nbd family, REQUEST|ACK, seq 7
      + '01' + '01' + '0000' // NBD_CMD_CONNECT, NBD_GENL_VERSION
      + '0c00' + '0200' + '0000100000000000' // NBD_ATTR_SIZE_BYTES u64 1 MiB
      + '0c00' + '0300' + '0010000000000000' // NBD_ATTR_BLOCK_SIZE_BYTES u64 4096
      + '0c00' + '0500' + '0301000000000000' // NBD_ATTR_SERVER_FLAGS u64 0x103
      + '1c00' + '0780' // NBD_ATTR_SOCKETS | NLA_F_NESTED, 28 bytes
      + '0c00' + '0180' + '0800' + '0100' + '05000000' // NBD_SOCK_ITEM { NBD_SOCK_FD 5 }
      + '0c00' + '0180' + '0800' + '0100' + '09000000' // NBD_SOCK_ITEM { NBD_SOCK_FD 9 }
      + '0c00' + '0800' + '3c00000000000000', // NBD_ATTR_DEAD_CONN_TIMEOUT u64 60
    );
    expect(request.length % 4).toBe(0);
  });

  it('NBD_CMD_CONNECT with an index, a timeout, client flags and a backend identifier, in the header order', () => {
    const request = nbdConnectRequest(NBD_FAMILY, { index: 3, sizeBytes: 8192, timeoutSeconds: 30, clientFlags: 1, sockets: [4], backend: 'img' });
    expect(request.subarray(16).toString('hex')).toBe(
      '01010000'
      + '0800' + '0100' + '03000000' // NBD_ATTR_INDEX u32 3
      + '0c00' + '0200' + '0020000000000000' // NBD_ATTR_SIZE_BYTES
      + '0c00' + '0400' + '1e00000000000000' // NBD_ATTR_TIMEOUT
      + '0c00' + '0600' + '0100000000000000' // NBD_ATTR_CLIENT_FLAGS
      + '1000' + '0780' + '0c00' + '0180' + '0800' + '0100' + '04000000' // NBD_ATTR_SOCKETS
      + '0800' + '0a00' + '696d6700', // NBD_ATTR_BACKEND_IDENTIFIER "img\0"
    );
  });

  it('NBD_CMD_RECONFIGURE, NBD_CMD_DISCONNECT and NBD_CMD_STATUS', () => {
    expect(nbdReconfigureRequest(NBD_FAMILY, { index: 2, sockets: [11] }, 4).toString('hex')).toBe(
      '2c000000' + '1a00' + '0500' + '04000000' + '00000000' + '03010000'
      + '0800' + '0100' + '02000000'
      + '1000' + '0780' + '0c00' + '0180' + '0800' + '0100' + '0b000000',
    );
    expect(nbdDisconnectRequest(NBD_FAMILY, 2).toString('hex')).toBe('1c000000' + '1a00' + '0500' + '01000000' + '00000000' + '02010000' + '0800010002000000');
    expect(nbdStatusRequest(NBD_FAMILY).toString('hex')).toBe('14000000' + '1a00' + '0500' + '01000000' + '00000000' + '05010000');
    expect(nbdStatusRequest(NBD_FAMILY, 0).subarray(20).toString('hex')).toBe('0800010000000000');
  });

  it('refuses what the kernel could not take: no sockets, a bad descriptor, numbers out of range, a NUL in a string', () => {
    expect(() => nbdConnectRequest(NBD_FAMILY, { sizeBytes: 4096, sockets: [] })).toThrow(/at least one socket/);
    expect(() => nbdConnectRequest(NBD_FAMILY, { sizeBytes: 4096, sockets: [-1] })).toThrow(/not a descriptor/);
    expect(() => nbdConnectRequest(NBD_FAMILY, { sizeBytes: 4096, sockets: [1.5] })).toThrow(/not a descriptor/);
    expect(() => nbdConnectRequest(NBD_FAMILY, { sizeBytes: -1, sockets: [3] })).toThrow(RangeError);
    expect(() => nbdDisconnectRequest(NBD_FAMILY, 2 ** 32)).toThrow(RangeError);
    expect(() => nbdDisconnectRequest(0x10000, 0)).toThrow(RangeError);
    expect(() => nlaString(10, 'a\0b')).toThrow(/NUL/);
    expect(() => nla(1, Buffer.alloc(0xfffc))).toThrow(/16-bit length/);
  });
});

describe('reply decoding', () => {
  it('a captured CTRL_CMD_NEWFAMILY reply: CTRL_ATTR_FAMILY_ID, name and version', () => {
    const replies = decodeReplies('GETFAMILY', capturedNlctrlReply, 1);
    expect(replies).toHaveLength(1);
    expect(parseFamilyReply(replies)).toEqual({ id: 0x10, name: 'nlctrl', version: 2 });
  });

  it('the family reply of the nbd driver', () => {
    const reply = message(0x10, 0, 1, genl(1, 2, nlaString(2, 'nbd'), nla(1, Buffer.of(NBD_FAMILY, 0)), nlaU32(3, 1)));
    expect(parseFamilyReply(decodeReplies('GETFAMILY', Buffer.concat([reply, ack(1)]), 1))).toEqual({ id: NBD_FAMILY, name: 'nbd', version: 1 });
  });

  it('a captured NLMSG_ERROR becomes a NetlinkError named by its errno', () => {
    const err = (() => {
      try {
        decodeReplies('CTRL_CMD_GETFAMILY nbd', capturedNbdMissing, 1);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(NetlinkError);
    expect(err).toMatchObject({ code: 'ENOENT', errno: 2, message: 'CTRL_CMD_GETFAMILY nbd: ENOENT' });
  });

  it("an error's extended ack gives the kernel's reason, after a capped or a whole echoed request", () => {
    const reason = nlaString(1, 'must specify a size in bytes');
    expect(() => decodeReplies('NBD_CMD_CONNECT', ack(1, 22, reason, 0x300), 1)).toThrow('NBD_CMD_CONNECT: EINVAL (must specify a size in bytes)');
    // not capped: the whole 28-byte request comes back before the attributes
    const uncapped = ack(1, 1, Buffer.concat([Buffer.alloc(12), reason]), 0x200);
    expect(() => decodeReplies('NBD_CMD_CONNECT', uncapped, 1)).toThrow('NBD_CMD_CONNECT: EPERM (must specify a size in bytes)');
  });

  it("NBD_CMD_CONNECT's reply: the device index", () => {
    const reply = message(NBD_FAMILY, 0, 1, genl(1, 1, nlaU32(1, 12)));
    expect(parseConnectReply(NBD_FAMILY, decodeReplies('CONNECT', Buffer.concat([reply, ack(1)]), 1))).toBe(12);
  });

  it("NBD_CMD_STATUS's reply: nested device items (the kernel nests without NLA_F_NESTED)", () => {
    const item = (index: number, connected: number): Buffer => nla(1, Buffer.concat([nlaU32(1, index), nla(2, Buffer.of(connected))]));
    const reply = message(NBD_FAMILY, 0, 1, genl(5, 1, nla(9, Buffer.concat([item(0, 1), item(1, 0)]))));
    expect(parseStatusReply(NBD_FAMILY, decodeReplies('STATUS', Buffer.concat([reply, ack(1)]), 1))).toEqual([
      { index: 0, connected: true },
      { index: 1, connected: false },
    ]);
    const empty = message(NBD_FAMILY, 0, 1, genl(5, 1, nlaNested(9, [])));
    expect(parseStatusReply(NBD_FAMILY, decodeReplies('STATUS', Buffer.concat([empty, ack(1)]), 1))).toEqual([]);
  });

  it('a repeated attribute keeps its last value, as nla_parse does; NLA_F_NESTED is not part of the type', () => {
    expect(parseAttributes(Buffer.concat([nlaU32(1, 1), nlaU32(1, 2), nlaNested(7, [])]))).toEqual([
      { type: 1, nested: false, value: hex('01000000') },
      { type: 1, nested: false, value: hex('02000000') },
      { type: 7, nested: true, value: Buffer.alloc(0) },
    ]);
    const reply = message(NBD_FAMILY, 0, 1, genl(1, 1, nlaU32(1, 1), nlaU32(1, 2)));
    expect(parseConnectReply(NBD_FAMILY, parseMessages(reply))).toBe(2);
  });
});

describe('truncated and hostile replies', () => {
  const familyReply = Buffer.concat([message(0x10, 0, 1, genl(1, 2, nla(1, Buffer.of(0x1a, 0)), nlaU32(3, 1))), ack(1)]);

  it('a message shorter than its header, or longer than the bytes left', () => {
    expect(() => parseMessages(familyReply.subarray(0, 10))).toThrow(NetlinkProtocolError);
    expect(() => parseMessages(familyReply.subarray(0, familyReply.length - 4))).toThrow(/has length 36, 32 bytes left/);
    const short = Buffer.from(familyReply);
    short.writeUInt32LE(8, 0); // nlmsg_len below the header's own size
    expect(() => parseMessages(short)).toThrow(/has length 8/);
    const huge = Buffer.from(familyReply);
    huge.writeUInt32LE(0xffffffff, 0);
    expect(() => parseMessages(huge)).toThrow(NetlinkProtocolError);
  });

  it('an attribute whose length runs past the end of its message', () => {
    const bad = Buffer.from(familyReply);
    bad.writeUInt16LE(0x40, 20); // CTRL_ATTR_FAMILY_ID claims 64 bytes
    expect(() => parseFamilyReply(decodeReplies('GETFAMILY', bad, 1))).toThrow(/attribute 1 at 0 has length 64/);
    const tiny = Buffer.from(familyReply);
    tiny.writeUInt16LE(2, 20); // shorter than an attribute header
    expect(() => parseFamilyReply(decodeReplies('GETFAMILY', tiny, 1))).toThrow(NetlinkProtocolError);
  });

  it('a nested attribute whose child overflows it', () => {
    // NBD_DEVICE_ITEM of 12 bytes whose NBD_DEVICE_INDEX claims 16: inside the message, outside the item
    const item = hex('0c000100' + '10000100' + '00000000' + '05000200' + '01000000');
    const reply = message(NBD_FAMILY, 0, 1, genl(5, 1, nla(9, item)));
    expect(() => parseStatusReply(NBD_FAMILY, parseMessages(reply))).toThrow(/attribute 1 at 0 has length 16, 8 bytes left/);
  });

  it('stray bytes after the last attribute, and values of the wrong size', () => {
    expect(() => parseAttributes(Buffer.concat([nlaU32(1, 1), Buffer.of(1, 2)]))).toThrow(/2 stray bytes/);
    const wide = message(NBD_FAMILY, 0, 1, genl(1, 1, nlaU64(1, 3)));
    expect(() => parseConnectReply(NBD_FAMILY, parseMessages(wide))).toThrow(/NBD_ATTR_INDEX: 8 bytes, expected 4/);
    const none = message(NBD_FAMILY, 0, 1, genl(1, 1));
    expect(() => parseConnectReply(NBD_FAMILY, parseMessages(none))).toThrow(/NBD_ATTR_INDEX: missing/);
  });

  it('an exchange with no acknowledgement, another request\'s reply, a short error, an echo past the end', () => {
    expect(() => decodeReplies('GETFAMILY', familyReply.subarray(0, 36), 1)).toThrow(/ended without an acknowledgement/);
    expect(() => decodeReplies('GETFAMILY', familyReply, 2)).toThrow(/reply to request 1, expected 2/);
    expect(() => decodeReplies('X', message(2, 0, 1, Buffer.alloc(8)), 1)).toThrow(/error message of 8 bytes/);
    const echo = ack(1, 22, Buffer.alloc(0), 0x200); // not capped: claims a 28-byte echo, has 16
    expect(() => decodeReplies('X', echo, 1)).toThrow(/echoed request of 28 bytes/);
  });

  it('a reply of the wrong family or command, or with more than one message', () => {
    const reply = message(0x1b, 0, 1, genl(1, 1, nlaU32(1, 1)));
    expect(() => parseConnectReply(NBD_FAMILY, parseMessages(reply))).toThrow(/family 27, expected 26/);
    expect(() => parseFamilyReply(parseMessages(message(0x10, 0, 1, genl(3, 2))))).toThrow(/reply command 3/);
    expect(() => parseConnectReply(NBD_FAMILY, parseMessages(Buffer.concat([reply, reply])))).toThrow(/2 reply messages/);
  });

  it('any bytes at all: a result or a netlink error, never an exception of another kind', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, framed) => {
      const buf = framed ? Buffer.concat([message(NBD_FAMILY, 0, 1, Buffer.from(bytes)), ack(1)]) : Buffer.from(bytes);
      for (const decode of [
        () => parseFamilyReply(decodeReplies('X', buf, 1)),
        () => parseStatusReply(NBD_FAMILY, decodeReplies('X', buf, 1)),
        () => parseConnectReply(NBD_FAMILY, decodeReplies('X', buf, 1)),
      ]) {
        try {
          decode();
        } catch (err) {
          if (!(err instanceof NetlinkProtocolError || err instanceof NetlinkError)) throw err;
        }
      }
    }), { numRuns: 2000 });
  });
});
