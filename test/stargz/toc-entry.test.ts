// TOC entries take fast paths for what nearly every TOC holds (names already clean, modtimes of
// the form YYYY-MM-DDTHH:MM:SSZ): they must give exactly what the general paths give.
import { describe, expect, it } from 'vitest';
import { StargzFormatError } from '../../src/stargz/errors.js';
import { cleanPath, parseModTime, parseTocEntry } from '../../src/stargz/toc-entry.js';

describe('parseModTime', () => {
  it('reads a UTC time of whole seconds as the general RFC 3339 path does (+00:00 takes that path)', () => {
    const times = [
      '2026-12-06T12:15:22', '1970-01-01T00:00:00', '1969-12-31T23:59:59', '2000-02-29T12:00:00', '2021-02-31T00:00:00',
      '2016-12-31T23:59:60', '0100-01-01T00:00:00', '0099-12-31T23:59:59', '0001-01-01T00:00:00', '9999-12-31T23:59:59',
    ];
    for (const t of times) expect(parseModTime(`${t}Z`, 0), t).toEqual(parseModTime(`${t}+00:00`, 0));
    expect(parseModTime('2026-12-06T12:15:22Z', 0)).toEqual([Date.parse('2026-12-06T12:15:22Z') / 1000, 0]);
    expect(parseModTime('0001-01-01T00:00:00Z', 0)).toEqual([0, 0]);
    expect(parseModTime('2026-12-06T12:15:22.5Z', 0)).toEqual([Date.parse('2026-12-06T12:15:22Z') / 1000, 500_000_000]);
  });

  it('refuses what the general path refuses', () => {
    for (const t of ['2026-13-06T12:15:22Z', '2026-12-00T12:15:22Z', '2026-12-06T24:15:22Z', '2026-12-06T12:60:22Z', '2026-12-06T12:15:61Z']) {
      expect(() => parseModTime(t, 3), t).toThrow(/stargz TOC entry 3: modtime .* is out of range/);
    }
    for (const t of ['2026-12-06T12:15:2xZ', '2026-12-06 12:15:22Z', '+026-12-06T12:15:22Z', '2026-12-06T12:15:22z']) {
      expect(() => parseModTime(t, 3), t).toThrow(/is not an RFC 3339 time/);
    }
  });
});

describe('parseTocEntry names', () => {
  const nameOf = (name: string): string => parseTocEntry({ type: 'dir', name }, 0).name;

  it('gives what cleanPath gives, for clean names and the rest', () => {
    const long = 'x'.repeat(255);
    const names = [
      'usr/bin/', 'usr/bin/ls', 'a', '.a/..b/...', `${long}/`, `d/${long}`, '.', './', '/', '', './usr/bin', 'a//b', '/a', 'a/./b', 'a/.', '.hidden/',
    ];
    for (const name of names) expect(nameOf(name), name).toBe(cleanPath(name, 'name'));
  });

  it('refuses what cleanPath refuses', () => {
    for (const name of ['a/../b', '..', '../', 'a/..', `${'x'.repeat(256)}/`, 'a\0b']) {
      expect(() => nameOf(name), JSON.stringify(name)).toThrow(StargzFormatError);
      expect(() => cleanPath(name, 'name'), JSON.stringify(name)).toThrow(StargzFormatError);
    }
  });
});
