// The two ways a TOC's JSON is parsed — whole (JSON.parse behind a lexical check, for TOCs up to
// WHOLE_PARSE_BYTES) and streamed (larger ones) — must accept the same documents, give the same
// values and refuse the same hostile ones.
import { describe, expect, it } from 'vitest';
import { StargzFormatError } from '../../src/stargz/errors.js';
import { parseWholeTocJson, TocJsonParser, type TocJsonHandlers, WHOLE_PARSE_BYTES } from '../../src/stargz/toc-json.js';

interface Parsed {
  version: unknown[];
  entries: unknown[];
}

/** Handlers that refuse a second version and a second entries array, as readStargzToc's do. */
function collect(): { parsed: Parsed; handlers: TocJsonHandlers } {
  const parsed: Parsed = { version: [], entries: [] };
  return {
    parsed,
    handlers: {
      version: (v) => {
        if (parsed.version.length > 0) throw new StargzFormatError('stargz TOC: "version" appears twice');
        parsed.version.push(v);
      },
      entry: (e, i) => {
        if (i !== parsed.entries.length) throw new StargzFormatError('stargz TOC: "entries" appears twice');
        parsed.entries.push([i, e]);
      },
    },
  };
}

function whole(doc: string): Parsed | Error {
  const { parsed, handlers } = collect();
  try {
    parseWholeTocJson(Buffer.from(doc), handlers);
    return parsed;
  } catch (err) {
    return err as Error;
  }
}

/** Streamed in small pieces, as a TOC arrives from a gzip member. */
function streamed(doc: string): Parsed | Error {
  const { parsed, handlers } = collect();
  const parser = new TocJsonParser(handlers);
  try {
    const bytes = Buffer.from(doc);
    for (let at = 0; at < bytes.length; at += 7) parser.write(bytes.subarray(at, at + 7));
    parser.end();
    return parsed;
  } catch (err) {
    return err as Error;
  }
}

const entry = (name: string): Record<string, unknown> => ({ name, type: 'reg', size: 5, offset: 10, xattrs: { 'user.a': 'YQ==' }, digest: `sha256:${'0'.repeat(64)}` });

describe('TOC JSON, whole and streamed', () => {
  it('gives the same values for a well-formed TOC, unknown members included', () => {
    const doc = JSON.stringify({ version: 1, extra: { a: [1, 2, { b: 'c' }] }, entries: [entry('a'), entry('b/c'), { name: 'd', type: 'dir' }] }, null, '\t');
    const a = whole(doc);
    expect(a).not.toBeInstanceOf(Error);
    expect(a).toEqual(streamed(doc));
    expect((a as Parsed).entries).toHaveLength(3);
  });

  it.each([
    ['a version given twice', '{"version":1,"version":2,"entries":[]}', /"version" appears twice/],
    ['entries given twice', '{"version":1,"entries":[{"name":"a"}],"entries":[{"name":"b"}]}', /appears twice/],
    ['deep nesting', `{"version":1,"x":${'['.repeat(50)}${']'.repeat(50)}}`, /nested deeper/],
    ['a huge unknown member', `{"version":1,"x":[${'0,'.repeat(70_000)}0]}`, /more than 65536 JSON tokens/],
    ['a huge entry', `{"version":1,"entries":[{"name":"a","xattrs":{${Array.from({ length: 40_000 }, (_, i) => `"k${i}":"v"`).join(',')}}}]}`, /more than 65536 JSON tokens/],
    ['entries not an array', '{"version":1,"entries":{"a":{}}}', /not an array/],
    ['trailing JSON', '{"version":1,"entries":[]} {}', /bad JSON|JSON/],
    ['garbage', '{"version":1,"entries":[{]}', /bad JSON/],
  ])('refuses %s either way', (_, doc, message) => {
    for (const got of [whole(doc), streamed(doc)]) {
      expect(got).toBeInstanceOf(StargzFormatError);
      expect((got as Error).message).toMatch(message);
    }
  });

  it('keeps strings with brackets, quotes and colons out of the structure check', () => {
    const doc = JSON.stringify({ version: 1, entries: [{ name: 'a[{"x":1}]\\"', type: 'reg', linkName: '}:,' }] });
    expect(whole(doc)).toEqual(streamed(doc));
  });

  it('leaves a TOC over the bound to the stream', () => {
    expect(() => parseWholeTocJson(Buffer.alloc(WHOLE_PARSE_BYTES + 1), collect().handlers)).toThrow(RangeError);
  });
});
