// The TOC JSON, parsed as it streams in: only `version` and each element of `entries` are built,
// one entry object at a time, so memory follows the largest entry rather than the whole TOC. Hostile
// JSON is bounded by nesting depth, by the tokens one entry (or one unknown top-level member) may
// take, and by the number of entries.
import { TokenParser, TokenType, Tokenizer } from '@streamparser/json';
import { StargzFormatError } from './errors.js';

/** root { entries [ entry { xattrs { … } } ] }: nothing in a TOC nests deeper. */
const MAX_DEPTH = 4;
/** Tokens one entry may take: its keys, values and xattrs (a few dozen in practice). */
const MAX_VALUE_TOKENS = 1 << 16;
/** Entries one TOC may have; a layer of a million files is already far past any real one. */
export const MAX_TOC_ENTRIES = 1 << 20;

export interface TocJsonHandlers {
  version(value: unknown): void;
  /** One element of `entries`, in order: a fresh object (or whatever JSON value stood there). */
  entry(value: unknown, index: number): void;
}

export class TocJsonParser {
  private readonly tokenizer = new Tokenizer();
  private readonly parser = new TokenParser({ paths: ['$.version', '$.entries.*'], keepStack: false });
  private depth = 0;
  private rootKey: string | undefined;
  private lastString: string | undefined;
  private unitDepth = 0;
  private unitTokens = 0;
  private entries = 0;

  constructor(handlers: TocJsonHandlers) {
    this.tokenizer.onToken = (token) => {
      this.guard(token.token, token.value);
      this.parser.write(token);
    };
    this.parser.onValue = ({ value, key, stack }) => {
      if (stack.length === 1 && key === 'version') handlers.version(value);
      else if (stack.length === 2 && typeof key === 'number') {
        if (++this.entries > MAX_TOC_ENTRIES) throw new StargzFormatError(`stargz TOC: more than ${MAX_TOC_ENTRIES} entries`);
        handlers.entry(value, key);
      } else throw new StargzFormatError('stargz TOC: "entries" is not an array');
    };
  }

  write(bytes: Uint8Array): void {
    this.wrap(() => this.tokenizer.write(bytes));
  }

  /** Checks that the JSON document is complete. */
  end(): void {
    this.wrap(() => this.tokenizer.end());
    if (!this.parser.isEnded) throw new StargzFormatError('stargz TOC: the JSON ends in the middle of a value');
  }

  private wrap(work: () => void): void {
    try {
      work();
    } catch (err) {
      if (err instanceof StargzFormatError) throw err;
      throw new StargzFormatError(`stargz TOC: bad JSON: ${(err as Error).message}`);
    }
  }

  /** Depth and size limits, checked on each token before the parser builds anything from it. */
  private guard(token: TokenType, value: unknown): void {
    if (this.unitDepth > 0 && ++this.unitTokens > MAX_VALUE_TOKENS) {
      throw new StargzFormatError(`stargz TOC: an entry (or top-level member) of more than ${MAX_VALUE_TOKENS} JSON tokens`);
    }
    if (token === TokenType.LEFT_BRACE || token === TokenType.LEFT_BRACKET) {
      if (++this.depth > MAX_DEPTH) throw new StargzFormatError(`stargz TOC: JSON nested deeper than ${MAX_DEPTH} levels`);
      // a unit is one entry, or one member of the root other than "entries"
      const unitStart = this.rootKey === 'entries' ? 3 : 2;
      if (this.unitDepth === 0 && this.depth === unitStart) {
        this.unitDepth = this.depth;
        this.unitTokens = 1;
      }
    } else if (token === TokenType.RIGHT_BRACE || token === TokenType.RIGHT_BRACKET) {
      if (this.depth === this.unitDepth) this.unitDepth = 0;
      this.depth--;
    } else if (token === TokenType.STRING) {
      this.lastString = value as string;
    } else if (token === TokenType.COLON && this.depth === 1) {
      this.rootKey = this.lastString;
    }
  }
}

/** TOCs up to this size are parsed whole (JSON.parse is ten times the streaming parser's speed). */
export const WHOLE_PARSE_BYTES = 8 << 20;

/**
 * A TOC of at most WHOLE_PARSE_BYTES, parsed at once with the streaming parser's limits: one lexical
 * pass checks depth, the tokens of each entry (or root member) and a root key given twice (which
 * JSON.parse would silently resolve), then JSON.parse builds the values.
 */
export function parseWholeTocJson(json: Buffer, handlers: TocJsonHandlers): void {
  if (json.length > WHOLE_PARSE_BYTES) throw new RangeError(`a ${json.length}-byte TOC is parsed as a stream`);
  checkStructure(json);
  let root: unknown;
  try {
    root = JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new StargzFormatError(`stargz TOC: bad JSON: ${(err as Error).message}`);
  }
  if (typeof root !== 'object' || root === null || Array.isArray(root)) return;
  const doc = root as Record<string, unknown>;
  if ('version' in doc) handlers.version(doc.version);
  if (!('entries' in doc)) return;
  if (!Array.isArray(doc.entries)) throw new StargzFormatError('stargz TOC: "entries" is not an array');
  if (doc.entries.length > MAX_TOC_ENTRIES) throw new StargzFormatError(`stargz TOC: more than ${MAX_TOC_ENTRIES} entries`);
  doc.entries.forEach((e, i) => handlers.entry(e, i));
}

/** What a byte is to the structure check: most are part of a string or a literal (OTHER). */
const OTHER = 0;
const SPACE = 1;
const QUOTE = 2;
const COLON = 3;
const COMMA = 4;
const OPENER = 5;
const CLOSER = 6;
const BACKSLASH = 7;
const CLASS_OF = new Uint8Array(256);
for (const c of [0x20, 0x0a, 0x0d, 0x09]) CLASS_OF[c] = SPACE;
CLASS_OF[0x22] = QUOTE;
CLASS_OF[0x3a] = COLON;
CLASS_OF[0x2c] = COMMA;
CLASS_OF[0x7b] = OPENER;
CLASS_OF[0x5b] = OPENER;
CLASS_OF[0x7d] = CLOSER;
CLASS_OF[0x5d] = CLOSER;
CLASS_OF[0x5c] = BACKSLASH;

/**
 * The streaming parser's guard, as one pass over the bytes (malformed JSON is left to JSON.parse).
 * One table look-up per byte and no calls: this runs cold, over megabytes.
 */
function checkStructure(b: Buffer): void {
  let depth = 0;
  let unitDepth = 0;
  let unitTokens = 0;
  let rootKey: string | undefined;
  let lastString = '';
  const rootKeys = new Set<string>();
  const length = b.length;
  for (let i = 0; i < length; i++) {
    let k = CLASS_OF[b[i]!]!;
    if (k === SPACE) continue;
    // every other byte starts a token: a number or literal (one token to its end), a string, a delimiter
    if (unitDepth > 0 && ++unitTokens > MAX_VALUE_TOKENS) {
      throw new StargzFormatError(`stargz TOC: an entry (or top-level member) of more than ${MAX_VALUE_TOKENS} JSON tokens`);
    }
    if (k === OTHER || k === BACKSLASH) {
      while (i + 1 < length && ((k = CLASS_OF[b[i + 1]!]!) === OTHER || k === BACKSLASH)) i++;
    } else if (k === QUOTE) {
      const start = i + 1;
      // to the closing quote: a backslash escapes the byte after it
      for (i = start; i < length; i++) {
        const c = CLASS_OF[b[i]!]!;
        if (c === BACKSLASH) i++;
        else if (c === QUOTE) break;
      }
      if (i >= length) return;
      if (depth === 1) lastString = b.toString('utf8', start, i);
    } else if (k === OPENER) {
      if (++depth > MAX_DEPTH) throw new StargzFormatError(`stargz TOC: JSON nested deeper than ${MAX_DEPTH} levels`);
      const unitStart = rootKey === 'entries' ? 3 : 2;
      if (unitDepth === 0 && depth === unitStart) {
        unitDepth = depth;
        unitTokens = 1;
      }
    } else if (k === CLOSER) {
      if (depth === unitDepth) unitDepth = 0;
      depth--;
    } else if (k === COLON && depth === 1) {
      rootKey = lastString;
      if (rootKeys.has(rootKey) && (rootKey === 'version' || rootKey === 'entries')) throw new StargzFormatError(`stargz TOC: "${rootKey}" appears twice`);
      rootKeys.add(rootKey);
    }
  }
}
