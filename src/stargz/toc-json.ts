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
