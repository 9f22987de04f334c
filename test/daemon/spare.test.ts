// A spare daemon's assignment is input from a socket: every field checked, nothing else taken.
import { describe, expect, it } from 'vitest';
import { parseAssignment } from '../../src/daemon/spare.js';

const good = { id: 'i-1', apisock: '/r/i-1.sock', mountpoint: '/r/mnt/i-1', mode: 'dedicated', config: '/r/i-1.config.json', block: false };

describe('spare daemon assignment', () => {
  it('takes the flags a daemon is started with', () => {
    expect(parseAssignment(JSON.stringify(good))).toEqual(good);
    expect(parseAssignment(JSON.stringify({ ...good, mode: 'shared', block: true }))).toMatchObject({ mode: 'shared', block: true });
  });

  it.each([
    ['not an object', '[]', 'expected a JSON object'],
    ['a missing id', JSON.stringify({ ...good, id: undefined }), '"id" must be a non-empty string'],
    ['an empty mountpoint', JSON.stringify({ ...good, mountpoint: '' }), '"mountpoint" must be a non-empty string'],
    ['an unknown mode', JSON.stringify({ ...good, mode: 'nbd' }), '"mode" must be "dedicated" or "shared"'],
    ['a block flag as text', JSON.stringify({ ...good, block: 'yes' }), '"block" must be a boolean'],
    ['an extra key', JSON.stringify({ ...good, target: 'x' }), 'unknown keys: target'],
  ])('refuses %s', (_what, body, message) => {
    expect(() => parseAssignment(body)).toThrow(message);
  });
});
