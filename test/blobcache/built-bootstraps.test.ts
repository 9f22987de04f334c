// Built bootstraps in the cache directory: kept whole under a hex key, read back, refused for a
// key that could name another path, and collected by cache GC once their images' blobs are gone.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BuiltBootstraps } from '../../src/blobcache/built-bootstraps.js';
import { CacheGc } from '../../src/blobcache/cache-gc.js';
import { manyChunksBootstrap } from '../rafs/helpers.js';

const work = mkdtempSync(join(tmpdir(), 'built-bootstraps-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const KEY = 'ab'.repeat(32);

describe('BuiltBootstraps', () => {
  it('keeps a bootstrap whole under its key and reads it back; nothing kept is undefined', async () => {
    const built = new BuiltBootstraps(join(work, 'a'));
    expect(await built.get(KEY)).toBeUndefined();
    await built.put(KEY, Buffer.from('bootstrap bytes'));
    expect((await built.get(KEY))!.toString()).toBe('bootstrap bytes');
    expect(readdirSync(built.dir)).toEqual([`built-${KEY}.boot`]);
  });

  it('refuses a key that is not 64 lowercase hex (it could name another path)', async () => {
    const built = new BuiltBootstraps(join(work, 'b'));
    await expect(built.put('../../etc/passwd', Buffer.alloc(1))).rejects.toThrow(/not 64 lowercase hex/);
    await expect(built.get('AB'.repeat(32))).rejects.toThrow(/not 64 lowercase hex/);
  });

  it('a build under way (holding the lock) is waited for, not repeated; the lock file goes once it is kept', async () => {
    const built = new BuiltBootstraps(join(work, 'lock'));
    const key = 'cd'.repeat(32);
    const lock = (await built.lock(key))!;
    let builds = 0;
    const waiting = built.getOrBuild(key, (b) => b.toString(), async () => {
      builds++;
      return Buffer.from('second');
    });
    await new Promise((r) => setTimeout(r, 50));
    await built.put(key, Buffer.from('first'));
    lock.release(true);
    expect(await waiting).toEqual({ bootstrap: Buffer.from('first'), opened: 'first' });
    expect(builds).toBe(0);
    expect(readdirSync(built.dir)).toEqual([`built-${key}.boot`]);
  });

  it('builds anyway when the lock is not given up in time', async () => {
    const built = new BuiltBootstraps(join(work, 'stuck'), 100);
    const key = 'ef'.repeat(32);
    await built.lock(key);
    const { bootstrap } = await built.getOrBuild(key, (b) => b, async () => Buffer.from('built'));
    expect(bootstrap.toString()).toBe('built');
  });

  it('cache GC removes a built bootstrap whose blobs are no longer cached, and leaves other files', async () => {
    const dir = join(work, 'gc');
    const built = new BuiltBootstraps(dir);
    await built.put(KEY, manyChunksBootstrap(2, 2));
    writeFileSync(join(dir, 'notes.txt'), 'not a bootstrap');
    const { bootstraps } = await new CacheGc(dir).collect(new Set());
    expect(bootstraps).toEqual([`built-${KEY}.boot`]);
    expect(existsSync(join(dir, `built-${KEY}.boot`))).toBe(false);
    expect(existsSync(join(dir, 'notes.txt'))).toBe(true);
  });
});
