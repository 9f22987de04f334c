// `npm run demo`'s job end to end, as root: its lazy half starts a throwaway docker-registry, pushes a
// sample image (a static busybox, the sample tree and a 24 MiB file nobody reads), converts it, mounts
// it lazily with our daemon and runs a command in it with chroot. The command's output is checked
// against the original bytes, the mount must have fetched only a part of the image, and the mount's
// lazy-load report is written.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';

describe('nydusify-ts demo (lazy half)', () => {
  it('pushes, converts, mounts lazily and runs a command, fetching a fraction of the image', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'demo-e2e-'));
    try {
      const report = join(tmp, 'report.html');
      const r = spawnSync(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), '--log-level', 'warn', 'demo', '--json', '--report', report], { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp }, timeout: 180_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const { lazy } = JSON.parse(r.stdout) as { lazy: Record<string, unknown> & { seconds: Record<string, number> } };
      expect(lazy.registry).toMatch(/^127\.0\.0\.1:\d+$/);
      // md5 of the library's first 100000 bytes, computed by the demo from the original file
      expect(lazy.output).toMatch(/^[0-9a-f]{32} {2}-$/);
      const fetched = lazy.fetchedBytes as number;
      const image = lazy.nydusBytes as number;
      expect(fetched).toBeGreaterThan(0);
      // busybox (2 MB) and one library chunk, never the 24 MiB file
      expect(fetched).toBeLessThan(image / 4);
      expect(lazy.ociBytes as number).toBeGreaterThan(fetched * 4);
      // the mount's lazy-load report, drawn from its access trace: the busybox and library reads are in it
      expect(lazy.report).toBe(report);
      const page = readFileSync(report, 'utf8');
      expect(page).toContain('data-series="demand"');
      expect(page).toContain('/usr/lib/libdemo.so.1.0');
      expect(readdirSync(tmp)).toEqual(['report.html']); // the work directory, registry storage included, is gone
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
