// What an executable's start will read, from its ELF program headers. When a lazily served file turns
// out to be an ELF executable or shared object (its first chunk, fetched because something read it,
// starts with the ELF magic), the loader is about to map it and walk it: the segment at offset 0
// (headers, dynamic symbols, hash tables, relocations: walked whole while linking), the code
// segments, and the writable segment holding the dynamic section (relocated, then read at start).
// Those are fetched in the background at once, instead of one fault's chunk after another, each
// waiting a round trip while the link idles. The large read-only data segment (rodata, unwind
// tables) is left to the faults: a start touches little of it. Parsing is bounded by the bytes
// given: the header is untrusted like any file content.

/** Loaders stop at far fewer; more is not a program the kernel would run. */
const MAX_PROGRAM_HEADERS = 256;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PF_X = 1;
const ET_EXEC = 2;
const ET_DYN = 3;

interface Segment {
  type: number;
  flags: number;
  offset: number;
  fileSize: number;
}

/**
 * The file ranges ([start, end), clipped to `fileSize`, in file order, merged) the start of the ELF
 * program whose first bytes are `head` will read; undefined when `head` is not an ELF executable
 * or shared object whose program headers lie within it.
 */
export function elfStartRanges(head: Buffer, fileSize: number): [number, number][] | undefined {
  const segments = programHeaders(head);
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

function programHeaders(head: Buffer): Segment[] | undefined {
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
      ? { type: u32(at), flags: u32(at + 4), offset: word(at + 8), fileSize: word(at + 32) }
      : { type: u32(at), offset: u32(at + 4), fileSize: u32(at + 16), flags: u32(at + 24) });
  }
  return segments;
}
