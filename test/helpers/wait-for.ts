// Waiting in tests for something to happen, which fails the test when it does not happen in time
// (a wait loop that just ends would let the assertions after it run on a state never reached).

/** Resolves once `cond()` is true, checking every `intervalMs`; throws `timed out waiting for <what>` after `timeoutMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000, intervalMs = 5): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
