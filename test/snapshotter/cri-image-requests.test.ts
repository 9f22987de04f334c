// The CRI keychain's reading of kubelet's image requests, against messages protobuf's own encoder
// makes (cri-api.proto), and on hostile bytes.
import { describe, expect, it } from 'vitest';
import { CriMessageError, pullAuth, requestImage } from '../../src/snapshotter/cri-image-requests.js';
import { encodeRequest } from './cri-api.js';

describe('CRI image requests', () => {
  it('reads the image and every credential field of a PullImage request', () => {
    const msg = encodeRequest('PullImage', {
      image: { image: 'registry.example:5000/team/app:v1', annotations: { a: 'b' } },
      auth: { username: 'u', password: 'p:w', auth: 'dTpw', serverAddress: 'https://registry.example:5000', identityToken: 'id', registryToken: 'rt' },
    });
    expect(requestImage(msg)).toBe('registry.example:5000/team/app:v1');
    expect(pullAuth(msg)).toEqual({ username: 'u', password: 'p:w', auth: 'dTpw', serverAddress: 'https://registry.example:5000', identityToken: 'id', registryToken: 'rt' });
  });

  it('has no credentials for a pull without auth, or with only empty fields', () => {
    expect(pullAuth(encodeRequest('PullImage', { image: { image: 'busybox' } }))).toBeUndefined();
    expect(pullAuth(encodeRequest('PullImage', { image: { image: 'busybox' }, auth: { username: '' } }))).toBeUndefined();
  });

  it('reads the image of a RemoveImage request', () => {
    expect(requestImage(encodeRequest('RemoveImage', { image: { image: 'docker.io/library/busybox:latest' } }))).toBe('docker.io/library/busybox:latest');
  });

  it('refuses truncated and malformed messages with a CriMessageError, whatever the bytes', () => {
    const good = encodeRequest('PullImage', { image: { image: 'busybox' }, auth: { username: 'u', password: 'p' } });
    for (let n = 1; n < good.length; n++) {
      const cut = good.subarray(0, n);
      try {
        requestImage(cut);
        pullAuth(cut);
      } catch (err) {
        expect(err).toBeInstanceOf(CriMessageError);
      }
    }
    expect(() => requestImage(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))).toThrow(CriMessageError); // length past the end
    expect(() => requestImage(Buffer.from([0x0b]))).toThrow(/groups/);
    expect(() => requestImage(Buffer.from([0x00]))).toThrow(/field number 0/);
    expect(() => requestImage(Buffer.alloc(11, 0x80))).toThrow(CriMessageError);
  });
});
