// Running a system command (mount, umount) without blocking the event loop: a mount command may
// wait on the very FUSE connection this process serves.
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number | null;
  stderr: string;
}

/** Runs `cmd`; resolves with its exit code and stderr (stdin and stdout ignored unless `stdio` says). */
export function runCommand(cmd: string, args: string[], extra: { stdio?: (number | 'ignore' | 'pipe' | 'inherit')[] } = {}): Promise<CommandResult> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { stdio: extra.stdio ?? ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stderr: stderr.trim() }));
  });
}

/** As runCommand; a non-zero exit is an error naming the command. */
export async function mustRunCommand(cmd: string, args: string[]): Promise<void> {
  const r = await runCommand(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || `exit ${r.code}`}`);
}
