// Long loops on the daemon's main thread — walking a big image, building its chunk tables — run in
// slices: between slices the event loop serves API requests, FUSE replies and backend fetches.

/** How long one slice may hold the event loop. */
const SLICE_MS = 10;

/** Calls `visit` for each of `items` in turn, letting the event loop run at least every SLICE_MS. */
export async function forEachInSlices<T>(items: Iterable<T>, visit: (item: T) => void): Promise<void> {
  let sliceEnd = performance.now() + SLICE_MS;
  for (const item of items) {
    visit(item);
    if (performance.now() < sliceEnd) continue;
    await new Promise<void>((resolve) => setImmediate(resolve));
    sliceEnd = performance.now() + SLICE_MS;
  }
}
