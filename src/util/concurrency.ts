// Running async work over many items with a bound on how much runs at once.

/**
 * Runs `fn` over `items` with at most `limit` in flight. After the first failure no new item is
 * started; the call rejects with that failure once the running ones have settled, so nothing is
 * left writing behind the caller's back (e.g. into a directory it is about to remove).
 */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failure) {
      try {
        await fn(items[next++]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}
