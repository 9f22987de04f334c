#!/usr/bin/env node
// The nydusify-ts command line. It parses flags, sets the log level and calls into library code;
// every failure a command throws ends here as one line on stderr and a non-zero exit status.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { LOG_LEVELS, isLogEnabled, setLogLevel, type LogLevel } from '../util/log.js';

const PROGRAM = 'nydusify-ts';

function packageVersion(): string {
  // src/cli/main.ts and dist/cli/main.js both sit two levels below package.json
  const manifest = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(manifest) as { version: string }).version;
}

/** Each command's module, loaded only when needed: a daemon or a mount starts faster without the converter. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  cache: async () => (await import('./cache.js')).cacheCommand(),
  check: async () => (await import('./check.js')).checkCommand(),
  convert: async () => (await import('./convert.js')).convertCommand(),
  create: async () => (await import('./create.js')).createCommand(),
  daemon: async () => (await import('./daemon.js')).daemonCommand(),
  demo: async () => (await import('./demo.js')).demoCommand(),
  export: async () => (await import('./export.js')).exportCommand(),
  index: async () => (await import('./gzip-index.js')).indexCommand(),
  inspect: async () => (await import('./inspect.js')).inspectCommand(),
  merge: async () => (await import('./merge.js')).mergeCommand(),
  mount: async () => (await import('./mount.js')).mountCommand(),
  nbd: async () => (await import('./nbd.js')).nbdCommand(),
  optimize: async () => (await import('./optimize.js')).optimizeCommand(),
  report: async () => (await import('./report.js')).reportCommand(),
  snapshotter: async () => (await import('./snapshotter.js')).snapshotterCommand(),
  unpack: async () => (await import('./unpack.js')).unpackCommand(),
};

/** The command argv names (the first argument that is not an option or its value), if it is one of ours. */
function invokedCommand(argv: string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--log-level') i++;
    else if (!a.startsWith('-')) return Object.hasOwn(COMMANDS, a) ? a : undefined;
  }
  return undefined;
}

async function buildProgram(argv: string[]): Promise<Command> {
  const program = new Command(PROGRAM)
    .description('Nydus container-image toolchain: convert OCI images to RAFS v6 and serve them lazily')
    .version(packageVersion())
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(LOG_LEVELS).env('NYDUSIFY_LOG_LEVEL').default('info'))
    // alphabetical, as commands are added
    .configureHelp({ sortSubcommands: true });
  const invoked = invokedCommand(argv);
  const loads = invoked ? [COMMANDS[invoked]!] : Object.values(COMMANDS);
  for (const command of await Promise.all(loads.map((load) => load()))) program.addCommand(command);
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
  const program = (await buildProgram(argv)).hook('preAction', (root, action) => {
    setLogLevel(root.opts<{ logLevel: LogLevel }>().logLevel);
    // a subcommand's failure names its whole path ("nbd attach", "cache ls")
    const names: string[] = [];
    for (let c: Command | null = action; c && c !== root; c = c.parent) names.unshift(c.name());
    running = names.join(' ');
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
