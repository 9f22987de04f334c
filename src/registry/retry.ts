// Bounded retries with exponential backoff for transient failures: 5xx (but 501), 429, connections
// that were refused, reset or timed out, and bodies that ended early. Bounded both in attempts and in
// total time, so a registry that is down turns into one clear error within seconds instead of a hang.
import { log } from '../util/log.js';
import { RegistryError } from './errors.js';
import { BodyEndedEarlyError } from './transport.js';

export interface RetryPolicy {
  /** Total tries, the first included. */
  attempts: number;
  /** Delay before the second try; doubles each time (with jitter), capped by maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** No new try starts after this much time since the first. */
  maxElapsedMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 3, baseDelayMs: 200, maxDelayMs: 5_000, maxElapsedMs: 60_000 };

/** Socket-level error codes (Node and undici) after which the same request may well succeed. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** True for a connection-level failure (no HTTP answer at all). */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TRANSIENT_CODES.has(code) && !(err instanceof RegistryError);
}

function isTransientError(err: unknown): boolean {
  if (err instanceof BodyEndedEarlyError) return true;
  if (err instanceof RegistryError) {
    const status = err.status;
    return status !== undefined && ((status >= 500 && status !== 501) || status === 429);
  }
  return isConnectionError(err);
}

/** Delay before try number `attempt + 1` (attempt counts from 1): base·2^(attempt-1), ±25 % jitter, capped. */
function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const exponential = policy.baseDelayMs * 2 ** (attempt - 1);
  return Math.min(policy.maxDelayMs, Math.round(exponential * (0.75 + Math.random() * 0.5)));
}

const retryLog = log.child({ component: 'registry' });

/** Tries after the first made so far by every client of this process (the daemon's metrics show it). */
let retriesMade = 0;
export const retryCount = (): number => retriesMade;

/**
 * Runs `attempt` until it succeeds, fails with a non-transient error, or the policy is spent. `giveUp` turns
 * the last transient error and the number of tries into the error the caller sees.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  what: string,
  attempt: () => Promise<T>,
  giveUp: (err: unknown, attempts: number) => Error,
): Promise<T> {
  const started = Date.now();
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isTransientError(err)) throw err;
      const suggested = err instanceof RegistryError ? err.retryAfterMs : undefined;
      const delay = Math.min(policy.maxDelayMs, suggested ?? backoffDelay(policy, n));
      if (n >= policy.attempts || Date.now() - started + delay > policy.maxElapsedMs) throw giveUp(err, n);
      retryLog.warn('transient failure, retrying', { what, attempt: n, delayMs: delay, error: err });
      retriesMade++;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
