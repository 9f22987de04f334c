// Runs once, in vitest's main process, before any test file: builds dist/ (the CLI and end-to-end
// tests run it), and starts the real parts from ../shared/e2e that several files share — the
// registries (plain, basic, token auth) and the test images. The first image build takes minutes on
// a fresh machine; here it cannot stall a test worker. The files' own calls then return at once.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..');
const shared = process.env.NYDUSIFY_SHARED ?? join(repo, '..', 'shared');

function run(script: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(shared, 'e2e', script), args, { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${script} ${args.join(' ')} exited ${code}`))));
  });
}

export default async function setup(): Promise<void> {
  execFileSync(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: repo, stdio: 'inherit' });
  await run('registry-up.sh', ['--auth']);
  await run('make-images.sh', []);
}
