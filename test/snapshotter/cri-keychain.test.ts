import { describe, expect, it } from 'vitest';
import { CriKeychain, credentialsOf, MAX_IMAGES } from '../../src/snapshotter/cri-keychain.js';

describe('CRI keychain', () => {
  it('keeps a pull\'s user and password for that image, found by any spelling of its reference', () => {
    const k = new CriKeychain();
    k.remember('busybox', { username: 'u', password: 'p' });
    expect(k.credentialsFor('docker.io/library/busybox:latest')).toEqual({ username: 'u', password: 'p' });
    expect(k.credentialsFor('busybox:latest')).toEqual({ username: 'u', password: 'p' });
    expect(k.credentialsFor('127.0.0.1:5000/busybox:latest')).toBeUndefined();
  });

  it('takes base64 user:password (auth) when no user and password are given; tokens alone give nothing', () => {
    expect(credentialsOf({ auth: Buffer.from('me:pa:ss').toString('base64') })).toEqual({ username: 'me', password: 'pa:ss' });
    expect(credentialsOf({ identityToken: 't' })).toBeUndefined();
    expect(credentialsOf({ auth: Buffer.from('nocolon').toString('base64') })).toBeUndefined();
  });

  it('finds the latest pull of the same repository for a reference by digest', () => {
    const k = new CriKeychain();
    k.remember('r.example/app:v1', { username: 'a', password: '1' });
    k.remember('r.example/app:v2', { username: 'b', password: '2' });
    expect(k.credentialsFor(`r.example/app@sha256:${'a'.repeat(64)}`)).toEqual({ username: 'b', password: '2' });
    expect(k.credentialsFor('r.example/other:v1')).toBeUndefined();
  });

  it('drops credentials meant for another registry, and forgets an image removed or pulled again without any', () => {
    const k = new CriKeychain();
    k.remember('r.example/app:v1', { username: 'a', password: '1', serverAddress: 'https://elsewhere.example' });
    expect(k.credentialsFor('r.example/app:v1')).toBeUndefined();
    k.remember('busybox', { username: 'a', password: '1', serverAddress: 'https://index.docker.io/v1/' });
    expect(k.credentialsFor('busybox')).toEqual({ username: 'a', password: '1' });
    k.remember('busybox', undefined);
    expect(k.credentialsFor('busybox')).toBeUndefined();
    k.remember('r.example/app:v1', { username: 'a', password: '1', serverAddress: 'r.example' });
    k.forget('r.example/app:v1');
    expect(k.credentialsFor('r.example/app:v1')).toBeUndefined();
  });

  it('holds at most MAX_IMAGES images, the oldest going first', () => {
    const k = new CriKeychain();
    for (let i = 0; i <= MAX_IMAGES; i++) k.remember(`r.example/app${i}:v1`, { username: 'u', password: String(i) });
    expect(k.credentialsFor('r.example/app0:v1')).toBeUndefined();
    expect(k.credentialsFor(`r.example/app${MAX_IMAGES}:v1`)).toEqual({ username: 'u', password: String(MAX_IMAGES) });
  });
});
