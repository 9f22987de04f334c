// extentsOf: a device's extents clipped, merged and made to cover the range exactly; whatever the device
// gets wrong is served as data (reading is always correct, skipping a "hole" that is not one never is).
import { describe, expect, it } from 'vitest';
import { extentsOf, type BlockDevice } from '../../../src/block/nbd/device.js';

function device(extents?: (offset: number, length: number) => { length: number; hole: boolean }[]): BlockDevice {
  return { size: 1 << 20, read: async (_o, l) => Buffer.alloc(l), ...(extents ? { extents } : {}) };
}

describe('extentsOf', () => {
  it('a device without extents is all data', () => {
    expect(extentsOf(device(), 100, 5000)).toEqual([{ offset: 100, length: 5000, hole: false }]);
  });

  it('clips to the range and merges neighbours of a kind', () => {
    const d = device(() => [
      { length: 4096, hole: false },
      { length: 4096, hole: false },
      { length: 8192, hole: true },
      { length: 1 << 20, hole: false },
    ]);
    expect(extentsOf(d, 0, 20000)).toEqual([
      { offset: 0, length: 8192, hole: false },
      { offset: 8192, length: 8192, hole: true },
      { offset: 16384, length: 3616, hole: false },
    ]);
  });

  it('what the device leaves out, and everything from a bad extent on, is data', () => {
    expect(extentsOf(device(() => [{ length: 100, hole: true }]), 0, 300)).toEqual([
      { offset: 0, length: 100, hole: true },
      { offset: 100, length: 200, hole: false },
    ]);
    for (const bad of [0, -5, 1.5, NaN, Infinity]) {
      const d = device(() => [{ length: 10, hole: true }, { length: bad, hole: true }, { length: 100, hole: true }]);
      expect(extentsOf(d, 0, 50)).toEqual([
        { offset: 0, length: 10, hole: true },
        { offset: 10, length: 40, hole: false },
      ]);
    }
  });

  it('extents() that throws or returns garbage: all data', () => {
    const throwing = device(() => {
      throw new Error('block map not loaded');
    });
    expect(extentsOf(throwing, 0, 10)).toEqual([{ offset: 0, length: 10, hole: false }]);
    const garbage = device(() => 'nope' as unknown as { length: number; hole: boolean }[]);
    expect(extentsOf(garbage, 0, 10)).toEqual([{ offset: 0, length: 10, hole: false }]);
  });
});
