// containerd's filter syntax, as List/Walk receive it: a request's filters are ORed, the
// comma-separated selectors inside one are ANDed; a selector is a field path (`name`, `parent`,
// `kind`, `labels."a.b/c"`) alone (present and non-empty) or with `==`, `!=` or `~=` (regexp) and a
// value, quoted ("…" or /…/) or bare. containerd's metadata store walks us with
// `labels."containerd.io/snapshot.ref"==<chainID>,parent=="<parent>"` to find a remote commit.
import { setFlagsFromString } from 'node:v8';
import { InvalidArgumentError } from './errors.js';

// `~=` values come from requests: compiled for V8's linear-time engine (the `l` flag), as
// containerd's Go regexps are RE2, so no pattern can make a List backtrack for seconds and stall
// every other request. Patterns that need backtracking (backreferences, lookaround) are refused,
// as RE2 refuses them.
setFlagsFromString('--enable-experimental-regexp-engine');

type Op = '==' | '!=' | '~=';
interface Selector {
  path: string[];
  op?: Op;
  value?: string;
  regexp?: RegExp;
}

export type FieldGetter = (path: string[]) => string | undefined;
export type Filter = (get: FieldGetter) => boolean;

const MAX_FILTER_LENGTH = 8192;

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}
  fail(why: string): never {
    throw new InvalidArgumentError(`filter ${JSON.stringify(this.text.slice(0, 200))} at ${this.pos}: ${why}`);
  }
  peek(n = 1): string {
    return this.text.slice(this.pos, this.pos + n);
  }
  done(): boolean {
    return this.pos >= this.text.length;
  }
  skipSpace(): void {
    while (!this.done() && /\s/.test(this.text[this.pos]!)) this.pos++;
  }
  /** A quoted string: "…" with backslash escapes, or /…/ (a regexp, \/ for a slash). */
  quoted(): string {
    const q = this.text[this.pos++]!;
    let out = '';
    while (!this.done()) {
      const c = this.text[this.pos++]!;
      if (c === q) return out;
      if (c === '\\' && !this.done()) {
        const e = this.text[this.pos++]!;
        out += q === '"' ? ({ n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\' } as Record<string, string>)[e] ?? `\\${e}` : e === '/' ? '/' : `\\${e}`;
      } else out += c;
    }
    return this.fail('unterminated quote');
  }
  field(): string {
    if (this.peek() === '"') return this.quoted();
    const m = /^[A-Za-z0-9_-]+/.exec(this.text.slice(this.pos));
    if (!m) this.fail('expected a field name');
    this.pos += m[0].length;
    return m[0];
  }
  value(): string {
    if (this.peek() === '"' || this.peek() === '/') return this.quoted();
    const m = /^[^,\s]*/.exec(this.text.slice(this.pos))!;
    this.pos += m[0].length;
    return m[0];
  }
}

function parseOne(text: string): Selector[] {
  if (text.length > MAX_FILTER_LENGTH) throw new InvalidArgumentError(`filter longer than ${MAX_FILTER_LENGTH} characters`);
  const s = new Scanner(text);
  const selectors: Selector[] = [];
  for (;;) {
    s.skipSpace();
    const path = [s.field()];
    while (s.peek() === '.') {
      s.pos++;
      path.push(s.field());
    }
    s.skipSpace();
    const sel: Selector = { path };
    const op = s.peek(2);
    if (op === '==' || op === '!=' || op === '~=') {
      s.pos += 2;
      s.skipSpace();
      sel.op = op;
      sel.value = s.value();
      if (op === '~=') {
        try {
          sel.regexp = new RegExp(sel.value, 'l');
        } catch {
          s.fail('bad regular expression (or one that cannot run in linear time)');
        }
      }
    }
    selectors.push(sel);
    s.skipSpace();
    if (s.done()) return selectors;
    if (s.peek() !== ',') s.fail('expected "," or an operator');
    s.pos++;
  }
}

function matches(sel: Selector, get: FieldGetter): boolean {
  const v = get(sel.path);
  switch (sel.op) {
    case undefined:
      return v !== undefined && v !== '';
    case '==':
      return v === sel.value;
    case '!=':
      return v !== sel.value;
    case '~=':
      return v !== undefined && sel.regexp!.test(v);
  }
}

/** One predicate for a request's filters (none: everything matches). */
export function parseFilters(filters: readonly string[] | undefined): Filter {
  const parsed = (filters ?? []).filter((f) => f.trim() !== '').map(parseOne);
  if (parsed.length === 0) return () => true;
  return (get) => parsed.some((all) => all.every((sel) => matches(sel, get)));
}
