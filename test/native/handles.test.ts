// Regression: a handle of one kind (a zstd stream) passed where another (a hasher) is expected
// must be refused, not reinterpreted as the other type's memory.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/native/index.js';

const addon = createRequire(import.meta.url)(join(import.meta.dirname, '..', '..', 'native', 'nydusify-native.linux-x64-gnu.node')) as Record<string, (...a: unknown[]) => unknown>;

describe('regression: native handle confusion', () => {
  it('refuses a zstd stream handle as a hasher and a hasher as a zstd stream', () => {
    const stream = addon.zstdStreamCreate!();
    const hasher = addon.hasherCreate!('sha256');
    expect(() => addon.hasherUpdate!(stream, Buffer.from('x'))).toThrow(/hasher handle expected/);
    expect(() => addon.zstdStreamPush!(hasher, Buffer.from('x'))).toThrow(/zstd stream handle expected/);
    expect(() => addon.hasherFinish!({})).toThrow(/hasher handle expected/);
  });
});
