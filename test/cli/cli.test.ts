// Runs the built CLI (dist/cli/main.js) as a user would, with stderr a pipe (not a terminal).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { manyChunksBootstrap } from '../rafs/helpers.js';

const repo = join(import.meta.dirname, '..', '..');
const COMMANDS = ['cache', 'check', 'convert', 'create', 'daemon', 'demo', 'export', 'inspect', 'merge', 'mount', 'optimize', 'report', 'snapshotter', 'unpack'];

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, ['dist/cli/main.js', ...args], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, NYDUSIFY_LOG_LEVEL: undefined, ...env },
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const stderrLines = (stderr: string): string[] => stderr.split('\n').filter(Boolean);

describe('nydusify-ts', () => {
  it('--help lists every subcommand', () => {
    const { status, stdout } = run(['--help']);
    expect(status).toBe(0);
    const commands = stdout.split('Commands:\n')[1].split('\n').map((line) => line.trim().split(/\s+/)[0]?.split('|')[0]).filter(Boolean);
    expect(commands).toEqual(expect.arrayContaining(COMMANDS));
    expect(stdout).toContain('--log-level <level>');
  });

  it('--version prints the version from package.json', () => {
    const { version } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };
    expect(run(['--version']).stdout.trim()).toBe(version);
  });

  it('rejects an unknown command and an unknown log level', () => {
    const unknown = run(['frobnicate']);
    expect(unknown.status).not.toBe(0);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    const badLevel = run(['demo'], { NYDUSIFY_LOG_LEVEL: 'loud' });
    expect(badLevel.status).not.toBe(0);
    expect(badLevel.stderr).toContain("value 'loud' from env 'NYDUSIFY_LOG_LEVEL' is invalid");
  });

  it('reports an error a command throws as one line and exit 1, with the stack at debug level', () => {
    const plain = run(['demo', '--chunk-size', '5000']);
    expect(plain.status).toBe(1);
    expect(plain.stderr).toBe('nydusify-ts demo: chunk size must be a power of two from 4096 to 16777216, got 5000\n');
    const debug = run(['--log-level', 'debug', 'demo', '--chunk-size', '5000']);
    expect(debug.status).toBe(1);
    expect(stderrLines(debug.stderr)[0]).toBe(plain.stderr.trim());
    expect(debug.stderr).toMatch(/\n\s+at assertChunkSize /);
  });
});

describe('nydusify-ts demo', () => {
  it('--json reports consistent numbers: duplicates found, blob smaller than the data', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cli-test-'));
    try {
      const { status, stdout } = run(['demo', '--json', '--no-lazy'], { TMPDIR: tmp });
      expect(status).toBe(0);
      const summary = JSON.parse(stdout) as Record<string, number>;
      expect(summary.files).toBe(6);
      expect(summary.chunkSize).toBe(1 << 20);
      expect(summary.chunks).toBeGreaterThanOrEqual(Math.ceil(summary.bytes / summary.chunkSize));
      expect(summary.uniqueChunks).toBeLessThan(summary.chunks); // the vendored library copy dedups
      expect(summary.compressedBytes).toBeLessThan(summary.bytes - 5 * 2 ** 20);
      expect(summary.verifiedFiles).toBe(6);
      expect(summary.readBack).toBe(process.getuid?.() === 0 ? 'kernel-mount' : 'blob-reader');
      const fuse = process.getuid?.() === 0 && existsSync('/dev/fuse');
      expect(summary.fuseDaemon).toBe(fuse);
      expect(summary.blockMode).toBe(fuse);
      expect(summary.osRelease).toBe('NAME="Nydus demo"');
      expect(summary.lazy).toEqual({ skipped: 'not asked for' }); // the lazy half is test/e2e/demo.test.ts
      expect(summary.ratio).toBeCloseTo(summary.bytes / summary.compressedBytes, 6);
      expect(summary.layerBytes).toBeGreaterThan(summary.bytes); // tar headers and padding
      expect(readdirSync(tmp)).toEqual([]); // the work directory is gone
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('prints a table by default', () => {
    const { status, stdout } = run(['demo', '--no-lazy', '--chunk-size', '0x10000']);
    expect(status).toBe(0);
    const labels = stdout.split('\n').filter(Boolean).map((line) => line.split(/\s{2,}/)[0]);
    expect(labels).toEqual(['layer', 'files', 'bytes', 'chunks', 'unique chunks', 'compressed', 'bootstrap', 'ratio', 'convert time', 'read back', 'os-release', 'lazy mount']);
    expect(stdout).toMatch(/^chunks +\d+ \(at most 64\.0 KiB each, blake3 digests\)$/m);
  });

  it('logs JSON lines to stderr when stderr is not a terminal, keeping stdout for the result', () => {
    const { status, stdout, stderr } = run(['--log-level', 'debug', 'demo', '--json', '--no-lazy']);
    expect(status).toBe(0);
    expect(() => JSON.parse(stdout)).not.toThrow();
    const records = stderrLines(stderr).map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const record of records) expect(record).toMatchObject({ time: expect.any(String), level: expect.any(String), msg: expect.any(String) });
    expect(records.filter((record) => record.msg === 'file verified').map((record) => record.path)).toContain('usr/lib/libdemo.so.1.0');
    expect(records.some((record) => record.level === 'info' && record.msg === 'sample layer built')).toBe(true);
  });

  it('inspect prints each blob with its own chunk size', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-inspect-'));
    try {
      const boot = join(dir, 'a.boot');
      writeFileSync(boot, manyChunksBootstrap(2, 2));
      const { status, stdout } = run(['inspect', boot, '--no-tree']);
      expect(status).toBe(0);
      expect(stdout).toMatch(/^blob 0 [0-9a-f]{64} \d+ chunks of 0x1000 /m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
