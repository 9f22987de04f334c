// Typed registry errors. Callers branch on `status` and `code` (from the registry's JSON errors body);
// the CLI prints `message` as its one line, so every message names the registry, the object and the cause.

export interface RegistryErrorDetails {
  /** HTTP status, when the failure was an HTTP answer. */
  status?: number;
  /** First `errors[].code` of the registry's JSON body, e.g. MANIFEST_UNKNOWN. */
  code?: string;
  url?: string;
  /** From a Retry-After header on 429/503. */
  retryAfterMs?: number;
  cause?: unknown;
}

export class RegistryError extends Error {
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly url: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, details: RegistryErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.status = details.status;
    this.code = details.code;
    this.url = details.url;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** Credentials missing, rejected, or a token server that refused them. */
export class AuthenticationError extends RegistryError {}

/** The registry could not be reached at all (refused, reset, timed out) after the bounded retries. */
export class RegistryUnreachableError extends RegistryError {}

/** Bytes whose digest is not the one they were asked for: a corrupted, truncated or substituted object. */
export class DigestMismatchError extends Error {
  constructor(
    readonly expected: string,
    readonly actual: string,
    readonly where: string,
  ) {
    super(`digest mismatch for ${expected} from ${where}: the bytes hash to ${actual}`);
    this.name = 'DigestMismatchError';
  }
}

interface RegistryErrorBody {
  errors?: { code?: unknown; message?: unknown; detail?: unknown }[];
  details?: unknown;
}

/** `CODE: message` from a distribution-spec errors body, or the body itself when it is not one. */
export function describeErrorBody(text: string): { code?: string; summary: string } {
  try {
    const body = JSON.parse(text) as RegistryErrorBody;
    const first = Array.isArray(body.errors) ? body.errors[0] : undefined;
    if (first && typeof first.code === 'string') {
      const message = typeof first.message === 'string' ? `: ${first.message}` : '';
      return { code: first.code, summary: `${first.code}${message}` };
    }
    if (typeof body.details === 'string') return { summary: body.details };
  } catch {
    // not JSON: fall through to the raw text
  }
  return { summary: text.trim().slice(0, 200) };
}

/** Parses Retry-After (seconds or an HTTP date) into milliseconds from now. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The error for an unexpected HTTP answer, e.g. `GET http://h/v2/r/manifests/x: 404 MANIFEST_UNKNOWN: manifest unknown`. */
export function responseError(method: string, url: string, status: number, bodyText: string, retryAfter?: string): RegistryError {
  const { code, summary } = describeErrorBody(bodyText);
  const tail = summary ? ` ${summary}` : '';
  return new RegistryError(`${method} ${url}: ${status}${tail}`, { status, code, url, retryAfterMs: parseRetryAfter(retryAfter) });
}
