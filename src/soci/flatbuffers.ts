// A small reader for little-endian FlatBuffers tables, enough for a fixed schema such as the zTOC's.
// The buffer is untrusted: every offset is checked to lie inside it before it is read, so a
// malformed buffer is a SociFormatError naming the table, the field and the byte, never a
// RangeError. References (uoffsets) only point forward and the caller's schema is finite, so no
// walk can loop or recurse without end.
//
// Layout (flatbuffers.dev "internals"): the buffer starts with a uint32 offset to the root table. A
// table starts with an int32 back-offset to its vtable (vtable = table - value); the vtable holds
// uint16 vtable size, uint16 table size, then one uint16 per field id: the field's offset inside
// the table, 0 for absent. A string, vector or sub-table field holds a uint32 offset relative to the
// field itself; a string / vector starts with its uint32 length (strings then hold their bytes and
// a NUL, vectors their elements; a vector of tables or strings holds uint32 offsets, each relative
// to its own slot).
import { SociFormatError } from './errors.js';

/** A field of a table: its id (declaration order in the schema) and its name for messages. */
export interface FbField {
  readonly id: number;
  readonly name: string;
}

export function fbField(id: number, name: string): FbField {
  return { id, name };
}

/** The elements of a vector, read one at a time when asked for. */
export interface FbVector<T> {
  readonly length: number;
  at(index: number): T;
}

export interface FlatBufferOptions {
  /**
   * Most bytes of tables, strings and vectors all reads together may visit (default: unlimited).
   * Reading each field of an honest buffer once visits each byte at most once, but a hand-made
   * one can point many vector slots at one large table or string and so multiply the work; a
   * bound of a few times the buffer's size keeps the work linear in it.
   */
  readonly maxVisitedBytes?: number;
}

export type TextEncoding = 'latin1' | 'utf8';

// Buffer's own read methods validate their arguments through several wrappers per call; these are
// only ever called on ranges checked first.
function u16(b: Buffer, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

function i32(b: Buffer, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}

function u32(b: Buffer, o: number): number {
  return i32(b, o) >>> 0;
}

/** The buffer and what all its readers have visited so far. */
export class FlatBuffer {
  private visited = 0;
  private readonly maxVisited: number;

  constructor(
    readonly buf: Buffer,
    opts: FlatBufferOptions = {},
  ) {
    this.maxVisited = opts.maxVisitedBytes ?? Infinity;
  }

  /** The root table (the buffer has no file identifier or size prefix in front of the offset); `name` names it in messages. */
  root(name: string): FbTable {
    const at = new Place(name, undefined, undefined, -1);
    this.need(0, 4, at, 'the 4-byte root offset');
    return this.table(u32(this.buf, 0), at);
  }

  /** The table at `pos`, its vtable checked. */
  table(pos: number, at: Place): FbTable {
    this.need(pos, 4, at, 'the 4-byte table header');
    const vtable = pos - i32(this.buf, pos);
    this.need(vtable, 4, at, `the 4-byte vtable header at ${vtable}`);
    const vtableSize = u16(this.buf, vtable);
    const tableSize = u16(this.buf, vtable + 2);
    if (vtableSize < 4 || vtableSize % 2 !== 0) throw this.error(at, vtable, `vtable size ${vtableSize} is not an even number of at least 4`);
    this.need(vtable, vtableSize, at, `the ${vtableSize}-byte vtable`);
    if (tableSize < 4) throw this.error(at, vtable, `table size ${tableSize} is less than 4`);
    this.need(pos, tableSize, at, `the ${tableSize}-byte table`);
    this.visit(tableSize, at, pos);
    return new FbTable(this, pos, at, vtable, vtableSize, tableSize);
  }

  /** [start, end) of the string at `pos`. */
  stringRange(pos: number, at: Place, maxBytes: number): [number, number] {
    this.need(pos, 4, at, 'the 4-byte string length');
    const length = u32(this.buf, pos);
    if (length > maxBytes) throw this.error(at, pos, `string of ${length} bytes is longer than the limit of ${maxBytes}`);
    this.need(pos + 4, length, at, `a string of ${length} bytes`);
    this.visit(4 + length, at, pos);
    return [pos + 4, pos + 4 + length];
  }

  /** Start and length of the vector at `pos`. */
  vectorRange(pos: number, elementSize: number, at: Place): [number, number] {
    this.need(pos, 4, at, 'the 4-byte vector length');
    const length = u32(this.buf, pos);
    if (length > (this.buf.length - pos - 4) / elementSize) {
      throw this.error(at, pos, `vector of ${length} elements of ${elementSize} bytes runs past the end of the ${this.buf.length}-byte buffer`);
    }
    this.visit(4 + length * elementSize, at, pos);
    return [pos + 4, length];
  }

  /** Where the uint32 offset at `pos` points (offsets are relative to their own position). */
  follow(pos: number, at: Place): number {
    this.need(pos, 4, at, 'a 4-byte offset');
    return pos + u32(this.buf, pos);
  }

  error(at: Place, pos: number, detail: string): SociFormatError {
    return new SociFormatError(`${at.what} (byte ${pos}): ${detail}`);
  }

  private need(pos: number, length: number, at: Place, thing: string): void {
    if (!(pos >= 0 && pos + length <= this.buf.length)) {
      throw this.error(at, pos, `${thing} does not fit in the ${this.buf.length}-byte buffer`);
    }
  }

  private visit(bytes: number, at: Place, pos: number): void {
    this.visited += bytes;
    if (this.visited > this.maxVisited) {
      throw this.error(at, pos, `reading it would visit more than ${this.maxVisited} bytes: tables or strings are shared over and over`);
    }
  }
}

/**
 * Where a table or field is, for messages: `zTOC.toc.metadata[12].name`. Built as a chain and
 * spelled out only when a message needs it, since a large zTOC reads millions of fields.
 */
export class Place {
  constructor(
    private readonly name: string,
    private readonly parent: Place | undefined,
    private readonly field: FbField | undefined,
    private readonly index: number,
  ) {}

  get what(): string {
    if (this.parent === undefined) return this.name;
    return `${this.parent.what}.${this.field!.name}${this.index >= 0 ? `[${this.index}]` : ''}`;
  }
}

/** One table; fields are read by id, an absent one gives the schema default or undefined. */
export class FbTable {
  constructor(
    private readonly fb: FlatBuffer,
    readonly pos: number,
    private readonly at: Place,
    private readonly vtable: number,
    private readonly vtableSize: number,
    private readonly tableSize: number,
  ) {}

  /** Where the table is, spelled out (e.g. `zTOC.toc.metadata[12]`). */
  get what(): string {
    return this.at.what;
  }

  has(f: FbField): boolean {
    return this.fieldPos(f, 0) >= 0;
  }

  int8(f: FbField, absent = 0): number {
    const p = this.fieldPos(f, 1);
    return p < 0 ? absent : (this.fb.buf[p]! << 24) >> 24;
  }

  uint8(f: FbField, absent = 0): number {
    const p = this.fieldPos(f, 1);
    return p < 0 ? absent : this.fb.buf[p]!;
  }

  int32(f: FbField, absent = 0): number {
    const p = this.fieldPos(f, 4);
    return p < 0 ? absent : i32(this.fb.buf, p);
  }

  uint32(f: FbField, absent = 0): number {
    const p = this.fieldPos(f, 4);
    return p < 0 ? absent : u32(this.fb.buf, p);
  }

  /** A signed 64-bit field; a value a number cannot hold exactly is refused, not rounded. */
  int64(f: FbField, absent = 0): number {
    const p = this.fieldPos(f, 8);
    if (p < 0) return absent;
    const value = i32(this.fb.buf, p + 4) * 2 ** 32 + u32(this.fb.buf, p);
    if (!Number.isSafeInteger(value)) throw this.fb.error(this.place(f), p, `64-bit value ${this.fb.buf.readBigInt64LE(p)} is beyond ±(2^53 - 1)`);
    return value;
  }

  /** A string field's bytes (a view of the buffer, no copy); undefined when absent. */
  bytes(f: FbField, maxBytes = Infinity): Buffer | undefined {
    const s = this.ref(f);
    if (s < 0) return undefined;
    const [start, end] = this.fb.stringRange(s, this.place(f), maxBytes);
    return this.fb.buf.subarray(start, end);
  }

  /** A string field decoded (latin1: one char per byte, a byte string); undefined when absent. */
  text(f: FbField, encoding: TextEncoding, maxBytes = Infinity): string | undefined {
    const s = this.ref(f);
    if (s < 0) return undefined;
    const [start, end] = this.fb.stringRange(s, this.place(f), maxBytes);
    return this.fb.buf.toString(encoding, start, end);
  }

  /** A sub-table field; undefined when absent. */
  table(f: FbField): FbTable | undefined {
    const t = this.ref(f);
    return t < 0 ? undefined : this.fb.table(t, this.place(f));
  }

  /** A [ubyte] (or [byte]) field as a view of the buffer; undefined when absent. */
  ubytes(f: FbField): Buffer | undefined {
    const v = this.ref(f);
    if (v < 0) return undefined;
    const [start, length] = this.fb.vectorRange(v, 1, this.place(f));
    return this.fb.buf.subarray(start, start + length);
  }

  /** A [Table] field; empty when absent. */
  tables(f: FbField): FbVector<FbTable> {
    return this.offsetVector(f, (pos, at) => this.fb.table(pos, at));
  }

  /** A [string] field, each element's bytes as a view; empty when absent. */
  strings(f: FbField, maxBytes = Infinity): FbVector<Buffer> {
    return this.offsetVector(f, (pos, at) => {
      const [start, end] = this.fb.stringRange(pos, at, maxBytes);
      return this.fb.buf.subarray(start, end);
    });
  }

  private offsetVector<T>(f: FbField, read: (pos: number, at: Place) => T): FbVector<T> {
    const v = this.ref(f);
    if (v < 0) return { length: 0, at: (i) => outOfRange(i, 0) };
    const [start, length] = this.fb.vectorRange(v, 4, this.place(f));
    return {
      length,
      at: (i) => {
        if (!(Number.isInteger(i) && i >= 0 && i < length)) outOfRange(i, length);
        const at = new Place('', this.at, f, i);
        return read(this.fb.follow(start + 4 * i, at), at);
      },
    };
  }

  /** Where the field's offset points; -1 when absent. */
  private ref(f: FbField): number {
    const p = this.fieldPos(f, 4);
    return p < 0 ? -1 : this.fb.follow(p, this.place(f));
  }

  /** The absolute position of a field `width` bytes wide; -1 when absent. */
  private fieldPos(f: FbField, width: number): number {
    const slot = 4 + 2 * f.id;
    // a vtable shorter than the slot is a table written before the field was added: absent
    if (slot + 2 > this.vtableSize) return -1;
    const offset = u16(this.fb.buf, this.vtable + slot);
    if (offset === 0) return -1;
    // offsets 0..3 are the vtable back-offset itself
    if (offset < 4 || offset + width > this.tableSize) {
      throw this.fb.error(this.place(f), this.pos, `field at table offset ${offset} (${width} bytes) lies outside the ${this.tableSize}-byte table`);
    }
    return this.pos + offset;
  }

  private place(f: FbField): Place {
    return new Place('', this.at, f, -1);
  }
}

// A caller's index bug, not bad data: a plain RangeError.
function outOfRange(i: number, length: number): never {
  throw new RangeError(`vector index ${i} is outside [0, ${length})`);
}
