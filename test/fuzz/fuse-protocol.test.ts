// Fuzzing the FUSE request decoder (src/daemon/fuse/protocol.ts) and the router's answer to it:
// arbitrary and mutated requests of every opcode. Decoding yields a request consistent with its
// bytes or a FuseProtocolError; the router never throws and answers every request that expects
// an answer with a well-formed reply; no case takes a second.
import fc from 'fast-check';
import { beforeAll, expect, it } from 'vitest';
import { RafsFuseFs } from '../../src/daemon/fs.js';
import { decodeRequest, FuseProtocolError, IN_HEADER_SIZE, MAX_NAME_LENGTH, Opcode } from '../../src/daemon/fuse/protocol.js';
import { FuseRouter, slotBase } from '../../src/daemon/router.js';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { describeFixtures, lazyFixture } from '../helpers/fixtures.js';
import { checkReply } from './fuse-replies.js';
import { applyMutations, caseCount, describeEdits, expectTyped, fuzz, mutationsArb, timeoutFor } from './harness.js';

const RUNS = caseCount(3000);
const boot = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');
const OPCODES = Object.values(Opcode);

/** A request header claiming `len` bytes, then `body`. */
function request(opcode: number, unique: bigint, nodeid: bigint, body: Uint8Array, lenDelta: number): Buffer {
  const buf = Buffer.alloc(IN_HEADER_SIZE + body.length);
  buf.writeUInt32LE(Math.max(0, buf.length + lenDelta) >>> 0, 0);
  buf.writeUInt32LE(opcode >>> 0, 4);
  buf.writeBigUInt64LE(unique, 8);
  buf.writeBigUInt64LE(nodeid, 16);
  Buffer.from(body).copy(buf, IN_HEADER_SIZE);
  return buf;
}

const u64 = fc.oneof(fc.constantFrom(0n, 1n, 2n, BigInt(slotBase(1)), BigInt(slotBase(1) + 2), 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
const le = (n: number, v: number | bigint): Buffer => {
  const b = Buffer.alloc(n);
  if (n === 8) b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
  else b.writeUInt32LE(Number(v) >>> 0);
  return b;
};
/** Bodies shaped like each opcode's struct, with boundary values in their fields. */
const bodyArb = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.tuple(fc.uint8Array({ maxLength: 300 }), fc.boolean()).map(([name, nul]) => Buffer.concat([Buffer.from(name), nul ? Buffer.alloc(1) : Buffer.alloc(0)])),
  fc.tuple(u64, u64, fc.nat(0xffffffff)).map(([fh, offset, size]) => Buffer.concat([le(8, fh), le(8, offset), le(4, size), Buffer.alloc(20)])),
  fc.tuple(fc.nat(0xffffffff), fc.uint8Array({ maxLength: 300 })).map(([count, rest]) => Buffer.concat([le(4, count), Buffer.alloc(4), Buffer.from(rest)])),
  fc.tuple(fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(0xffffffff)).map((v) => Buffer.concat(v.map((x) => le(4, x)))),
);
const requestArb = fc.record({
  opcode: fc.oneof(fc.constantFrom(...OPCODES), fc.nat(100), fc.constant(0xffffffff)),
  unique: u64,
  nodeid: u64,
  body: bodyArb,
  lenDelta: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -64, max: 64 }) }),
});

/** Valid requests of every opcode the router serves, on the image's root and a file. */
function seeds(lib: number): Buffer[] {
  const io = Buffer.concat([Buffer.alloc(8), le(8, 0), le(4, 4096), Buffer.alloc(20)]);
  const name = (s: string) => Buffer.from(`${s}\0`);
  return [
    request(Opcode.INIT, 1n, 0n, Buffer.concat([le(4, 7), le(4, 31), le(4, 131072), le(4, 0x3fffffff)]), 0),
    request(Opcode.LOOKUP, 2n, BigInt(slotBase(1) + 2), name('lib.rs'), 0),
    request(Opcode.LOOKUP, 3n, 1n, name('a'), 0),
    request(Opcode.GETATTR, 4n, BigInt(lib), Buffer.alloc(16), 0),
    request(Opcode.READ, 5n, BigInt(lib), io, 0),
    request(Opcode.READDIRPLUS, 6n, 1n, io, 0),
    request(Opcode.READDIR, 7n, BigInt(slotBase(1)), io, 0),
    request(Opcode.GETXATTR, 8n, BigInt(lib), Buffer.concat([le(4, 100), Buffer.alloc(4), name('user.x')]), 0),
    request(Opcode.LISTXATTR, 9n, BigInt(lib), Buffer.concat([le(4, 0), Buffer.alloc(4)]), 0),
    request(Opcode.BATCH_FORGET, 10n, 0n, Buffer.concat([le(4, 2), Buffer.alloc(4), le(8, lib), le(8, 1), le(8, 1), le(8, 1)]), 0),
    request(Opcode.FORGET, 11n, BigInt(lib), le(8, 1), 0),
    request(Opcode.ACCESS, 12n, BigInt(lib), Buffer.concat([le(4, 2), Buffer.alloc(4)]), 0),
    request(Opcode.STATFS, 13n, 1n, Buffer.alloc(0), 0),
    request(Opcode.READLINK, 14n, BigInt(lib), Buffer.alloc(0), 0),
    request(Opcode.INTERRUPT, 15n, 0n, le(8, 5), 0),
  ];
}

/** A decoded request says what its bytes say. */
function checkDecoded(buf: Buffer): void {
  let req;
  try {
    req = decodeRequest(buf);
  } catch (err) {
    expectTyped(err, [FuseProtocolError], `decoding ${buf.toString('hex')}`);
    return;
  }
  if (req === undefined) {
    if (buf.length >= 16) throw new Error(`a ${buf.length}-byte request decoded to nothing`);
    return;
  }
  const { header, body } = req;
  const fail = (why: string): never => {
    throw new Error(`${why}: ${buf.toString('hex')}`);
  };
  if (header.len !== buf.length) fail('length accepted that is not the bytes read');
  if (header.opcode !== buf.readUInt32LE(4)) fail('opcode');
  if (body.op === 'LOOKUP' && (body.name.length > MAX_NAME_LENGTH || body.name.includes(0))) fail('a name too long or with a NUL');
  if (body.op === 'GETXATTR' && body.name.includes(0)) fail('an xattr name with a NUL');
  if ((body.op === 'READ' || body.op === 'READDIR' || body.op === 'READDIRPLUS') && (!Number.isSafeInteger(body.offset) || body.offset < 0)) fail('an offset past 2^53');
  if (!Number.isSafeInteger(header.nodeid) || header.nodeid < -1) fail('a node id');
}

describeFixtures('fuzz: FUSE request decoder', () => {
  const router = new FuseRouter('shared', { onError: (_op, err) => errors.push(err) });
  const errors: Error[] = [];
  let valid: Buffer[] = [];
  beforeAll(() => {
    const fs = new RafsFuseFs(RafsImage.open(boot()), undefined, {}, { base: slotBase(1), ownsRoot: false });
    router.add(1, 'a', fs);
    valid = seeds(fs.nodeidOf(fs.image.lookup(fs.image.root, 'lib.rs')!));
  });

  /** Decodes, routes and checks one request. */
  const serve = (buf: Buffer): void => {
    checkDecoded(buf);
    const reply = router.handle(buf);
    // a node id the image never handed out may point at no inode: that much is a RafsFormatError
    for (const err of errors.splice(0)) expectTyped(err, [RafsFormatError], `routing ${buf.toString('hex')}`);
    checkReply(buf, reply);
  };

  it('the seeds are valid requests the router answers', () => {
    for (const buf of valid) {
      expect(decodeRequest(buf)).toBeDefined();
      serve(buf);
    }
  });

  it(`decodes or refuses arbitrary requests, and answers each well-formed (${RUNS} cases)`, async () => {
    const stats = await fuzz('FUSE protocol: arbitrary requests', requestArb, ({ opcode, unique, nodeid, body, lenDelta }) => serve(request(opcode, unique, nodeid, body, lenDelta)), { runs: RUNS, seed: 0xf05e });
    expect(stats.cases).toBe(RUNS);
  }, timeoutFor(RUNS, 1));

  it(`decodes or refuses mutated valid requests, and answers each well-formed (${RUNS} cases)`, async () => {
    const arb = fc.record({ seed: fc.nat(valid.length - 1), edits: mutationsArb([0, 4, 8, 16, 40, 44, 48, 56], { shifts: true }) });
    const describe = ({ seed, edits }: { seed: number; edits: Parameters<typeof describeEdits>[1] }) => describeEdits(`request ${seed}`, edits);
    const stats = await fuzz('FUSE protocol: mutated requests', arb, ({ seed, edits }) => serve(applyMutations(valid[seed]!, edits)), { runs: RUNS, seed: 0xf05f, describe });
    expect(stats.cases).toBe(RUNS);
  }, timeoutFor(RUNS, 1));
});
