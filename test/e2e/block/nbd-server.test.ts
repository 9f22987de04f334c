// The NBD server against the real clients: libnbd's nbdinfo, nbdcopy and nbdfuse (a kernel FUSE mount),
// and qemu-img / qemu-nbd, over a unix socket and loopback TCP. The export is a 16 MiB file of random
// bytes with zero holes; every client must see exactly its bytes, and the holes where they are.
// Hostile raw-socket clients hammer the server while nbdcopy copies (each hostile case alone, beside a
// well-behaved client, is in test/block/nbd/server.test.ts). The server runs in this process, so the clients are run asynchronously (a sync spawn would starve it).
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientFlag, Cmd, encodeClientFlags, encodeInfoRequest, encodeOption, encodeRequest, Opt } from '../../../src/block/nbd/protocol.js';
import { NbdServer } from '../../../src/block/nbd/server.js';
import { FileBlockDevice, type Range } from '../../helpers/nbd-device.js';
import { waitFor } from '../../helpers/wait-for.js';

const MiB = 1 << 20;
const SIZE = 16 * MiB;
const HOLES: Range[] = [
  { offset: 1 * MiB, length: 2 * MiB },
  { offset: 8 * MiB + 4096, length: 512 * 1024 },
  { offset: 15 * MiB, length: 1 * MiB }, // the export ends in a hole
];

const exec = promisify(execFile);
/** A client's stdout; rejects (with its stderr) unless it exits 0. */
async function run(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await exec(cmd, args, { maxBuffer: 16 * MiB, timeout: 30_000 });
  return stdout;
}

let dir: string;
let device: FileBlockDevice;
let content: Buffer;
let server: NbdServer;
let sock: string;
let port: number;
const unixUri = () => `nbd+unix:///?socket=${sock}`;
const tcpUri = () => `nbd://127.0.0.1:${port}/`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nbd-e2e-'));
  ({ device, content } = await FileBlockDevice.create(join(dir, 'disk.img'), SIZE, HOLES));
  server = new NbdServer({
    names: () => ['', 'disk'],
    open: (name) => (name === '' || name === 'disk' ? device : undefined),
    description: () => 'a file with holes',
  });
  sock = join(dir, 'nbd.sock');
  await server.listen(`unix:${sock}`);
  const tcp = await server.listen('tcp::0');
  port = tcp.kind === 'tcp' ? tcp.port : -1;
});

afterAll(async () => {
  await server?.close();
  await device?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('nbdinfo', () => {
  it('--json: size, read-only, structured replies, base:allocation, over unix and TCP', async () => {
    for (const uri of [unixUri(), tcpUri()]) {
      const info = JSON.parse(await run('nbdinfo', ['--json', uri]));
      expect(info).toMatchObject({ protocol: 'newstyle-fixed', structured: true });
      expect(info.exports).toHaveLength(1);
      expect(info.exports[0]).toMatchObject({
        'export-name': '',
        'export-size': SIZE,
        description: 'a file with holes',
        contexts: ['base:allocation'],
        is_read_only: true,
        can_df: true,
        can_multi_conn: true,
        can_flush: true,
        can_trim: false,
        can_zero: false,
        block_size_preferred: 4096,
      });
    }
  });

  it('--list: every export', async () => {
    const list = JSON.parse(await run('nbdinfo', ['--list', '--json', unixUri()]));
    expect(list.exports.map((e: { 'export-name': string }) => e['export-name'])).toEqual(['', 'disk']);
  });

  it('--map: the holes, and only they, are hole,zero', async () => {
    const map: { offset: number; length: number; type: number }[] = JSON.parse(await run('nbdinfo', ['--map', '--json', unixUri()]));
    const expected: { offset: number; length: number; type: number }[] = [];
    let at = 0;
    for (const h of HOLES) {
      if (h.offset > at) expected.push({ offset: at, length: h.offset - at, type: 0 });
      expected.push({ offset: h.offset, length: h.length, type: 3 });
      at = h.offset + h.length;
    }
    if (at < SIZE) expected.push({ offset: at, length: SIZE - at, type: 0 });
    expect(map.map(({ offset, length, type }) => ({ offset, length, type }))).toEqual(expected);
  });
});

describe('nbdcopy', () => {
  it('copies the export byte for byte, over unix and TCP', async () => {
    for (const uri of [unixUri(), tcpUri()]) {
      const out = join(dir, 'copy.img');
      await run('nbdcopy', [uri, out]);
      expect((await readFile(out)).equals(content)).toBe(true);
      await rm(out);
    }
  });

  it('several nbdcopy at once, each with 4 connections (multi-conn) and 64 requests in flight, all exact', async () => {
    const outs = [0, 1, 2, 3].map((i) => join(dir, `copy-${i}.img`));
    const before = server.stats.connections;
    await Promise.all(outs.map((out) => run('nbdcopy', ['--connections=4', '--threads=4', '--requests=64', '--request-size=262144', unixUri(), out])));
    for (const out of outs) expect((await readFile(out)).equals(content)).toBe(true);
    expect(server.stats.connections - before).toBeGreaterThanOrEqual(16);
    await Promise.all(outs.map((out) => rm(out)));
  });
});

describe('qemu', () => {
  it('qemu-img info and compare (nbd+unix, nbd:unix:, nbd://): the export equals the file', async () => {
    const info = JSON.parse(await run('qemu-img', ['info', '--output=json', unixUri()]));
    expect(info['virtual-size']).toBe(SIZE);
    const file = join(dir, 'disk.img');
    for (const uri of [unixUri(), `nbd:unix:${sock}`, tcpUri()]) {
      expect(await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', file, uri])).toMatch(/Images are identical/);
    }
  });

  it('qemu-img map sees the holes as zero; qemu-nbd --list sees the exports and their flags', async () => {
    const map: { start: number; length: number; zero: boolean; data: boolean }[] = JSON.parse(await run('qemu-img', ['map', '--output=json', '-f', 'raw', unixUri()]));
    const zeroes = map.filter((m) => m.zero && !m.data).map((m) => ({ offset: m.start, length: m.length }));
    expect(zeroes).toEqual(HOLES);
    const list = await run('qemu-nbd', ['--list', '-k', sock]);
    expect(list).toMatch(/exports available: 2/);
    expect(list).toMatch(/size:\s+16777216/);
    expect(list).toMatch(/readonly/);
    expect(list).toMatch(/base:allocation/);
  });
});

describe('nbdfuse', () => {
  it('the export mounted with nbdfuse reads as the file', async () => {
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    const fuse = spawn('nbdfuse', ['--readonly', mnt, unixUri()], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    fuse.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((resolve) => fuse.on('close', resolve));
    try {
      await waitFor(async () => (await stat(join(mnt, 'nbd')).catch(() => undefined))?.size === SIZE, `nbdfuse to mount (${stderr})`, 10_000, 50);
      // async reads: the kernel's FUSE requests go to nbdfuse, whose NBD requests come back to this process
      expect((await readFile(join(mnt, 'nbd'))).equals(content)).toBe(true);
    } finally {
      await run('fusermount3', ['-u', mnt]).catch(() => fuse.kill());
      await exited;
    }
  });
});

/** Connects, sends `bytes` at once and resolves when the server has closed the connection. */
function hostile(bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(sock);
    const timer = setTimeout(() => reject(new Error(`server kept a hostile connection open: ${bytes.subarray(0, 40).toString('hex')}`)), 5000);
    s.on('error', () => {});
    s.resume(); // the server's replies are not looked at, but must be taken for the close to be seen
    s.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    s.write(bytes);
  });
}

const handshake = () => Buffer.concat([
  encodeClientFlags(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES),
  encodeOption(Opt.GO, encodeInfoRequest({ name: '', requests: [] })),
]);
const request = (type: number, offset: number, length: number) => encodeRequest({ flags: 0, type, handle: 1n, offset, length });

describe('hostile clients beside a real one', () => {
  it('garbage, oversized options and requests, bad magic: each hostile connection is closed, and nbdcopy beside them copies exactly', async () => {
    const hugeOption = encodeOption(Opt.GO);
    hugeOption.writeUInt32BE(0xffffffff, 12);
    const attacks = [
      Buffer.from('GET / HTTP/1.1\r\nHost: nbd\r\n\r\n'),
      request(Cmd.READ, 0, 4096), // a request before the handshake
      Buffer.concat([encodeClientFlags(ClientFlag.FIXED_NEWSTYLE), hugeOption, Buffer.alloc(4096)]),
      Buffer.concat([handshake(), Buffer.alloc(28, 0x55)]), // bad request magic
      Buffer.concat([
        handshake(),
        request(Cmd.READ, SIZE - 10, 11), // past the end
        request(Cmd.READ, 0, 1 << 30), // 1 GiB
        request(Cmd.WRITE, 0, 1000),
        Buffer.alloc(1000, 0x25),
        request(99, 0, 0),
        request(Cmd.DISC, 0, 0),
      ]),
    ];
    const errorsBefore = server.stats.errors;
    let stop = false;
    let rounds = 0;
    const barrage = (async () => {
      while (!stop) {
        await Promise.all(attacks.map(hostile));
        rounds++;
      }
    })();
    try {
      for (let i = 0; i < 3; i++) {
        const out = join(dir, `beside-${i}.img`);
        await run('nbdcopy', [unixUri(), out]);
        expect((await readFile(out)).equals(content)).toBe(true);
        await rm(out);
      }
    } finally {
      stop = true;
      await barrage;
    }
    expect(rounds).toBeGreaterThan(0);
    // per round: 4 connections dropped, and the fifth's 4 refused requests
    expect(server.stats.errors - errorsBefore).toBe(rounds * 8);
  });
});

describe('the server after all of it', () => {
  it('counted the clients and their reads, and holds no connection', async () => {
    await waitFor(() => server.stats.clients === 0, 'every client to disconnect');
    const s = server.stats;
    expect(s.readBytes).toBeGreaterThanOrEqual(8 * SIZE);
    expect(s.connections).toBeGreaterThan(20);
  });
});
