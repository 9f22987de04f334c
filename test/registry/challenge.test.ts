import { describe, expect, it } from 'vitest';
import { parseChallenges } from '../../src/registry/challenge.js';

describe('parseChallenges', () => {
  it('reads a distribution Bearer challenge', () => {
    expect(parseChallenges('Bearer realm="http://127.0.0.1:5002/token",service="e2e-registry",scope="repository:foo/bar:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'http://127.0.0.1:5002/token', service: 'e2e-registry', scope: 'repository:foo/bar:pull' } },
    ]);
  });

  it('reads Basic with a realm', () => {
    expect(parseChallenges('Basic realm="e2e-realm"')).toEqual([{ scheme: 'basic', params: { realm: 'e2e-realm' } }]);
  });

  it('splits several challenges in one header, with commas and escapes inside quotes and unquoted tokens', () => {
    const header = 'Basic realm="a, \\"quoted\\" b", Bearer realm="https://auth.example/token", service=registry.example ,error="insufficient_scope"';
    expect(parseChallenges(header)).toEqual([
      { scheme: 'basic', params: { realm: 'a, "quoted" b' } },
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', error: 'insufficient_scope' } },
    ]);
  });

  it('merges several header values and lowercases schemes and parameter names', () => {
    expect(parseChallenges(['BASIC Realm="x"', 'bearer REALM="y"'])).toEqual([
      { scheme: 'basic', params: { realm: 'x' } },
      { scheme: 'bearer', params: { realm: 'y' } },
    ]);
  });

  it('gives nothing for a missing or malformed header', () => {
    expect(parseChallenges(undefined)).toEqual([]);
    expect(parseChallenges('')).toEqual([]);
    expect(parseChallenges('realm="x"')).toEqual([]);
  });
});
