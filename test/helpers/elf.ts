// Hand-made ELF files: the headers and program headers a loader's first read sees, and a small
// dynamically linked program whole, for the exec prefetch's parsing and its use.

export interface Phdr {
  type: number;
  flags: number;
  offset: number;
  fileSize: number;
  vaddr?: number;
}

export const LOAD = 1;
export const DYNAMIC = 2;
export const R = 4;
export const W = 2;
export const X = 1;

/** An ELF header and its program headers, as a loader's first read of the file sees them. */
export function elf64(phdrs: Phdr[], opts: { type?: number; little?: boolean; phoff?: number; length?: number } = {}): Buffer {
  const little = opts.little ?? true;
  const phoff = opts.phoff ?? 64;
  const b = Buffer.alloc(opts.length ?? 4096);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2;
  b[5] = little ? 1 : 2;
  const u16 = (v: number, at: number): number => (little ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));
  const u32 = (v: number, at: number): number => (little ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at));
  const u64 = (v: number, at: number): number => (little ? b.writeBigUInt64LE(BigInt(v), at) : b.writeBigUInt64BE(BigInt(v), at));
  u16(opts.type ?? 2, 16);
  u64(phoff, 32);
  u16(56, 54);
  u16(phdrs.length, 56);
  phdrs.forEach((p, i) => {
    const at = phoff + i * 56;
    if (at + 56 > b.length) return;
    u32(p.type, at);
    u32(p.flags, at + 4);
    u64(p.offset, at + 8);
    u64(p.vaddr ?? 0, at + 16);
    u64(p.fileSize, at + 32);
  });
  return b;
}

/**
 * A small dynamically linked program, whole: one load segment mapping the file at 0x400000, its
 * interpreter path at 0x200, its dynamic section at 0x1000 and its string table at 0x1800, `size`
 * bytes in all.
 */
export function linkedProgram(dynamic: [number, number][], strings: string, size = 0x2000): Buffer {
  const b = elf64([
    { type: LOAD, flags: R | X, offset: 0, fileSize: size, vaddr: 0x400000 },
    { type: 3, flags: R, offset: 0x200, fileSize: 28 },
    { type: DYNAMIC, flags: R | W, offset: 0x1000, fileSize: dynamic.length * 16, vaddr: 0x401000 },
  ], { length: size });
  b.writeUInt16LE(62, 18); // x86-64
  b.write('/lib64/ld-linux-x86-64.so.2\0', 0x200, 'latin1');
  dynamic.forEach(([tag, value], i) => {
    b.writeBigUInt64LE(BigInt(tag), 0x1000 + i * 16);
    b.writeBigUInt64LE(BigInt(value), 0x1008 + i * 16);
  });
  b.write(strings, 0x1800, 'latin1');
  return b;
}

