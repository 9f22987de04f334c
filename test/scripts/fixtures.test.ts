// `npm run fixtures` (scripts/fixtures.mjs) against a local mirror laid out like the upstream
// repositories (OWNER/REPO/COMMIT/PATH, as raw.githubusercontent.com serves them), built from the
// fixtures this machine has: it fetches every pinned file byte for byte, over file:// and over HTTP on
// loopback, and refuses a changed or longer file before writing anything.
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';
import { fixtureFile } from '../helpers/fixtures.js';
import { FIXTURES_MISSING } from '../helpers/fixtures-reporter.js';

interface Pinned { source: string; dest: string; size: number; sha256: string }

const script = join(repoRoot, 'scripts', 'fixtures.mjs');
/** Every pinned file, as this machine has it (the shared fixtures may predate some: the others are looked for in .fixtures/). */
const onThisMachine = (f: Pinned): string | undefined => fixtureFile(...f.dest.split('/').slice(1));
const allPinnedHere = (JSON.parse(spawnSync(process.execPath, [script, '--list'], { encoding: 'utf8' }).stdout) as Pinned[]).every((f) => onThisMachine(f) !== undefined);

/** Runs the script without blocking the event loop (the HTTP mirror below lives in this process). */
function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe.skipIf(!allPinnedHere)(allPinnedHere ? 'npm run fixtures' : `npm run fixtures (${FIXTURES_MISSING})`, () => {
  let work: string;
  let mirror: string;
  let pinned: Pinned[];
  let server: Server;
  let httpBase: string;
  let n = 0;
  const fresh = (): string => join(work, `out-${++n}`);
  const fetchInto = (out: string, base = mirror) => run([], { NYDUSIFY_FIXTURES_BASE: base, NYDUSIFY_FIXTURES_OUT: out });
  const mirrored = (f: Pinned): string => join(mirror, f.source);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nydusify-fixtures-'));
    mirror = join(work, 'mirror');
    const list = await run(['--list'], {});
    pinned = JSON.parse(list.stdout) as Pinned[];
    for (const f of pinned) {
      mkdirSync(dirname(mirrored(f)), { recursive: true });
      copyFileSync(onThisMachine(f)!, mirrored(f));
    }
    server = createServer((req, res) => {
      const path = join(mirror, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
      if (!path.startsWith(mirror + '/') || !existsSync(path)) return void res.writeHead(404).end();
      res.end(readFileSync(path));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    httpBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    rmSync(work, { recursive: true, force: true });
  });

  it('pins the 23 upstream files the tests read (12 test vectors, 11 sample configs)', () => {
    expect(pinned).toHaveLength(23);
    expect(pinned.every((f) => /^[0-9a-f]{64}$/.test(f.sha256) && /^[\w-]+\/[\w-]+\/[0-9a-f]{40}\//.test(f.source))).toBe(true);
  });

  it('fetches every file byte for byte from a directory, a file:// URL and over HTTP', async () => {
    for (const base of [mirror, `file://${mirror}`, httpBase]) {
      const out = fresh();
      const r = await fetchInto(out, base);
      expect(r.status, r.stderr).toBe(0);
      for (const f of pinned) expect(readFileSync(join(out, f.dest)).equals(readFileSync(onThisMachine(f)!)), f.dest).toBe(true);
    }
  });

  it('refuses a file with one wrong byte: sha256 mismatch, nothing written', async () => {
    const f = pinned.find((p) => p.dest.endsWith('rafs-v6-2.2.boot'))!;
    const good = readFileSync(mirrored(f));
    const bad = Buffer.from(good);
    bad[1024]! ^= 1;
    writeFileSync(mirrored(f), bad);
    try {
      for (const base of [mirror, httpBase]) {
        const out = fresh();
        const r = await fetchInto(out, base);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`rafs-v6-2.2.boot: sha256 [0-9a-f]{64}, pinned ${f.sha256} .*refused`));
        expect(existsSync(out)).toBe(false);
        expect(readdirSync(work).filter((name) => name.includes('.partial-'))).toEqual([]);
      }
    } finally {
      writeFileSync(mirrored(f), good);
    }
  });

  it('refuses a file longer than pinned, over HTTP too', async () => {
    const f = pinned.find((p) => p.dest.endsWith('all-entry-type.tar'))!;
    const good = readFileSync(mirrored(f));
    appendFileSync(mirrored(f), Buffer.alloc(1));
    try {
      for (const base of [mirror, httpBase]) {
        const out = fresh();
        const r = await fetchInto(out, base);
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/all-entry-type\.tar: larger than the pinned 10240 bytes/);
        expect(existsSync(out)).toBe(false);
      }
    } finally {
      writeFileSync(mirrored(f), good);
    }
  });

  it('keeps a good copy without fetching, and replaces a copy with a changed byte', async () => {
    const out = fresh();
    expect((await fetchInto(out)).status).toBe(0);
    const r = await fetchInto(out, join(work, 'nowhere'));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${pinned.length} fixtures present, sha256 checked`);
    const f = pinned[0]!;
    const local = readFileSync(join(out, f.dest));
    local[0]! ^= 1;
    writeFileSync(join(out, f.dest), local);
    expect((await fetchInto(out, join(work, 'nowhere'))).status).toBe(1);
    expect((await fetchInto(out)).status).toBe(0);
    expect(readFileSync(join(out, f.dest)).equals(readFileSync(onThisMachine(f)!))).toBe(true);
  });
});
