// Fuzzing every FUSE operation over a (mutated) bootstrap (src/daemon/fs.ts through the router):
// real bootstraps with their blob in a directory served by the local chunk source, mutated, then
// sequences of LOOKUP/GETATTR/READLINK/READ/READDIR(PLUS)/GETXATTR/LISTXATTR/STATFS/ACCESS/… on
// known and arbitrary node ids, dedicated and shared. Every request gets a well-formed reply, the
// only errors behind an EIO are RafsFormatError, an unmutated image serves exactly its files'
// bytes, and no case takes a second.
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RafsFuseFs } from '../../src/daemon/fs.js';
import { encodeRequest, FUSE_ROOT_ID, MAX_WRITE, Opcode } from '../../src/daemon/fuse/protocol.js';
import { SyncBlobDirSource } from '../../src/blobcache/sync-blob-dir-source.js';
import { FuseRouter, slotBase } from '../../src/daemon/router.js';
import { RafsFormatError } from '../../src/rafs/errors.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { checkReply } from './fuse-replies.js';
import { applyMutations, caseCount, describeEdits, expectTyped, fuzz, mutationsArb, timeoutFor } from './harness.js';
import { itFixtures } from '../helpers/fixtures.js';
import { bootstrapSamples, UPSTREAM_SAMPLE } from './samples.js';

const samples = bootstrapSamples(60);
const RUNS = caseCount(1500);
const blobDir = mkdtempSync(join(tmpdir(), 'fuzz-fuse-ops-'));
for (const s of samples) if (s.blob) writeFileSync(join(blobDir, s.blob.id), s.blob.data);
afterAll(() => rmSync(blobDir, { recursive: true, force: true }));

const SLOT = 3;
const XATTR_NAMES = ['user.note', 'security.capability', 'trusted.overlay.opaque', 'system.posix_acl_access', 'user.big', 'user.', ''];
const OPCODES = [
  Opcode.LOOKUP, Opcode.GETATTR, Opcode.READLINK, Opcode.OPEN, Opcode.READ, Opcode.STATFS, Opcode.RELEASE, Opcode.GETXATTR, Opcode.LISTXATTR,
  Opcode.FLUSH, Opcode.OPENDIR, Opcode.READDIR, Opcode.RELEASEDIR, Opcode.ACCESS, Opcode.READDIRPLUS, Opcode.FORGET, Opcode.BATCH_FORGET,
  Opcode.INTERRUPT, Opcode.INIT, Opcode.DESTROY, 99,
];
const sizeArb = fc.oneof(fc.constantFrom(0, 1, 8, 24, 127, 128, 152, 4095, 4096, 65536, MAX_WRITE, MAX_WRITE + 1, 0x7fffffff, 0xffffffff), fc.nat(0xffffffff));
const offsetArb = fc.oneof(fc.constantFrom(0, 1, 2, 12, 24, 4095, 4096, 65535, 65536, 2 ** 32, 2 ** 53 - 1), fc.nat());

type NodeRef = { nid: number } | { raw: number };
interface Call {
  opcode: number;
  node: NodeRef;
  name: Uint8Array | number;
  offset: number;
  size: number;
  mask: number;
}

const callArb = (nodes: number): fc.Arbitrary<Call> => fc.record({
  opcode: fc.constantFrom(...OPCODES),
  node: fc.oneof(
    fc.record({ nid: fc.nat(nodes - 1) }),
    fc.record({ raw: fc.oneof(fc.constantFrom(0, 1, 2, 3, slotBase(SLOT) - 1, slotBase(SLOT), slotBase(SLOT) + 1, slotBase(SLOT + 1) + 2, 2 ** 53 - 1), fc.nat()) }),
  ),
  // a name of the image (index), an xattr name, or arbitrary bytes
  name: fc.oneof(fc.nat(nodes + XATTR_NAMES.length - 1), fc.uint8Array({ maxLength: 300 })),
  offset: offsetArb,
  size: sizeArb,
  mask: fc.constantFrom(0, 1, 2, 4, 7),
});

function u32s(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32LE(v >>> 0, i * 4));
  return b;
}

/** The request bytes as the kernel would send them. */
function encodeCall(c: Call, nodeid: number, name: Buffer, unique: bigint): Buffer {
  const cName = Buffer.concat([name, Buffer.alloc(1)]);
  const io = Buffer.alloc(40);
  io.writeBigUInt64LE(BigInt(c.offset), 8);
  io.writeUInt32LE(c.size, 16);
  const bodies: Record<number, Buffer> = {
    [Opcode.LOOKUP]: cName,
    [Opcode.GETATTR]: Buffer.alloc(16),
    [Opcode.OPEN]: u32s(0, 0),
    [Opcode.OPENDIR]: u32s(0, 0),
    [Opcode.READ]: io,
    [Opcode.READDIR]: io,
    [Opcode.READDIRPLUS]: io,
    [Opcode.RELEASE]: Buffer.alloc(24),
    [Opcode.RELEASEDIR]: Buffer.alloc(24),
    [Opcode.FLUSH]: Buffer.alloc(24),
    [Opcode.GETXATTR]: Buffer.concat([u32s(c.size, 0), cName]),
    [Opcode.LISTXATTR]: u32s(c.size, 0),
    [Opcode.ACCESS]: u32s(c.mask, 0),
    [Opcode.FORGET]: Buffer.alloc(8, 1),
    [Opcode.BATCH_FORGET]: Buffer.concat([u32s(1, 0), Buffer.alloc(16, 1)]),
    [Opcode.INTERRUPT]: Buffer.alloc(8),
    [Opcode.INIT]: u32s(7, 31 + c.mask, c.size, c.offset),
  };
  return encodeRequest(c.opcode, unique, nodeid, bodies[c.opcode]);
}

const caseArb = fc.integer({ min: 0, max: samples.length - 1 }).chain((i) => fc.record({
  sample: fc.constant(i),
  // a quarter of the cases serve the image as it is (and must serve its bytes exactly)
  edits: fc.oneof({ weight: 1, arbitrary: fc.constant([]) }, { weight: 3, arbitrary: mutationsArb(samples[i]!.hot) }),
  shared: fc.boolean(),
  calls: fc.array(callArb(samples[i]!.nodes.length), { minLength: 1, maxLength: 12 }),
}));

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;
const describeCase = (c: Case): string => `${describeEdits(samples[c.sample]!.name, c.edits)} ${c.shared ? 'shared' : 'dedicated'} calls ${JSON.stringify(c.calls, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))}`;

function runCase(c: Case): void {
  const sample = samples[c.sample]!;
  let image: RafsImage;
  try {
    image = RafsImage.open(applyMutations(sample.boot, c.edits));
  } catch (err) {
    expectTyped(err, [RafsFormatError], describeCase(c));
    return;
  }
  const errors: Error[] = [];
  const router = new FuseRouter(c.shared ? 'shared' : 'dedicated', { onError: (_op, err) => errors.push(err) });
  const chunks = new SyncBlobDirSource(blobDir, image.blobs);
  const fs = new RafsFuseFs(image, chunks, {}, c.shared ? { base: slotBase(SLOT), ownsRoot: false } : {});
  router.add(c.shared ? SLOT : 0, 'img', fs);
  try {
    let unique = 1n;
    for (const call of c.calls) {
      const nodeid = 'nid' in call.node ? fs.nodeidOf(sample.nodes[call.node.nid]!.nid) : call.node.raw;
      const name = typeof call.name !== 'number' ? Buffer.from(call.name)
        : Buffer.from(sample.nodes[call.name]?.name ?? XATTR_NAMES[call.name - sample.nodes.length]!, 'latin1');
      const request = encodeCall(call, nodeid, name, unique++);
      const reply = router.handle(request);
      for (const err of errors.splice(0)) expectTyped(err, [RafsFormatError], describeCase(c));
      checkReply(request, reply);
      if (c.edits.length === 0 && call.opcode === Opcode.READ && 'nid' in call.node) checkData(sample.nodes[call.node.nid]!.data, call, Buffer.concat(reply!));
      chunks.recycle();
    }
  } finally {
    chunks.close();
  }
}

/** An unmutated image's READ answers exactly the file's bytes at that offset. */
function checkData(data: Buffer | undefined, call: Call, reply: Buffer): void {
  if (data === undefined || reply.readInt32LE(4) !== 0) return;
  const want = data.subarray(Math.min(call.offset, data.length), Math.min(call.offset + Math.min(call.size, MAX_WRITE), data.length));
  if (!reply.subarray(16).equals(want)) throw new Error(`READ of ${call.size} at ${call.offset} served wrong bytes`);
}

describe('fuzz: FUSE operations over a bootstrap', () => {
  itFixtures('mutates upstream\'s bootstrap too', () => {
    expect(samples.map((s) => s.name)).toContain(UPSTREAM_SAMPLE);
  });

  it('serves the unmutated sample (the oracle the fuzzer relies on)', () => {
    const sample = samples[0]!;
    const file = sample.nodes.find((n) => n.path === '/contiguous')!;
    runCase({ sample: 0, edits: [], shared: false, calls: [{ opcode: Opcode.READ, node: { nid: sample.nodes.indexOf(file) }, name: 0, offset: 70_000, size: 200_000, mask: 0 }] });
    expect(new RafsFuseFs(RafsImage.open(sample.boot), undefined).nodeidOf(RafsImage.open(sample.boot).root)).toBe(FUSE_ROOT_ID);
  });

  it(`answers every request well-formed over mutated bootstraps (${RUNS} cases)`, async () => {
    const stats = await fuzz('FUSE ops over a bootstrap', caseArb, runCase, { runs: RUNS, seed: 0xf5e, describe: describeCase });
    expect(stats.cases).toBe(RUNS);
  }, timeoutFor(RUNS, 5));
});
