// mountReadOnly: the syscall wrapper block mode mounts EROFS with. The failures here need no root
// and mount nothing; the mounts themselves are exercised end to end (test/e2e/block).
import { describe, expect, it } from 'vitest';
import { mountReadOnly } from '../../src/native/index.js';

describe('mountReadOnly', () => {
  it('regression: passes paths longer than 64 bytes whole (string arguments were cut at 64)', () => {
    const source = `/nonexistent/${'long-directory-name/'.repeat(8)}image.erofs`;
    expect(() => mountReadOnly('erofs', source, '/nonexistent-target')).toThrow(source);
  });

  it('refuses a NUL byte in an argument', () => {
    expect(() => mountReadOnly('erofs', 'a\0b', '/x')).toThrow(/NUL/);
  });
});
