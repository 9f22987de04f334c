// What a successor reads back from a supervisor (the state a daemon handed over with its FUSE
// connection): checked, since it comes back as bytes from another process.
import { describe, expect, it } from 'vitest';
import { parseHandoverState } from '../../src/daemon/daemon.js';

const state = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('parseHandoverState', () => {
  it('reads the mode and the mounts, each spec checked as a mount request is', () => {
    const s = parseHandoverState(state({ format: 'nydusify-ts handover 1', mode: 'dedicated', mounts: [{ name: '/', spec: { target: 'r.example/a:b', prefetch: true } }] }));
    expect(s).toEqual({ format: 'nydusify-ts handover 1', mode: 'dedicated', mounts: [{ name: '/', spec: { target: 'r.example/a:b', prefetch: true } }] });
  });

  it.each([
    [Buffer.from('not json'), /not JSON/],
    [state({ format: 'nydusd 2.2', mode: 'dedicated', mounts: [] }), /not a nydusify-ts handover 1 state/],
    [state({ format: 'nydusify-ts handover 1', mode: 'fscache', mounts: [] }), /mode must be dedicated or shared/],
    [state({ format: 'nydusify-ts handover 1', mode: 'shared', mounts: {} }), /mounts must be a list/],
    [state({ format: 'nydusify-ts handover 1', mode: 'shared', mounts: [{ name: 1, spec: {} }] }), /mounts\[0\]\.name must be a string/],
    [state({ format: 'nydusify-ts handover 1', mode: 'shared', mounts: [{ name: 'a', spec: { target: 'r/x', blobDir: '/d' } }] }), /blobDir goes with bootstrap/],
  ])('refuses %s', (bytes, message) => {
    expect(() => parseHandoverState(bytes)).toThrow(message);
  });
});
