// What an executable's start will read, from its ELF program headers. When a lazily served file turns
// out to be an ELF executable or shared object (its first chunk, fetched because something read it,
// starts with the ELF magic), the loader is about to map it and walk it: the segment at offset 0
// (headers, dynamic symbols, hash tables, relocations: walked whole while linking), the code
// segments, and the writable segment holding the dynamic section (relocated, then read at start).
// Those are fetched in the background at once, instead of one fault's chunk after another, each
// waiting a round trip while the link idles. The large read-only data segment (rodata, unwind
// tables) is left to the faults: a start touches little of it. The loader then opens the program's
// interpreter and its libraries (DT_NEEDED) one after another, each first read a miss: their names
// come from the interpreter path and the dynamic section, so they can be asked for at once too.
// Parsing is bounded by the bytes given: headers are untrusted like any file content.

/** Loaders stop at far fewer; more is not a program the kernel would run. */
const MAX_PROGRAM_HEADERS = 256;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
/** A library list longer than this is not one a loader would walk either. */
const MAX_NEEDED = 256;
const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const EM_386 = 3;
const EM_ARM = 40;
const PF_X = 1;
const ET_EXEC = 2;
const ET_DYN = 3;

interface Segment {
  type: number;
  flags: number;
  offset: number;
  fileSize: number;
  vaddr: number;
}

interface ElfHeader {
  is64: boolean;
  little: boolean;
  machine: number;
  segments: Segment[];
}

/**
 * The file ranges ([start, end), clipped to `fileSize`, in file order, merged) the start of the ELF
 * program whose first bytes are `head` will read; undefined when `head` is not an ELF executable
 * or shared object whose program headers lie within it.
 */
export function elfStartRanges(head: Buffer, fileSize: number): [number, number][] | undefined {
  const segments = elfHeader(head)?.segments;
  if (!segments) return undefined;
  const dynamic = segments.find((s) => s.type === PT_DYNAMIC);
  const wanted = segments.filter((s) => s.type === PT_LOAD && s.fileSize > 0 && (
    s.offset === 0 || (s.flags & PF_X) !== 0 || (dynamic !== undefined && dynamic.offset >= s.offset && dynamic.offset < s.offset + s.fileSize)
  ));
  const ranges = wanted
    .map((s): [number, number] => [Math.min(s.offset, fileSize), Math.min(s.offset + s.fileSize, fileSize)])
    .filter(([start, end]) => end > start)
    .sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push(r);
  }
  return merged;
}

/** The interpreter (PT_INTERP) the program names, when its path lies within `head`. */
export function elfInterpreter(head: Buffer): string | undefined {
  const interp = elfHeader(head)?.segments.find((s) => s.type === PT_INTERP);
  if (!interp || interp.fileSize < 2 || interp.fileSize > 4096 || interp.offset + interp.fileSize > head.length) return undefined;
  const path = head.toString('latin1', interp.offset, interp.offset + interp.fileSize).replace(/\0.*$/s, '');
  return path.startsWith('/') ? path : undefined;
}

/** Where the program's dynamic section lies in the file, and how to read it. */
export interface ElfDynamic {
  offset: number;
  size: number;
  /** Parses the section's bytes: the file offsets of the strings it names (libraries, run paths). */
  parse(bytes: Buffer): DynamicStrings;
}

export interface DynamicStrings {
  /** File offsets of the DT_NEEDED names, in order. */
  needed: number[];
  /** File offsets of DT_RUNPATH / DT_RPATH lists. */
  runpaths: number[];
}

/** The program's dynamic section (undefined for a static program, or one whose headers lie past `head`). */
export function elfDynamic(head: Buffer): ElfDynamic | undefined {
  const elf = elfHeader(head);
  const dynamic = elf?.segments.find((s) => s.type === PT_DYNAMIC);
  if (!elf || !dynamic || dynamic.fileSize === 0) return undefined;
  const entrySize = elf.is64 ? 16 : 8;
  return {
    offset: dynamic.offset,
    size: Math.min(dynamic.fileSize, MAX_NEEDED * 4 * entrySize),
    parse: (bytes) => parseDynamic(elf, bytes),
  };
}

function parseDynamic(elf: ElfHeader, bytes: Buffer): DynamicStrings {
  const entrySize = elf.is64 ? 16 : 8;
  const word = (at: number): number => (elf.is64
    ? Number(elf.little ? bytes.readBigUInt64LE(at) : bytes.readBigUInt64BE(at))
    : (elf.little ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at)));
  const needed: number[] = [];
  const runpaths: number[] = [];
  let strtab: number | undefined;
  let strsz = 0;
  for (let at = 0; at + entrySize <= bytes.length; at += entrySize) {
    const tag = word(at);
    const value = word(at + entrySize / 2);
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED && needed.length < MAX_NEEDED) needed.push(value);
    else if (tag === DT_RUNPATH || tag === DT_RPATH) runpaths.push(value);
    else if (tag === DT_STRTAB) strtab = value;
    else if (tag === DT_STRSZ) strsz = value;
  }
  // DT_STRTAB is an address: the file offset is where the load segment holding it maps it from
  const load = strtab === undefined ? undefined : elf.segments.find((s) => s.type === PT_LOAD && strtab! >= s.vaddr && strtab! < s.vaddr + s.fileSize);
  if (strtab === undefined || !load) return { needed: [], runpaths: [] };
  const base = load.offset + (strtab - load.vaddr);
  const inTable = (off: number): boolean => off < strsz;
  return { needed: needed.filter(inTable).map((o) => base + o), runpaths: runpaths.filter(inTable).map((o) => base + o) };
}

/** The directories a loader of this program's machine searches by default, multiarch ones first. */
export function defaultLibraryDirs(head: Buffer): string[] {
  const arch = { [EM_X86_64]: 'x86_64-linux-gnu', [EM_AARCH64]: 'aarch64-linux-gnu', [EM_386]: 'i386-linux-gnu', [EM_ARM]: 'arm-linux-gnueabihf' }[elfHeader(head)?.machine ?? -1];
  const wide = elfHeader(head)?.is64 ? ['/lib64', '/usr/lib64'] : [];
  return [...(arch ? [`/lib/${arch}`, `/usr/lib/${arch}`] : []), ...wide, '/lib', '/usr/lib'];
}

function elfHeader(head: Buffer): ElfHeader | undefined {
  if (head.length < 52 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const is64 = head[4] === 2;
  if (head[4] !== 1 && !is64) return undefined;
  if (head[5] !== 1 && head[5] !== 2) return undefined;
  const little = head[5] === 1;
  const u16 = (at: number): number => (little ? head.readUInt16LE(at) : head.readUInt16BE(at));
  const u32 = (at: number): number => (little ? head.readUInt32LE(at) : head.readUInt32BE(at));
  // offsets and sizes past 2^53 are not in any file we serve: Number() keeps them as huge, and clipping drops them
  const word = (at: number): number => (is64 ? Number(little ? head.readBigUInt64LE(at) : head.readBigUInt64BE(at)) : u32(at));
  if (is64 && head.length < 64) return undefined;
  const type = u16(16);
  if (type !== ET_EXEC && type !== ET_DYN) return undefined;
  const phoff = word(is64 ? 32 : 28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  const entry = is64 ? 56 : 32;
  if (phnum === 0 || phnum > MAX_PROGRAM_HEADERS || phentsize < entry || phoff + phnum * phentsize > head.length) return undefined;
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    segments.push(is64
      ? { type: u32(at), flags: u32(at + 4), offset: word(at + 8), vaddr: word(at + 16), fileSize: word(at + 32) }
      : { type: u32(at), offset: u32(at + 4), vaddr: u32(at + 8), fileSize: u32(at + 16), flags: u32(at + 24) });
  }
  return { is64, little, machine: u16(18), segments };
}
