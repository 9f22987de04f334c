// Pure rules: which labels make a layer remote (and which are refused), and containerd's filter
// syntax as List receives it.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/snapshotter/errors.js';
import { parseFilters } from '../../src/snapshotter/filters.js';
import { checkLabels, Label, remoteLayer } from '../../src/snapshotter/labels.js';

const D = `sha256:${'ab'.repeat(32)}`;

describe('labels', () => {
  it('recognises Nydus layers from rpull (stargz.*) and CRI (cri.*) labels', () => {
    expect(remoteLayer({ [Label.NYDUS_BLOB]: 'true', [Label.STARGZ_REF]: '127.0.0.1:5000/a/b:t', [Label.STARGZ_DIGEST]: D })).toEqual({ ref: '127.0.0.1:5000/a/b:t', digest: D, role: 'blob' });
    expect(remoteLayer({ [Label.NYDUS_BOOTSTRAP]: 'true', [Label.CRI_REF]: 'docker.io/library/x:1', [Label.CRI_DIGEST]: D })?.role).toBe('bootstrap');
  });

  it('treats layers without Nydus marks or without a ref/digest as ordinary (containerd unpacks them)', () => {
    expect(remoteLayer({})).toBeUndefined();
    expect(remoteLayer({ [Label.STARGZ_REF]: 'r.io/a:b', [Label.STARGZ_DIGEST]: D })).toBeUndefined();
    expect(remoteLayer({ [Label.NYDUS_BLOB]: 'true', [Label.STARGZ_DIGEST]: D })).toBeUndefined();
    expect(remoteLayer({ [Label.NYDUS_BLOB]: 'false', [Label.STARGZ_REF]: 'r.io/a:b', [Label.STARGZ_DIGEST]: D })).toBeUndefined();
  });

  it('takes the image registry\'s credentials from nydus-snapshotter\'s pull secret labels, both or neither', () => {
    const layer = { [Label.NYDUS_BOOTSTRAP]: 'true', [Label.CRI_REF]: '127.0.0.1:5003/a/b:t', [Label.CRI_DIGEST]: D };
    expect(remoteLayer({ ...layer, [Label.PULL_USERNAME]: 'u', [Label.PULL_SECRET]: 'p:w' })).toEqual({ ref: '127.0.0.1:5003/a/b:t', digest: D, role: 'bootstrap', auth: { username: 'u', password: 'p:w' } });
    expect(() => remoteLayer({ ...layer, [Label.PULL_USERNAME]: 'u' })).toThrow(/the pull secret labels go together/);
    expect(() => remoteLayer({ ...layer, [Label.PULL_SECRET]: 'p' })).toThrow(/the pull secret labels go together/);
    expect(() => remoteLayer({ ...layer, [Label.PULL_USERNAME]: '', [Label.PULL_SECRET]: 'p' })).toThrow(/neither empty/);
    expect(() => remoteLayer({ ...layer, [Label.PULL_USERNAME]: 'a:b', [Label.PULL_SECRET]: 'p' })).toThrow(/a user name has no colon/);
  });

  it('names a Nydus data layer\'s image top (its bootstrap) from the layers label, only when the label cannot have been cut short', () => {
    const digest = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
    const blob = { [Label.NYDUS_BLOB]: 'true', [Label.STARGZ_REF]: 'r.io/a:b', [Label.STARGZ_DIGEST]: digest(1) };
    const layers = (key: string, ...n: number[]): Record<string, string> => ({ ...blob, [key]: n.map(digest).join(',') });
    expect(remoteLayer(layers(Label.STARGZ_LAYERS, 1, 2, 3))?.top).toBe(digest(3));
    expect(remoteLayer(layers(Label.CRI_LAYERS, 1, 9))?.top).toBe(digest(9));
    // the list must start at this layer and hold digests; a layer alone, or a bootstrap, names no top
    for (const labels of [layers(Label.STARGZ_LAYERS, 2, 3), { ...blob, [Label.STARGZ_LAYERS]: `${digest(1)},latest` }, layers(Label.STARGZ_LAYERS, 1), { ...layers(Label.STARGZ_LAYERS, 1, 2), [Label.NYDUS_BLOB]: 'false', [Label.NYDUS_BOOTSTRAP]: 'true' }]) {
      expect(remoteLayer(labels)?.top).toBeUndefined();
    }
    // 56 digests fill the label so that a 57th would not fit: containerd may have dropped the top ones
    const full = Array.from({ length: 56 }, (_, i) => i + 1);
    expect(Label.STARGZ_LAYERS.length + full.map(digest).join(',').length + 72).toBeGreaterThan(4096);
    expect(remoteLayer(layers(Label.STARGZ_LAYERS, ...full))?.top).toBeUndefined();
    expect(remoteLayer(layers(Label.STARGZ_LAYERS, ...full.slice(0, 55)))?.top).toBe(digest(55));
  });

  it('refuses malformed refs and digests instead of mounting them', () => {
    expect(() => remoteLayer({ [Label.NYDUS_BLOB]: 'true', [Label.STARGZ_REF]: 'a b', [Label.STARGZ_DIGEST]: D })).toThrow(InvalidArgumentError);
    expect(() => remoteLayer({ [Label.NYDUS_BLOB]: 'true', [Label.STARGZ_REF]: `r.io/${'a'.repeat(2000)}`, [Label.STARGZ_DIGEST]: D })).toThrow(InvalidArgumentError);
    expect(() => remoteLayer({ [Label.NYDUS_BLOB]: 'true', [Label.STARGZ_REF]: 'r.io/a:b', [Label.STARGZ_DIGEST]: 'sha256:zz' })).toThrow(InvalidArgumentError);
  });

  it('bounds labels: size, count, types, NUL', () => {
    expect(checkLabels(undefined)).toEqual({});
    expect(() => checkLabels({ k: 'v'.repeat(4096) })).toThrow(/4096/);
    expect(() => checkLabels(Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, 'v'])))).toThrow(/more than/);
    expect(() => checkLabels({ k: 5 })).toThrow(/string/);
    expect(() => checkLabels({ 'a\0b': 'v' })).toThrow(/NUL/);
    expect(() => checkLabels(['x'])).toThrow(/map/);
  });
});

describe('filters', () => {
  const info = { name: 'sha256:abc', parent: 'default/3/p', kind: 'committed', labels: { 'containerd.io/snapshot.ref': 'sha256:abc', a: 'x,y' } as Record<string, string> };
  const get = (path: string[]): string | undefined => {
    const [f, ...rest] = path;
    if (f === 'labels') return info.labels[rest.join('.')];
    return (info as unknown as Record<string, string>)[f!];
  };

  it('matches what containerd sends to find a remote commit', () => {
    expect(parseFilters(['labels."containerd.io/snapshot.ref"==sha256:abc,parent=="default/3/p"'])(get)).toBe(true);
    expect(parseFilters(['labels."containerd.io/snapshot.ref"==sha256:abc,parent=="other"'])(get)).toBe(false);
  });

  it('ORs filters, ANDs selectors; presence, !=, ~=', () => {
    expect(parseFilters([])(get)).toBe(true);
    expect(parseFilters(['name==nope', 'kind==committed'])(get)).toBe(true);
    expect(parseFilters(['labels.a'])(get)).toBe(true);
    expect(parseFilters(['labels.b'])(get)).toBe(false);
    expect(parseFilters(['kind!=active'])(get)).toBe(true);
    expect(parseFilters(['name~=^sha256:a'])(get)).toBe(true);
    expect(parseFilters(['labels.a=="x,y"'])(get)).toBe(true);
  });

  it('rejects malformed filters as invalid arguments', () => {
    expect(() => parseFilters(['labels."open'])).toThrow(InvalidArgumentError);
    expect(() => parseFilters(['name~=/(/'])).toThrow(InvalidArgumentError);
    expect(() => parseFilters(['name=='.padEnd(9000, 'x')])).toThrow(InvalidArgumentError);
    expect(() => parseFilters(['!!'])).toThrow(InvalidArgumentError);
  });
});
