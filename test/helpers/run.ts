// Running a tool without blocking the test's event loop (proxies and fault injectors live in it).
import { spawn } from 'node:child_process';

/** Runs `cmd` to its end; rejects with its stderr unless it exits 0. */
export function runAsync(cmd: string, args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr}`))));
  });
}
