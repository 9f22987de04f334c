// Global setup of the end-to-end tier (test/e2e, see vitest.config.ts): builds dist/ and starts the
// parts of the harness in scripts/e2e that many files share — the registries (plain :5000, basic auth
// :5001, token server :5002, token registry :5003) and the test images (busybox, debian-ml, …). Runs
// once, in vitest's main process, before any test file, so the first image build (minutes on a fresh
// machine) cannot stall a test worker; the files' own calls then return at once.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { buildDist } from './build-dist.js';
import { E2E_SCRIPTS } from './helpers/e2e.js';

function run(script: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(E2E_SCRIPTS, script), args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`scripts/e2e/${script} ${args.join(' ')} exited ${code}`))));
  });
}

export default async function setup(): Promise<void> {
  buildDist();
  await run('registry-up.sh', ['--auth']);
  await run('make-images.sh', []);
}
