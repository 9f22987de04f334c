// Range reads from a registry that breaks them: a body that ends early (a clean end, short of the
// Content-Range it was answered with) and a body that stalls (given up by the caller's signal, or
// by the transport once the server has been silent too long). Small local servers play the registry.
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { retryCount } from '../../src/registry/retry.js';
import { getLogLevel, setLogLevel } from '../../src/util/log.js';
import { startServer, type TestServer } from './http-fixtures.js';
import { fastRetry } from './registry-fixtures.js';

const blob = randomBytes(64 << 10);
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
const servers: TestServer[] = [];
const clients: RegistryClient[] = [];

const logLevel = getLogLevel();
beforeAll(() => setLogLevel('error')); // retries warn by design; the tests check what they do

afterAll(async () => {
  setLogLevel(logLevel);
  await Promise.all([...servers, ...clients].map((x) => x.close()));
});

/** A registry whose range answers `answer` shapes (given the range asked for and the request's number). */
async function registry(
  answer: (res: ServerResponse, start: number, end: number, n: number) => void,
  options: RegistryClientOptions = {},
): Promise<{ repo: ReturnType<RegistryClient['repository']>; requests: () => number }> {
  let n = 0;
  const server = await startServer((req: IncomingMessage, res: ServerResponse) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (req.url !== `/v2/faulty/blobs/${digest}` || !m) return void res.writeHead(404).end();
    answer(res, Number(m[1]), Number(m[2]), n++);
  });
  servers.push(server);
  const client = new RegistryClient({ plainHttp: true, dockerConfig: false, retry: fastRetry, ...options });
  clients.push(client);
  return { repo: client.repository(`${server.host}/faulty`), requests: () => n };
}

const sleep = (ms: number, value?: unknown) => new Promise((r) => setTimeout(r, ms, value));

const partial = (start: number, end: number, sent = end - start + 1) => ({
  'content-range': `bytes ${start}-${end}/${blob.length}`,
  'content-length': String(sent),
});

describe('range reads from a registry that breaks them', () => {
  it('regression: a range whose body ends early is tried again', async () => {
    let shortAnswers = 1;
    const { repo, requests } = await registry((res, start, end) => {
      // the first answer says it sends the whole range, then ends cleanly halfway
      const sent = shortAnswers-- > 0 ? (end - start + 1) >> 1 : end - start + 1;
      res.writeHead(206, partial(start, end, sent)).end(blob.subarray(start, start + sent));
    });
    const retriesBefore = retryCount();
    expect(await repo.getBlobRange(digest, 1000, 20_000)).toEqual(blob.subarray(1000, 21_000));
    expect(requests()).toBe(2);
    expect(retryCount() - retriesBefore).toBe(1);

    shortAnswers = Infinity;
    await expect(repo.getBlobRange(digest, 0, 8000)).rejects.toThrow(/ended after 4000 of 8000 bytes \(3 attempts\)$/);
    expect(requests()).toBe(2 + fastRetry.attempts);
  });

  it('regression: a signal ends a stalled range request, its connection included', async () => {
    let closed!: () => void;
    const connectionClosed = new Promise<void>((r) => (closed = r));
    const { repo, requests } = await registry((res, start, end) => {
      // slow-loris: the headers and a few bytes, then nothing
      res.writeHead(206, partial(start, end)).write(blob.subarray(start, start + 10));
      res.on('close', closed);
    });
    const started = performance.now();
    const read = repo.getBlobRange(digest, 0, 30_000, undefined, AbortSignal.timeout(300)).catch((e: unknown) => e);
    const err = await Promise.race([read, sleep(3_000, 'still waiting')]);
    expect(err).toMatchObject({ name: 'TimeoutError' });
    expect(performance.now() - started).toBeLessThan(2_000);
    await connectionClosed;
    expect(requests()).toBe(1);
  });

  it('regression: a body the server stops sending is given up after the idle timeout, and tried again', async () => {
    const { repo, requests } = await registry((res, start, end, n) => {
      if (n === 0) return void res.writeHead(206, partial(start, end)).write(blob.subarray(start, start + 10));
      res.writeHead(206, partial(start, end)).end(blob.subarray(start, end + 1));
    }, { idleTimeoutMs: 200 });
    const read = repo.getBlobRange(digest, 5000, 30_000);
    expect(await Promise.race([read, sleep(3_000, 'still waiting')])).toEqual(blob.subarray(5000, 35_000));
    expect(requests()).toBe(2);
  });
});
