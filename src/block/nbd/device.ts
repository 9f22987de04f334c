// What the NBD server serves: read-only block devices, by export name. The device says which ranges are
// holes (read as zeroes) so the server can skip reading them and tell clients (OFFSET_HOLE chunks,
// base:allocation); anything it does not say clearly is treated as data, which is always correct.
import { log } from '../../util/log.js';

export interface BlockDevice {
  readonly size: number;
  /** Exactly `length` bytes at `offset` (the server never asks past `size`). */
  read(offset: number, length: number): Promise<Buffer>;
  /** data vs hole (zero) extents covering [offset, offset+length) */
  extents?(offset: number, length: number): { length: number; hole: boolean }[];
}

export interface NbdExports {
  names(): string[];
  /** The device of an export, or undefined when there is none by that name ('' is the default export). */
  open(name: string): BlockDevice | undefined;
  description?(name: string): string | undefined;
}

export interface Extent {
  offset: number;
  length: number;
  hole: boolean;
}

/**
 * The extents of [offset, offset+length) as the device reports them, clipped to the range, adjacent ones
 * of a kind merged, and covering it exactly: a range the device leaves out, or an extent it gets wrong
 * (not a positive integer length), and everything after it, is data.
 */
export function extentsOf(device: BlockDevice, offset: number, length: number): Extent[] {
  const out: Extent[] = [];
  let done = 0;
  const push = (len: number, hole: boolean): void => {
    const last = out[out.length - 1];
    if (last && last.hole === hole) last.length += len;
    else out.push({ offset: offset + done, length: len, hole });
    done += len;
  };
  for (const e of reported(device, offset, length)) {
    if (done >= length) break;
    if (!Number.isSafeInteger(e.length) || e.length <= 0) break;
    push(Math.min(e.length, length - done), e.hole === true);
  }
  if (done < length) push(length - done, false);
  return out;
}

function reported(device: BlockDevice, offset: number, length: number): { length: number; hole: boolean }[] {
  if (!device.extents) return [];
  try {
    const extents = device.extents(offset, length);
    return Array.isArray(extents) ? extents : [];
  } catch (err) {
    log.warn('nbd: block device extents failed, serving the range as data', { offset, length, err });
    return [];
  }
}
