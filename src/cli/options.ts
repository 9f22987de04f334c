// Flag parsers and option sets shared by several commands.
import { text } from 'node:stream/consumers';
import { writeFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { assertChunkSize, DEFAULT_CHUNK_SIZE } from '../convert/chunker.js';

// decimal or 0x-hex, as nydus-image takes --chunk-size
export function parseByteCount(value: string): number {
  if (!/^(\d+|0x[0-9a-f]+)$/i.test(value)) throw new InvalidArgumentError('expected a byte count, decimal or 0x-hex.');
  return Number(value);
}

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** `1048576`, `0x100000`, `512K`, `100M`, `2G` (binary units, optional trailing `B`/`iB`). */
export function parseSize(value: string): number {
  const m = /^(\d+|0x[0-9a-f]+)\s*([kmgt]?)(i?b)?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected a size: bytes, or a number with K, M, G or T.');
  const n = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('size too large.');
  return n;
}

export function parseChunkSize(value: string): number {
  const size = parseByteCount(value);
  try {
    assertChunkSize(size);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return size;
}

export const compressorOption = () =>
  new Option('--compressor <name>', 'chunk compression').choices(['zstd', 'lz4_block', 'gzip', 'none']).default('zstd');
export const digesterOption = () => new Option('--digester <name>', 'chunk digest').choices(['blake3', 'sha256']).default('blake3');
export const chunkSizeOption = () =>
  new Option('--chunk-size <bytes>', 'chunk size: a power of two from 0x1000 to 0x1000000').argParser(parseChunkSize).default(DEFAULT_CHUNK_SIZE, '0x100000');
export const prefetchPolicyOption = () =>
  new Option('--prefetch-policy <policy>', 'fs: read absolute paths to prefetch from stdin, one per line').choices(['fs', 'none']).default('none');

/** Absolute paths from stdin, one per line, as byte strings. */
export async function readPrefetchPatterns(): Promise<string[]> {
  const input = await text(process.stdin);
  return input.split('\n').map((l) => l.trim()).filter(Boolean).map((line) => {
    if (!line.startsWith('/')) throw new InvalidArgumentError(`prefetch path ${JSON.stringify(line)} is not absolute`);
    return Buffer.from(line, 'utf8').toString('latin1');
  });
}

export async function writeJson(path: string | undefined, value: unknown): Promise<void> {
  if (path) await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}


/**
 * nydusify's environment variables for a command's flags: `env` maps an option's attribute name to
 * its variable. A variable is used only where the flag is not on the command line; a switch's value
 * reads as Go's strconv.ParseBool does (nydusify's `OCI=false` is false), anything else is an error.
 * Options that take a value use commander's own env support (Option.env) instead.
 */
export function withSwitchEnv(command: Command, env: Record<string, string>): Command {
  return command.hook('preAction', (cmd) => {
    for (const [key, name] of Object.entries(env)) {
      const value = process.env[name];
      if (value === undefined || cmd.getOptionValueSource(key) === 'cli') continue;
      cmd.setOptionValueWithSource(key, parseGoBool(value, name), 'env');
    }
  });
}

function parseGoBool(value: string, name: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw new InvalidArgumentError(`${name}=${JSON.stringify(value)}: expected true or false`);
}
