// The cache's fdatasync as a group commit: every caller is covered by a sync that started after its
// call, and calls made while one sync runs share the next.
import { describe, expect, it } from 'vitest';
import { groupCommit } from '../../src/blobcache/cache.js';

/** A sync whose runs the test ends one at a time; records when each started. */
function manualSync() {
  const started: number[] = [];
  const finish: Array<(err?: Error) => void> = [];
  let clock = 0;
  const sync = () => new Promise<void>((resolve, reject) => {
    started.push(clock);
    finish.push((err) => (err ? reject(err) : resolve()));
  });
  return { sync, started, finish, tick: () => clock++ };
}

const settled = (p: Promise<unknown>): Promise<boolean> => Promise.race([p.then(() => true, () => true), new Promise<boolean>((r) => setImmediate(() => r(false)))]);

describe('groupCommit', () => {
  it('runs one sync for the calls made while another runs, started after them', async () => {
    const m = manualSync();
    const commit = groupCommit(m.sync);
    const a = commit();
    m.tick();
    const b = commit();
    const c = commit();
    expect(m.started).toEqual([0]);
    m.finish[0]!();
    expect(await settled(a)).toBe(true);
    expect(await settled(b)).toBe(false); // b and c wait for the follow-up, which started after them
    expect(m.started).toEqual([0, 1]);
    m.tick();
    const d = commit(); // made while the follow-up runs: needs one more
    m.finish[1]!();
    expect(await settled(b)).toBe(true);
    expect(await settled(c)).toBe(true);
    expect(await settled(d)).toBe(false);
    expect(m.started).toEqual([0, 1, 2]);
    m.finish[2]!();
    expect(await settled(d)).toBe(true);
    expect(m.started).toHaveLength(3);
  });

  it('passes a failed sync on to its callers, and the next call syncs again', async () => {
    const m = manualSync();
    const commit = groupCommit(m.sync);
    const a = commit();
    m.finish[0]!(new Error('EIO'));
    await expect(a).rejects.toThrow('EIO');
    const b = commit();
    expect(m.started).toHaveLength(2);
    m.finish[1]!();
    await expect(b).resolves.toBeUndefined();
  });
});
