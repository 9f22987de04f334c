import { describe, expect, it } from 'vitest';
import { type Dirent, FileType, fileTypeOfMode, packDirents, parseDirentBlock } from '../../src/rafs/dirent.js';
import { RafsEncodeError, RafsFormatError } from '../../src/rafs/errors.js';
import { itFixtures, lazyFixture } from '../helpers/fixtures.js';

const boot = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');
const entry = (name: string, nid = 1, fileType: number = FileType.REG): Dirent => ({ name, nid, fileType });

/** Splits packed directory data into blocks and parses each. */
function parseAll(data: Buffer, blockSize: number): Dirent[][] {
  const blocks: Dirent[][] = [];
  for (let at = 0; at < data.length; at += blockSize) blocks.push(parseDirentBlock(data, at, Math.min(blockSize, data.length - at)));
  return blocks;
}

describe('directory blocks', () => {
  itFixtures('parses the fixture root directory (inline tail after the inode)', () => {
    const entries = parseDirentBlock(boot(), 0x3040, 67);
    expect(entries.map(({ nameBytes, ...rest }) => rest)).toEqual([
      { name: '.', nid: 128, fileType: FileType.DIR },
      { name: '..', nid: 128, fileType: FileType.DIR },
      { name: 'lib.rs', nid: 133, fileType: FileType.REG },
      { name: 'sync_io.rs', nid: 136, fileType: FileType.REG },
    ]);
    // the raw name bytes are views of the bootstrap
    for (const e of entries) expect(e.nameBytes?.toString('latin1')).toBe(e.name);
  });

  it('sorts . and .. together with names below 0x2E, by raw bytes', () => {
    const data = packDirents([entry('b'), entry('..', 2, FileType.DIR), entry('.', 3, FileType.DIR), entry('!a'), entry('-x'), entry('\xff'), entry('B')], 4096);
    expect(parseDirentBlock(data, 0, data.length).map((d) => d.name)).toEqual(['!a', '-x', '.', '..', 'B', 'b', '\xff']);
    // names follow the 7 dirents back to back, without NULs
    expect(data.readUInt16LE(8)).toBe(84);
    expect(data.length).toBe(84 + 2 + 2 + 1 + 2 + 1 + 1 + 1);
  });

  it('packs greedily into blocks; i_size = full blocks + used bytes of the last', () => {
    const names = Array.from({ length: 1000 }, (_, i) => `file-${String(i).padStart(4, '0')}`);
    const all = [entry('.'), entry('..'), ...names.map((n, i) => entry(n, i + 10))];
    const data = packDirents(all, 4096);
    const blocks = parseAll(data, 4096);
    // each entry takes 12 + 9 bytes: 195 per block
    expect(blocks.map((b) => b.length)).toEqual([195, 195, 195, 195, 195, 27]);
    expect(data.length).toBe(5 * 4096 + 27 * 21);
    expect(blocks.flat().map((d) => d.name)).toEqual(all.map((d) => d.name).sort());
    expect(blocks.flat().find((d) => d.name === 'file-0999')!.nid).toBe(1009);
  });

  it('starts a new block exactly when the next entry would not fit', () => {
    const long = 'x'.repeat(255);
    const entries = Array.from({ length: 15 }, (_, i) => entry(long.slice(0, 254) + String.fromCharCode(0x41 + i)));
    const data = packDirents(entries, 4096);
    expect(parseAll(data, 4096).map((b) => b.length)).toEqual([15]);
    const more = packDirents([...entries, entry(`${long.slice(0, 254)}Z`)], 4096);
    expect(parseAll(more, 4096).map((b) => b.length)).toEqual([15, 1]);
    expect(more.length).toBe(4096 + 12 + 255);
  });

  it('rejects names that cannot be stored', () => {
    for (const name of ['', 'a/b', 'nul\0', 'x'.repeat(256), '\u0100']) expect(() => packDirents([entry(name)], 4096)).toThrow(RafsEncodeError);
    expect(() => packDirents([entry('a'), entry('a')], 4096)).toThrow(/duplicate name "a"/);
  });

  it('rejects corrupt blocks with RafsFormatError', () => {
    const data = packDirents([entry('.'), entry('..'), entry('name')], 4096);
    const cases: [number, number][] = [[8, 0], [8, 13], [8, 200], [20, 40], [10, 9]];
    for (const [at, value] of cases) {
      const bad = Buffer.from(data);
      bad.writeUInt16LE(value, at);
      expect(() => parseDirentBlock(bad, 0, bad.length), `${at}=${value}`).toThrow(RafsFormatError);
    }
    expect(() => parseDirentBlock(data, 0, 5)).toThrow(/cannot hold a dirent/);
    expect(() => parseDirentBlock(data, 4000, 200)).toThrow(/do not fit/);
  });

  it('maps modes to dirent file types', () => {
    expect([0o100644, 0o40755, 0o20000, 0o60000, 0o10000, 0o140000, 0o120777, 0o170000].map(fileTypeOfMode)).toEqual([1, 2, 3, 4, 5, 6, 7, 0]);
  });
});
