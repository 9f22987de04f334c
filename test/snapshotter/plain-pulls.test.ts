// The fast pull's pacing (plain-pulls.ts PullProgress): an image's layers together are read no
// faster than the bandwidth given, and not held back at all without one.
import { describe, expect, it } from 'vitest';
import { PullProgress } from '../../src/snapshotter/plain-pulls.js';

describe('PullProgress', () => {
  it('asks to wait as long as the bytes so far are ahead of the bandwidth', () => {
    const paced = new PullProgress('r', 10e6, 1e6);
    // half a second's worth, at once: about half a second to wait
    const wait = paced.took(500_000);
    expect(wait).toBeGreaterThan(450);
    expect(wait).toBeLessThanOrEqual(500);
    // more on top (several layers share the pace): longer
    expect(paced.took(500_000)).toBeGreaterThan(wait);
  });

  it('never asks to wait without a bandwidth', () => {
    const free = new PullProgress('r', 10e6);
    expect(free.took(5e6)).toBe(0);
    expect(free.took(5e6)).toBe(0);
  });
});
