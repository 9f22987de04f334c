// The router without a kernel: a shared mount's root lists its images, each image answers in its
// own node-id span, an unmounted image's node ids are ESTALE (never another image's inodes), and a
// dedicated mount serves one image at the root.
import { expect, it } from 'vitest';
import { RafsFuseFs } from '../../src/daemon/fs.js';
import { decodeOutHeader, encodeRequest, Errno, FUSE_ROOT_ID, Opcode, parseDirents, readAttr, readEntry } from '../../src/daemon/fuse/protocol.js';
import { FuseRouter, slotBase } from '../../src/daemon/router.js';
import { RafsImage } from '../../src/rafs/reader.js';
import { describeFixtures, lazyFixture } from '../helpers/fixtures.js';

const boot = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');
let unique = 1n;

function call(r: FuseRouter, opcode: number, nodeid: number, body?: Buffer): { errno: number; data: Buffer } {
  const all = Buffer.concat(r.handle(encodeRequest(opcode, ++unique, nodeid, body))!);
  const h = decodeOutHeader(all);
  return { errno: h.error === 0 ? 0 : -h.error, data: all.subarray(16) };
}

const name = (s: string) => Buffer.from(`${s}\0`);
const readdirIn = () => {
  const b = Buffer.alloc(40);
  b.writeUInt32LE(4096, 16);
  return b;
};
const shared = (slot: number) => new RafsFuseFs(RafsImage.open(boot()), undefined, {}, { base: slotBase(slot), ownsRoot: false });

describeFixtures('FuseRouter', () => {
  it('serves images under a shared root, each in its own node-id span', () => {
    const r = new FuseRouter('shared');
    r.add(1, 'a', shared(1));
    r.add(2, 'b', shared(2));
    const names = parseDirents(call(r, Opcode.READDIR, FUSE_ROOT_ID, readdirIn()).data).map((d) => d.name.toString());
    expect(names).toEqual(['.', '..', 'a', 'b']);
    const a = readEntry(call(r, Opcode.LOOKUP, FUSE_ROOT_ID, name('a')).data, 0);
    const b = readEntry(call(r, Opcode.LOOKUP, FUSE_ROOT_ID, name('b')).data, 0);
    // never cached: names under the root come and go
    expect(a.entryValid).toBe(0);
    expect(Math.floor(a.nodeid / slotBase(1))).toBe(1);
    expect(Math.floor(b.nodeid / slotBase(1))).toBe(2);
    expect(a.attr.ino).not.toBe(b.attr.ino);
    const inA = readEntry(call(r, Opcode.LOOKUP, a.nodeid, name('lib.rs')).data, 0);
    const inB = readEntry(call(r, Opcode.LOOKUP, b.nodeid, name('lib.rs')).data, 0);
    expect(inA.nodeid - slotBase(1)).toBe(inB.nodeid - slotBase(2));
    expect(call(r, Opcode.LOOKUP, FUSE_ROOT_ID, name('c')).data.readBigUInt64LE(0)).toBe(0n);
    expect(readAttr(call(r, Opcode.GETATTR, FUSE_ROOT_ID, Buffer.alloc(16)).data, 16).nlink).toBe(4);
    // unmounted: its node ids are stale, the other image is untouched
    r.remove(1);
    expect(call(r, Opcode.GETATTR, inA.nodeid, Buffer.alloc(16)).errno).toBe(Errno.ESTALE);
    expect(call(r, Opcode.GETATTR, inB.nodeid, Buffer.alloc(16)).errno).toBe(0);
    expect(call(r, Opcode.LOOKUP, FUSE_ROOT_ID, name('a')).data.readBigUInt64LE(0)).toBe(0n);
    // a node id in a span nobody ever had
    expect(call(r, Opcode.GETATTR, slotBase(77) + 5, Buffer.alloc(16)).errno).toBe(Errno.ESTALE);
  });

  it('serves one image at the root of a dedicated mount', () => {
    const r = new FuseRouter('dedicated');
    r.add(0, '/', new RafsFuseFs(RafsImage.open(boot()), undefined));
    expect(() => r.add(1, 'x', shared(1))).toThrow(/one image/);
    const names = parseDirents(call(r, Opcode.READDIR, FUSE_ROOT_ID, readdirIn()).data).map((d) => d.name.toString());
    expect(names).toEqual(['.', '..', 'lib.rs', 'sync_io.rs']);
    // OPEN and OPENDIR are not needed: ENOSYS tells the kernel to stop sending them
    expect(call(r, Opcode.OPENDIR, FUSE_ROOT_ID, Buffer.alloc(8)).errno).toBe(Errno.ENOSYS);
    const lib = readEntry(call(r, Opcode.LOOKUP, FUSE_ROOT_ID, name('lib.rs')).data, 0);
    expect(call(r, Opcode.OPEN, lib.nodeid, Buffer.alloc(8)).errno).toBe(Errno.ENOSYS);
  });

  it('never throws on malformed or mutated requests, and answers every one that expects a reply', () => {
    const r = new FuseRouter('shared');
    r.add(1, 'a', shared(1));
    const lib = readEntry(call(r, Opcode.LOOKUP, FUSE_ROOT_ID, name('a')).data, 0);
    const valid = [
      encodeRequest(Opcode.LOOKUP, 7n, lib.nodeid, name('lib.rs')),
      encodeRequest(Opcode.READDIRPLUS, 7n, lib.nodeid, readdirIn()),
      encodeRequest(Opcode.GETXATTR, 7n, lib.nodeid, Buffer.concat([Buffer.alloc(8), name('user.x')])),
      encodeRequest(Opcode.READ, 7n, lib.nodeid + 3, readdirIn()),
    ];
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    for (let i = 0; i < 5000; i++) {
      const buf = Buffer.from(valid[i % valid.length]!);
      for (let k = 0, flips = 1 + rand(4); k < flips; k++) buf[rand(buf.length)] = rand(256);
      const cut = rand(3) === 0 ? buf.subarray(0, rand(buf.length + 1)) : buf;
      const reply = r.handle(cut);
      if (reply) expect(decodeOutHeader(Buffer.concat(reply)).len).toBe(Buffer.concat(reply).length);
    }
    // and the router still serves
    expect(call(r, Opcode.LOOKUP, lib.nodeid, name('lib.rs')).errno).toBe(0);
  });
});
