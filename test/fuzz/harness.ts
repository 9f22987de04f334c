// What every fuzz target shares: how many cases to run (a slice under `npm test`, FUZZ_RUNS under
// `npm run fuzz`), a property runner that times every case (none may take a second) and records the
// slowest, and byte mutations of real samples (bit flips, boundary values in integer fields,
// truncation, splices, insertions and deletions) as fast-check arbitraries, so a failure shrinks to
// a short list of edits of a known sample.
import fc from 'fast-check';
import { performance } from 'node:perf_hooks';

/** No single case may take longer than this. */
export const CASE_BUDGET_MS = 1000;

/** Cases per target: FUZZ_RUNS when set (npm run fuzz), else the target's slice for npm test. */
export function caseCount(slice: number): number {
  const wanted = Number(process.env.FUZZ_RUNS);
  return Number.isSafeInteger(wanted) && wanted > 0 ? wanted : slice;
}

/** A vitest timeout for `runs` cases of a target whose cases usually take `typicalMs`. */
export function timeoutFor(runs: number, typicalMs: number): number {
  return Math.max(60_000, runs * typicalMs * 20);
}

export interface FuzzStats {
  target: string;
  cases: number;
  totalMs: number;
  slowestMs: number;
  slowestCase: string;
  /** Cases whose first run went over budget but a rerun did not (scheduling noise). */
  noisyRuns: number;
}

/** Milliseconds one check of `input` takes; `onFail` is told before a failure propagates. */
async function timed<T>(check: (input: T) => void | Promise<void>, input: T, onFail: () => void): Promise<number> {
  const t0 = performance.now();
  try {
    await check(input);
  } catch (err) {
    onFail();
    throw err;
  }
  return performance.now() - t0;
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Runs `check` on `runs` generated cases (fixed seed: a failure replays). A case fails when `check`
 * throws (it throws only for what the target must never do) or takes CASE_BUDGET_MS or more.
 * Returns the timing; prints one line per target so `npm run fuzz` reports them.
 */
export async function fuzz<T>(target: string, arb: fc.Arbitrary<T>, check: (input: T) => void | Promise<void>, opts: { runs: number; seed: number; describe?: (input: T) => string }): Promise<FuzzStats> {
  const stats: FuzzStats = { target, cases: 0, totalMs: 0, slowestMs: 0, slowestCase: '', noisyRuns: 0 };
  const started = performance.now();
  // after the first failure fast-check shrinks it: those reruns are not cases
  let failed = false;
  await fc.assert(
    fc.asyncProperty(arb, async (input) => {
      // the runner's RPC and timers need the event loop now and then during long synchronous runs
      if (stats.cases % 128 === 0) await yieldToEventLoop();
      let ms = await timed(check, input, () => (failed = true));
      // a busy machine (other test runs, GC of earlier cases) can stretch one run: a slow case is
      // slow only if it is slow every time
      if (ms >= CASE_BUDGET_MS) stats.noisyRuns++;
      for (let retry = 0; retry < 2 && ms >= CASE_BUDGET_MS; retry++) ms = Math.min(ms, await timed(check, input, () => (failed = true)));
      if (!failed) {
        stats.cases++;
        if (ms > stats.slowestMs) {
          stats.slowestMs = ms;
          stats.slowestCase = (opts.describe ?? fc.stringify)(input);
        }
      }
      if (ms >= CASE_BUDGET_MS) {
        failed = true;
        throw new Error(`case took ${ms.toFixed(0)} ms (budget ${CASE_BUDGET_MS} ms)`);
      }
    }),
    { numRuns: opts.runs, seed: opts.seed },
  );
  stats.totalMs = performance.now() - started;
  console.log(`[fuzz] ${target}: ${stats.cases} cases in ${(stats.totalMs / 1000).toFixed(1)} s, slowest ${stats.slowestMs.toFixed(1)} ms, ${stats.noisyRuns} first runs over budget (${stats.slowestCase.slice(0, 300)})`);
  return stats;
}

// ------------------------------------------------------------------------------ byte mutations

/** Integers at the edges of the widths on-disk formats use. */
export const BOUNDARY_VALUES = [0n, 1n, 2n, 7n, 8n, 0x7fn, 0x80n, 0xffn, 0x100n, 0xfffn, 0x1000n, 0x1001n, 0x7fffn, 0x8000n, 0xffffn, 0x10000n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 0x1fffffffffffffn, 0x20000000000000n, 0x7fffffffffffffffn, 0xffffffffffffffffn];

export type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'byte'; at: number; value: number }
  | { op: 'int'; at: number; width: 1 | 2 | 4 | 8; value: bigint; bigEndian: boolean }
  | { op: 'truncate'; length: number }
  | { op: 'splice'; from: number; to: number; length: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; length: number };

/**
 * Edits of a buffer. Positions are taken modulo the buffer's length when applied (so they shrink
 * toward the start); `hot` offsets (fields worth hitting) are picked half of the time.
 */
export function mutationArb(hot: readonly number[] = [], opts: { shifts?: boolean } = {}): fc.Arbitrary<Mutation> {
  const at = hot.length > 0 ? fc.oneof(fc.nat(), fc.constantFrom(...hot)) : fc.nat();
  const kinds: fc.Arbitrary<Mutation>[] = [
    fc.record({ op: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ op: fc.constant('byte' as const), at, value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ op: fc.constant('int' as const), at, width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const), value: fc.oneof(fc.constantFrom(...BOUNDARY_VALUES), fc.bigInt({ min: 0n, max: 0xffffffffffffffffn })), bigEndian: fc.boolean() }),
    fc.record({ op: fc.constant('truncate' as const), length: fc.nat() }),
    fc.record({ op: fc.constant('splice' as const), from: fc.nat(), to: at, length: fc.integer({ min: 1, max: 4096 }) }),
  ];
  if (opts.shifts) {
    kinds.push(
      fc.record({ op: fc.constant('insert' as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 600 }) }),
      fc.record({ op: fc.constant('delete' as const), at, length: fc.integer({ min: 1, max: 1024 }) }),
    );
  }
  return fc.oneof(...kinds);
}

/** 1–`max` edits. */
export const mutationsArb = (hot: readonly number[] = [], opts: { shifts?: boolean; max?: number } = {}): fc.Arbitrary<Mutation[]> =>
  fc.array(mutationArb(hot, opts), { minLength: 1, maxLength: opts.max ?? 6 });

/** `seed` with `edits` applied, in order (a fresh buffer; the seed is not touched). */
export function applyMutations(seed: Buffer, edits: readonly Mutation[]): Buffer {
  let buf = Buffer.from(seed);
  for (const m of edits) {
    if (buf.length === 0) break;
    switch (m.op) {
      case 'flip':
        buf[m.at % buf.length]! ^= 1 << m.bit;
        break;
      case 'byte':
        buf[m.at % buf.length] = m.value;
        break;
      case 'int': {
        const at = m.at % buf.length;
        const field = Buffer.alloc(8);
        const value = BigInt.asUintN(m.width * 8, m.value);
        if (m.bigEndian) field.writeBigUInt64BE(value << BigInt(64 - m.width * 8));
        else field.writeBigUInt64LE(value);
        field.copy(buf, at, 0, Math.min(m.width, buf.length - at));
        break;
      }
      case 'truncate':
        buf = buf.subarray(0, m.length % buf.length);
        break;
      case 'splice': {
        const from = m.from % buf.length;
        buf.copy(buf, m.to % buf.length, from, Math.min(buf.length, from + m.length));
        break;
      }
      case 'insert': {
        const at = m.at % (buf.length + 1);
        buf = Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]);
        break;
      }
      case 'delete': {
        const at = m.at % buf.length;
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.length)]);
        break;
      }
    }
  }
  return buf;
}

/** A short description of a mutated case: which sample, which edits (bigints as hex). */
export function describeEdits(sample: string, edits: readonly Mutation[]): string {
  return `${sample} + ${JSON.stringify(edits, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))}`;
}

/** Whether `err` is one of the `allowed` classes; anything else is rethrown with the case attached. */
export function expectTyped(err: unknown, allowed: readonly (abstract new (...args: never[]) => Error)[], what: string): void {
  if (allowed.some((cls) => err instanceof cls)) return;
  const e = err as Error;
  throw new Error(`${what}: untyped ${e?.constructor?.name ?? typeof err}: ${e?.stack ?? String(err)}`);
}
