// Inline extended attributes (docs/rafs-v6.md §1.9): a 12-byte ibody header followed by 4-byte aligned
// entries whose names are stored without one of five well-known prefixes. Names are byte strings.
import { alignUp, checkRange } from './bytes.js';
import { RafsEncodeError, RafsFormatError } from './errors.js';

export const XATTR_HEADER_SIZE = 12;
const ENTRY_HEADER_SIZE = 4;
const MAX_VALUE_SIZE = 0xffff;

/** name_index → prefix; the two ACL entries are whole names (their stored suffix is empty). */
const PREFIXES = new Map<number, string>([
  [1, 'user.'],
  [2, 'system.posix_acl_access'],
  [3, 'system.posix_acl_default'],
  [4, 'trusted.'],
  [6, 'security.'],
]);
const WHOLE_NAME_INDEXES = new Set([2, 3]);

function splitName(key: string): { index: number; suffix: string } {
  for (const [index, prefix] of PREFIXES) {
    const whole = WHOLE_NAME_INDEXES.has(index);
    if (whole ? key === prefix : key.startsWith(prefix) && key.length > prefix.length) {
      return { index, suffix: key.slice(prefix.length) };
    }
  }
  throw new RafsEncodeError('xattr', `unsupported name ${JSON.stringify(key)}: only user., trusted., security. and system.posix_acl_{access,default} can be stored`);
}

/** i_xattr_icount for an inline area of `bytes` (0 when there is no area). */
export function xattrCountForSize(bytes: number): number {
  return bytes === 0 ? 0 : (bytes - XATTR_HEADER_SIZE) / 4 + 1;
}

/** Size in bytes of the inline area an i_xattr_icount describes. */
export function xattrAreaSize(xattrCount: number): number {
  return xattrCount === 0 ? 0 : XATTR_HEADER_SIZE + (xattrCount - 1) * 4;
}

/** The area of an inode without xattrs (shared: empty, so never written to). */
const NO_XATTRS = Buffer.alloc(0);

/** The inline xattr area (header + entries sorted by full name); empty when there are none. */
export function encodeXattrs(xattrs: ReadonlyMap<string, Buffer>): Buffer {
  if (xattrs.size === 0) return NO_XATTRS;
  const entries = [...xattrs.keys()].sort().map((key) => {
    if (/[^\x01-\xff]/.test(key)) throw new RafsEncodeError('xattr', `name ${JSON.stringify(key)} is not a byte string without NULs`);
    const { index, suffix } = splitName(key);
    const value = xattrs.get(key)!;
    if (suffix.length > 255) throw new RafsEncodeError('xattr', `name ${JSON.stringify(key)} is longer than 255 bytes after its prefix`);
    if (value.length > MAX_VALUE_SIZE) throw new RafsEncodeError('xattr', `value of ${JSON.stringify(key)} is larger than 64 KiB`);
    const entry = Buffer.alloc(alignUp(ENTRY_HEADER_SIZE + suffix.length + value.length, 4));
    entry.writeUInt8(suffix.length, 0);
    entry.writeUInt8(index, 1);
    entry.writeUInt16LE(value.length, 2);
    entry.write(suffix, ENTRY_HEADER_SIZE, 'latin1');
    value.copy(entry, ENTRY_HEADER_SIZE + suffix.length);
    return entry;
  });
  const area = Buffer.concat([Buffer.alloc(XATTR_HEADER_SIZE), ...entries]);
  if (xattrCountForSize(area.length) > 0xffff) throw new RafsEncodeError('xattr', `inline xattrs of ${area.length} bytes exceed the i_xattr_icount range`);
  return area;
}

/** Decodes the inline area of `xattrCount` at `offset`; values are copies. */
export function decodeXattrs(buf: Buffer, offset: number, xattrCount: number): Map<string, Buffer> {
  const xattrs = new Map<string, Buffer>();
  if (xattrCount === 0) return xattrs;
  const end = offset + xattrAreaSize(xattrCount);
  checkRange(buf.length, offset, end - offset, 'xattr area');
  if (buf.readUInt8(offset + 4) !== 0) throw new RafsFormatError('xattr area', offset + 4, 'shared xattrs are not supported');
  for (let pos = offset + XATTR_HEADER_SIZE; pos < end; ) {
    checkRange(end, pos, ENTRY_HEADER_SIZE, 'xattr entry');
    const nameLength = buf.readUInt8(pos);
    const index = buf.readUInt8(pos + 1);
    const valueSize = buf.readUInt16LE(pos + 2);
    const entrySize = alignUp(ENTRY_HEADER_SIZE + nameLength + valueSize, 4);
    checkRange(end, pos, entrySize, 'xattr entry');
    const prefix = PREFIXES.get(index);
    if (prefix === undefined) throw new RafsFormatError('xattr entry', pos, `unknown name index ${index}`);
    if (WHOLE_NAME_INDEXES.has(index) !== (nameLength === 0)) throw new RafsFormatError('xattr entry', pos, `bad name length ${nameLength} for ${prefix}`);
    const nameStart = pos + ENTRY_HEADER_SIZE;
    const key = prefix + buf.toString('latin1', nameStart, nameStart + nameLength);
    if (xattrs.has(key)) throw new RafsFormatError('xattr entry', pos, `duplicate name ${JSON.stringify(key)}`);
    xattrs.set(key, Buffer.from(buf.subarray(nameStart + nameLength, nameStart + nameLength + valueSize)));
    pos += entrySize;
  }
  return xattrs;
}
