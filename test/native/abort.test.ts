// Calls that must throw but have taken the whole process down (a failed Rust allocation aborts):
// each runs in a child process (abort-probe.ts through vite-node, which loads the TypeScript
// wrapper like vitest does) so that a crash fails one test instead of the whole run.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const viteNode = join(dirname(createRequire(import.meta.url).resolve('vite-node/package.json')), 'vite-node.mjs');

function runProbe(name: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [viteNode, join(here, 'abort-probe.ts'), name], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

it.each([
  'zstd decompress, size 2^50',
  'lz4_block decompress, size 2^40',
  'zstd decompressBatch, size 2^50',
  'zstd frame declaring 2^45 bytes, default maxSize',
  'zstd frame declaring 2^45 bytes, maxSize 2^50',
])('%s: an Error with a code, not an abort', (name) => {
  const r = runProbe(name);
  expect(r.status, `the process died: ${r.stderr.trim().split('\n')[0]}`).toBe(0);
  expect(JSON.parse(r.stdout).code).toMatch(/^ERR_NATIVE_(SIZE|ARGUMENT|CORRUPT)$/);
});
