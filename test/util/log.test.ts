import { afterEach, describe, expect, it, vi } from 'vitest';
import { Logger, getLogLevel, isLogEnabled, log, setLogLevel, setLogOutput } from '../../src/util/log.js';

/** A fake stderr that keeps what was written, one entry per line. */
function capture(isTTY: boolean): { lines: string[]; write(line: string): void; isTTY: boolean } {
  const lines: string[] = [];
  return { lines, isTTY, write: (line: string) => lines.push(...line.split('\n').filter(Boolean)) };
}

afterEach(() => {
  setLogLevel('info');
  setLogOutput(process.stderr);
  vi.unstubAllEnvs();
});

describe('log', () => {
  it('writes JSON lines with time, level, msg and fields when the output is not a terminal', () => {
    const out = capture(false);
    setLogOutput(out);
    log.info('layer pulled', { digest: 'sha256:ab', bytes: 42, gzip: true });
    expect(out.lines).toHaveLength(1);
    const record = JSON.parse(out.lines[0]) as Record<string, unknown>;
    expect(record).toEqual({ time: expect.any(String), level: 'info', msg: 'layer pulled', digest: 'sha256:ab', bytes: 42, gzip: true });
    expect(new Date(record.time as string).toISOString()).toBe(record.time);
  });

  it('writes `time LEVEL msg k=v` for a terminal, quoting values that need it', () => {
    const out = capture(true);
    setLogOutput(out);
    log.warn('slow blob', { blob: 'abc', path: '/a b', empty: '', n: 3, nested: { x: 1 } });
    expect(out.lines).toEqual([expect.stringMatching(/^\d\d:\d\d:\d\d\.\d{3} WARN  slow blob blob=abc path="\/a b" empty="" n=3 nested=\{"x":1\}$/)]);
  });

  it('drops messages below the level and reports which levels are enabled', () => {
    const out = capture(false);
    setLogOutput(out);
    setLogLevel('warn');
    log.info('hidden');
    log.debug('hidden');
    log.warn('shown');
    log.error('shown');
    expect(out.lines.map((line) => JSON.parse(line).level)).toEqual(['warn', 'error']);
    expect(isLogEnabled('error')).toBe(true);
    expect(isLogEnabled('info')).toBe(false);
    setLogLevel('trace');
    log.trace('now shown');
    expect(out.lines).toHaveLength(3);
    expect(getLogLevel()).toBe('trace');
  });

  it('child loggers bind fields, nest, and let a call override a bound field', () => {
    const out = capture(false);
    setLogOutput(out);
    const layer = log.child({ layer: 'sha256:01', stage: 'pull' });
    layer.child({ file: 'etc/hosts' }).info('chunked', { stage: 'chunk' });
    layer.info('done');
    const [first, second] = out.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(first).toMatchObject({ msg: 'chunked', layer: 'sha256:01', file: 'etc/hosts', stage: 'chunk' });
    expect(second).toMatchObject({ msg: 'done', layer: 'sha256:01', stage: 'pull' });
    expect(second).not.toHaveProperty('file');
  });

  it('keeps the message of an Error and the digits of a bigint in JSON', () => {
    const out = capture(false);
    setLogOutput(out);
    new Logger().error('push failed', { err: new Error('connection reset'), offset: 2n ** 64n });
    expect(JSON.parse(out.lines[0])).toMatchObject({ err: 'connection reset', offset: '18446744073709551616' });
  });

  it('takes its starting level from NYDUSIFY_LOG_LEVEL and ignores a bad value', async () => {
    vi.stubEnv('NYDUSIFY_LOG_LEVEL', 'debug');
    vi.resetModules();
    expect((await import('../../src/util/log.js')).getLogLevel()).toBe('debug');
    vi.stubEnv('NYDUSIFY_LOG_LEVEL', 'loud');
    vi.resetModules();
    expect((await import('../../src/util/log.js')).getLogLevel()).toBe('info');
  });
});
