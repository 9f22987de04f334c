import { describe, expect, it } from 'vitest';
import { TarPathError } from '../../../src/convert/tar/errors.js';
import { entryPathComponents } from '../../../src/convert/tar/path.js';

describe('entryPathComponents', () => {
  it('normalises', () => {
    expect(entryPathComponents('./a//b/')).toEqual(['a', 'b']);
    expect(entryPathComponents('a/./b/.')).toEqual(['a', 'b']);
    expect(entryPathComponents('a')).toEqual(['a']);
    expect(entryPathComponents('...')).toEqual(['...']);
    expect(entryPathComponents('..a/b..')).toEqual(['..a', 'b..']);
    expect(entryPathComponents('caf\xc3\xa9/\xff')).toEqual(['caf\xc3\xa9', '\xff']);
  });

  it('the root: ".", "./", "/", "//"', () => {
    for (const p of ['.', './', '/', '//', './/.']) expect(entryPathComponents(p), p).toEqual([]);
  });

  it('rejects escapes and unusable names with the path in the message', () => {
    const bad: [string, RegExp][] = [
      ['..', /'\.\.' component/],
      ['../x', /'\.\.' component/],
      ['a/../../etc/passwd', /"a\/\.\.\/\.\.\/etc\/passwd" has a '\.\.' component/],
      ['a/..', /'\.\.' component/],
      ['/etc/x', /"\/etc\/x" is absolute/],
      ['//etc', /absolute/],
      ['', /empty/],
      ['a\0b', /NUL/],
      ['x/' + 'n'.repeat(256), /256 bytes \(max 255\)/],
      ['\u0100', /not a byte string/],
    ];
    for (const [p, re] of bad) {
      expect(() => entryPathComponents(p), JSON.stringify(p)).toThrow(TarPathError);
      expect(() => entryPathComponents(p), JSON.stringify(p)).toThrow(re);
    }
    expect(entryPathComponents('n'.repeat(255))).toHaveLength(1);
  });
});
