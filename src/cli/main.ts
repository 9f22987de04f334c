#!/usr/bin/env node
// The nydusify-ts command line. It parses flags, sets the log level and calls into library code;
// every failure a command throws ends here as one line on stderr and a non-zero exit status.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { LOG_LEVELS, isLogEnabled, setLogLevel, type LogLevel } from '../util/log.js';
import { cacheCommand } from './cache.js';
import { checkCommand } from './check.js';
import { convertCommand } from './convert.js';
import { daemonCommand } from './daemon.js';
import { createCommand } from './create.js';
import { demoCommand } from './demo.js';
import { exportCommand } from './export.js';
import { inspectCommand } from './inspect.js';
import { mergeCommand } from './merge.js';
import { mountCommand } from './mount.js';
import { unpackCommand } from './unpack.js';
import { unimplementedCommands } from './unimplemented.js';

const PROGRAM = 'nydusify-ts';

function packageVersion(): string {
  // src/cli/main.ts and dist/cli/main.js both sit two levels below package.json
  const manifest = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(manifest) as { version: string }).version;
}

function buildProgram(): Command {
  const program = new Command(PROGRAM)
    .description('Nydus container-image toolchain: convert OCI images to RAFS v6 and serve them lazily')
    .version(packageVersion())
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(LOG_LEVELS).env('NYDUSIFY_LOG_LEVEL').default('info'))
    // alphabetical, so the list does not reshuffle as commands move out of unimplemented.ts
    .configureHelp({ sortSubcommands: true });
  for (const command of [
    cacheCommand(), checkCommand(), convertCommand(), createCommand(), daemonCommand(), demoCommand(), exportCommand(), inspectCommand(), mergeCommand(), mountCommand(), unpackCommand(),
    ...unimplementedCommands(),
  ]) program.addCommand(command);
  return program;
}

/** Prints `nydusify-ts <command>: message` (and the stack at debug level); returns the exit status. */
function reportFailure(command: string, err: unknown): number {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`${[PROGRAM, command].filter(Boolean).join(' ')}: ${message}\n`);
  if (err instanceof Error && err.stack && isLogEnabled('debug')) process.stderr.write(`${err.stack}\n`);
  return err instanceof CommanderError ? err.exitCode : 1;
}

async function main(argv: string[]): Promise<void> {
  let running = '';
  const program = buildProgram().hook('preAction', (root, action) => {
    setLogLevel(root.opts<{ logLevel: LogLevel }>().logLevel);
    running = action.name();
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // exitCode rather than exit(): stderr may be a pipe still being written
    process.exitCode = reportFailure(running, err);
  }
}

// a closed pipe (`inspect | head`) ends output quietly rather than with a stack trace
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(process.exitCode ?? 0);
});

await main(process.argv);
