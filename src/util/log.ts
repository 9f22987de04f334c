// Structured logging to stderr: JSON lines for machines (stderr not a TTY), `time LEVEL msg k=v` for people.
// stdout is left to command output (tables, JSON) so the two never mix.

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Record<string, unknown>;

/** Where log lines go; process.stderr by default. */
export interface LogOutput {
  write(line: string): unknown;
  isTTY?: boolean;
}

export function isLogLevel(value: string | undefined): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value ?? '');
}

// Library code may log before (or without) the CLI parsing --log-level, so the environment seeds the level.
const envLevel = process.env.NYDUSIFY_LOG_LEVEL;
let threshold: LogLevel = isLogLevel(envLevel) ? envLevel : 'info';
let output: LogOutput = process.stderr;

export function setLogLevel(level: LogLevel): void {
  threshold = level;
}

export function getLogLevel(): LogLevel {
  return threshold;
}

/** True when messages at `level` are written; use it to skip building expensive fields. */
export function isLogEnabled(level: LogLevel): boolean {
  return LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(threshold);
}

export function setLogOutput(out: LogOutput): void {
  output = out;
}

// JSON.stringify turns an Error into {} and throws on bigint; keep what a reader needs instead.
function jsonValue(_key: string, value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === 'bigint') return value.toString();
  return value;
}

function textValue(value: unknown): string {
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === 'string') return value !== '' && !/[\s"=]/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return JSON.stringify(value, jsonValue);
  return String(value);
}

function formatJson(time: Date, level: LogLevel, msg: string, fields: LogFields): string {
  return JSON.stringify({ time: time.toISOString(), level, msg, ...fields }, jsonValue);
}

function formatText(time: Date, level: LogLevel, msg: string, fields: LogFields): string {
  const pairs = Object.entries(fields).map(([key, value]) => ` ${key}=${textValue(value)}`);
  // local wall-clock time of day is what someone watching a terminal compares against
  const clock = time.toTimeString().slice(0, 8) + '.' + String(time.getMilliseconds()).padStart(3, '0');
  return `${clock} ${level.toUpperCase().padEnd(5)} ${msg}${pairs.join('')}`;
}

export class Logger {
  constructor(private readonly bound: LogFields = {}) {}

  /** A logger that adds `fields` to every line, e.g. `log.child({ layer: digest })`. */
  child(fields: LogFields): Logger {
    return new Logger({ ...this.bound, ...fields });
  }

  error(msg: string, fields?: LogFields): void {
    this.write('error', msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.write('warn', msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    this.write('info', msg, fields);
  }

  debug(msg: string, fields?: LogFields): void {
    this.write('debug', msg, fields);
  }

  trace(msg: string, fields?: LogFields): void {
    this.write('trace', msg, fields);
  }

  private write(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!isLogEnabled(level)) return;
    const format = output.isTTY ? formatText : formatJson;
    output.write(format(new Date(), level, msg, { ...this.bound, ...fields }) + '\n');
  }
}

/** The root logger. */
export const log = new Logger();
