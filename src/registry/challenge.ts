// WWW-Authenticate parsing (RFC 7235): one header may carry several challenges, each a scheme followed by
// comma-separated `key=value` / `key="quoted, value"` parameters, and a server may also send several headers.

export interface Challenge {
  /** Lowercased scheme: `bearer`, `basic`, ... */
  scheme: string;
  /** Lowercased parameter names → values (quotes and escapes removed). */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/** Parses one or more WWW-Authenticate header values; malformed trailing input is ignored. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseChallenges(h));

  const out: Challenge[] = [];
  let i = 0;
  const skip = (chars: RegExp): void => {
    while (i < header.length && chars.test(header[i]!)) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < header.length && TOKEN_CHAR.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  const quoted = (): string => {
    let value = '';
    i++; // opening quote
    while (i < header.length && header[i] !== '"') {
      if (header[i] === '\\' && i + 1 < header.length) i++;
      value += header[i++];
    }
    i++; // closing quote
    return value;
  };

  let current: Challenge | undefined;
  while (i < header.length) {
    skip(/[\s,]/);
    const start = i;
    const word = token();
    if (word === '') break;
    skip(/\s/);
    if (header[i] === '=' && current) {
      i++;
      skip(/\s/);
      current.params[word.toLowerCase()] = header[i] === '"' ? quoted() : token();
    } else if (header[i] === '=' && !current) {
      break; // parameters before any scheme: not a challenge
    } else {
      i = start + word.length;
      current = { scheme: word.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}
