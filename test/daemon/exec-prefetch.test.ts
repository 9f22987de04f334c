import { describe, expect, it } from 'vitest';
import { defaultLibraryDirs, elfDynamic, elfInterpreter, elfStartRanges } from '../../src/daemon/exec-prefetch.js';
import { DYNAMIC, elf64, LOAD, linkedProgram, type Phdr, R, W, X } from '../helpers/elf.js';

function elf32be(phdrs: Phdr[]): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 1;
  b[5] = 2;
  b.writeUInt16BE(3, 16);
  b.writeUInt32BE(52, 28);
  b.writeUInt16BE(32, 42);
  b.writeUInt16BE(phdrs.length, 44);
  phdrs.forEach((p, i) => {
    const at = 52 + i * 32;
    b.writeUInt32BE(p.type, at);
    b.writeUInt32BE(p.offset, at + 4);
    b.writeUInt32BE(p.fileSize, at + 16);
    b.writeUInt32BE(p.flags, at + 24);
  });
  return b;
}

// the shape of a large C++ program: linking data at 0, code, a big read-only data segment, then the
// writable segment holding the dynamic section
const program: Phdr[] = [
  { type: 6, flags: R, offset: 64, fileSize: 0x310 },
  { type: LOAD, flags: R, offset: 0, fileSize: 0x76e5d8 },
  { type: LOAD, flags: R | X, offset: 0x772000, fileSize: 0x1a8bca0 },
  { type: LOAD, flags: R, offset: 0x2201000, fileSize: 0x3038cae },
  { type: LOAD, flags: R | W, offset: 0x5239ec8, fileSize: 0x215f8 },
  { type: DYNAMIC, flags: R | W, offset: 0x523bd80, fileSize: 0x250 },
];

describe('elfStartRanges', () => {
  it('takes the linking data, the code and the dynamic section\'s segment, not the read-only data', () => {
    expect(elfStartRanges(elf64(program), 98_932_688)).toEqual([
      [0, 0x76e5d8],
      [0x772000, 0x772000 + 0x1a8bca0],
      [0x5239ec8, 0x5239ec8 + 0x215f8],
    ]);
  });

  it('reads big-endian and 32-bit headers', () => {
    expect(elfStartRanges(elf64(program, { little: false }), 98_932_688)).toEqual(elfStartRanges(elf64(program), 98_932_688));
    expect(elfStartRanges(elf32be([{ type: LOAD, flags: R | X, offset: 0, fileSize: 5000 }, { type: LOAD, flags: R, offset: 8192, fileSize: 100 }]), 9000)).toEqual([[0, 5000]]);
  });

  it('merges overlapping segments and clips them to the file', () => {
    const phdrs = [
      { type: LOAD, flags: R | X, offset: 0, fileSize: 6000 },
      { type: LOAD, flags: R | X, offset: 4096, fileSize: 10_000 },
      { type: LOAD, flags: R | X, offset: 1 << 30, fileSize: 4096 },
    ];
    expect(elfStartRanges(elf64(phdrs), 12_000)).toEqual([[0, 12_000]]);
  });

  it('is nothing for files that are not programs', () => {
    expect(elfStartRanges(Buffer.from('#!/bin/sh\necho hi\n'), 100)).toBeUndefined();
    expect(elfStartRanges(elf64(program, { type: 1 }), 1 << 30)).toBeUndefined(); // a relocatable object
    expect(elfStartRanges(Buffer.alloc(4096), 4096)).toBeUndefined();
  });

  it('refuses program headers that lie past the bytes given or are too many', () => {
    expect(elfStartRanges(elf64(program, { phoff: 4000 }), 1 << 30)).toBeUndefined();
    expect(elfStartRanges(elf64(program, { length: 200 }), 1 << 30)).toBeUndefined();
    const many = Array.from({ length: 300 }, () => ({ type: LOAD, flags: X, offset: 0, fileSize: 1 }));
    expect(elfStartRanges(elf64(many, { length: 64 + 300 * 56 }), 1 << 30)).toBeUndefined();
    const huge = elf64(program);
    huge.writeBigUInt64LE(2n ** 63n, 32); // phoff beyond any file
    expect(elfStartRanges(huge, 1 << 30)).toBeUndefined();
  });
});

const cString = (b: Buffer, at: number): string => b.toString('latin1', at, b.indexOf(0, at));

describe('elfInterpreter, elfDynamic', () => {
  const strings = '\0libfoo.so.1\0libbar.so\0/opt/lib:/usr/local/lib\0';
  const program = linkedProgram([[1, 1], [1, 13], [29, 23], [5, 0x401800], [10, strings.length], [1, 500], [0, 0], [1, 1]], strings);

  it('names the interpreter, the needed libraries and the run path, through the string table\'s load address', () => {
    expect(elfInterpreter(program)).toBe('/lib64/ld-linux-x86-64.so.2');
    const dynamic = elfDynamic(program)!;
    expect(dynamic.offset).toBe(0x1000);
    const found = dynamic.parse(program.subarray(dynamic.offset, dynamic.offset + dynamic.size));
    // the name past the table's size is dropped; nothing after DT_NULL counts
    expect(found.needed.map((at) => cString(program, at))).toEqual(['libfoo.so.1', 'libbar.so']);
    expect(found.runpaths.map((at) => cString(program, at))).toEqual(['/opt/lib:/usr/local/lib']);
    expect(defaultLibraryDirs(program)).toEqual(['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib']);
  });

  it('finds nothing when the string table is not mapped, or the program is static', () => {
    const unmapped = linkedProgram([[1, 1], [5, 0x900000], [10, 10], [0, 0]], '\0libfoo.so\0');
    const d = elfDynamic(unmapped)!;
    expect(d.parse(unmapped.subarray(d.offset, d.offset + d.size))).toEqual({ needed: [], runpaths: [] });
    expect(elfDynamic(elf64([{ type: LOAD, flags: R | X, offset: 0, fileSize: 100 }]))).toBeUndefined();
    expect(elfInterpreter(elf64([{ type: LOAD, flags: R | X, offset: 0, fileSize: 100 }]))).toBeUndefined();
  });

  it('refuses an interpreter path that lies past the bytes given or is not absolute', () => {
    const far = elf64([{ type: 3, flags: R, offset: 8000, fileSize: 28 }]);
    expect(elfInterpreter(far)).toBeUndefined();
    const relative = elf64([{ type: 3, flags: R, offset: 0x200, fileSize: 10 }]);
    relative.write('ld.so\0', 0x200, 'latin1');
    expect(elfInterpreter(relative)).toBeUndefined();
  });
});
