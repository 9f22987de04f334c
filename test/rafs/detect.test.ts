import { expect, it } from 'vitest';
import { detectRafsVersion } from '../../src/rafs/detect.js';
import { describeFixtures, lazyFixture, untarFixture } from '../helpers/fixtures.js';

const boot = lazyFixture('bootstrap', 'rafs-v6-2.2.boot');

describeFixtures('detectRafsVersion', () => {
  it('detects the v6 fixture', () => {
    expect(detectRafsVersion(boot().subarray(0, 8192))).toBe('v6');
  });

  it('detects the v5 snapshotter fixture', () => {
    const v5 = untarFixture('v5-bootstrap-file-size-736032.tar.gz', 'image/image.boot');
    expect(v5.length).toBe(736032);
    expect(detectRafsVersion(v5.subarray(0, 8192))).toBe('v5');
  });

  it('says unknown for the invalid fixtures and short inputs', () => {
    expect(detectRafsVersion(untarFixture('invalid-bootstrap-file-size-133513.tar.gz', 'image/image.boot').subarray(0, 8192))).toBe('unknown');
    expect(detectRafsVersion(untarFixture('invalid.tar.gz', 'README.md'))).toBe('unknown');
    expect(detectRafsVersion(Buffer.alloc(0))).toBe('unknown');
    expect(detectRafsVersion(boot().subarray(0, 1407))).toBe('unknown');
    const v4 = Buffer.from('534641520004000000200000', 'hex');
    expect(detectRafsVersion(v4)).toBe('unknown');
  });
});
