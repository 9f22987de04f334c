// End to end with the real kernel (needs root and /dev/fuse): a layer built from the sample tree by
// the CLI is served by `nydusify-ts mount` in a child process, and the mounted tree must be exactly
// what GNU tar extracts. Also: many parallel readers, random O_DIRECT reads served from decoded
// copies of chunks (decoded-spill.ts), a corrupt chunk (EIO for that file only),
// SIGTERM (clean unmount, exit 0) and a stale mount left by `kill -9` (cleaned by the next start).
// The request handler is also driven directly (no kernel) for the cases the kernel never sends.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RafsFuseFs } from '../../../src/daemon/fs.js';
import { SyncBlobDirSource } from '../../../src/blobcache/sync-blob-dir-source.js';
import { FuseRouter } from '../../../src/daemon/router.js';
import {
  decodeOutHeader, encodeRequest, Errno, FUSE_ROOT_ID, Opcode, parseDirents, parseDirentsPlus, readEntry,
} from '../../../src/daemon/fuse/protocol.js';
import { parseMountInfo } from '../../../src/daemon/fuse/session.js';
import { RafsImage } from '../../../src/rafs/reader.js';
import { cli, repoRoot } from '../../helpers/cli.js';
import { type Daemon, daemonPids, ourMounts, startDaemon as startLocalDaemon, terminate, waitMounted, cleanUp } from '../../helpers/daemon.js';
import { makeSampleLayer } from '../../helpers/sample-tree.js';
import { diffManifests, treeManifest, type Manifest } from '../../helpers/trees.js';
import { waitFor } from '../../helpers/wait-for.js';

const work = mkdtempSync(join(tmpdir(), 'nydusify-fuse-'));
const p = (...parts: string[]) => join(work, ...parts);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let reference: Manifest;
let boot: string;
let blobId: string;
const daemons: Daemon[] = [];

function startDaemon(mnt: string, blobDir = p('blobs'), extra: string[] = []): Daemon {
  const d = startLocalDaemon(['--bootstrap', boot, '--blob-dir', blobDir, ...extra], mnt);
  daemons.push(d);
  return d;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function runAsync(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** A copy of the blob directory with one byte of /etc/os-release's first chunk flipped. */
function corruptBlobDir(): string {
  const dir = p('corrupt-blobs');
  mkdirSync(dir, { recursive: true });
  const info = JSON.parse(cli(['inspect', boot, '--json', '--path', '/etc/os-release'])) as { chunks: { compressedOffset: number }[] };
  const blob = readFileSync(p('blobs', blobId));
  blob[info.chunks[0]!.compressedOffset + 2]! ^= 0xff;
  writeFileSync(join(dir, blobId), blob);
  return dir;
}

beforeAll(() => {
  ({ reference } = makeSampleLayer(work));
  cli(['create', p('layer.tar'), '--bootstrap', p('layer.boot'), '--blob-dir', p('blobs')]);
  boot = p('layer.boot');
  blobId = readdirSync(p('blobs')).find((f) => /^[0-9a-f]{64}$/.test(f))!;
});

afterAll(() => cleanUp(daemons, work));

describe('nydusify-ts mount (kernel FUSE)', () => {
  it('shows exactly what GNU tar extracts, then unmounts cleanly on SIGTERM', async () => {
    const d = startDaemon(p('mnt-tree'));
    await waitMounted(d);
    // one node id per nid, so hardlinked paths are one kernel inode: st_ino and nlink match tar's
    // hardlinks and no field needs ignoring
    expect(diffManifests(reference, treeManifest(d.mnt))).toEqual([]);
    // the bdi readahead was raised for 1 MiB READs
    const dev = ourMounts(d.mnt)[0]!.dev;
    await waitFor(() => readFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8').trim() === '1024', 'read_ahead_kb 1024', 10_000, 50);
    // a missing name, a write and a readlink of a non-link get the usual errors
    expect(() => statSync(join(d.mnt, 'etc', 'missing'))).toThrow(/ENOENT/);
    expect(() => writeFileSync(join(d.mnt, 'etc', 'new'), 'x')).toThrow(/EROFS/);
    expect(await terminate(d)).toEqual({ code: 0, signal: null });
    expect(ourMounts(d.mnt)).toEqual([]);
    expect(d.stderr()).not.toMatch(/"level":"error"/);
  });

  it('exits on SIGTERM even while a file on the mount is held open', async () => {
    const d = startDaemon(p('mnt-held'));
    await waitMounted(d);
    const holder = spawn('sh', ['-c', `exec 9<"${join(d.mnt, 'etc/os-release')}"; exec sleep 60`], { stdio: 'ignore' });
    try {
      await waitFor(() => {
        try {
          return readdirSync(`/proc/${holder.pid}/fd`).includes('9');
        } catch {
          return false;
        }
      }, 'the holder to open the file', 10_000, 50);
      // the lazy unmount leaves the connection to the open file; the daemon aborts it after a grace period
      expect(await terminate(d)).toEqual({ code: 0, signal: null });
      expect(ourMounts(d.mnt)).toEqual([]);
      expect(d.stderr()).toMatch(/aborting the FUSE connection/);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('gives 32 parallel readers identical bytes', async () => {
    const d = startDaemon(p('mnt-parallel'), p('blobs'), ['--threads', '2']);
    await waitMounted(d);
    const files = ['bin/big', 'bin/big-copy', 'etc/zero-runs', 'etc/os-release'];
    const want = new Map(files.map((f) => [f, sha256(readFileSync(p('src', f)))]));
    // a fresh mount: the kernel page cache of the image is empty, so every reader goes through the daemon
    const results = await Promise.all(Array.from({ length: 32 }, (_, i) => files[i % files.length]!).map(async (f) => {
      const r = await runAsync('sha256sum', [join(d.mnt, f)]);
      return { f, code: r.code, sum: r.stdout.split(' ')[0], stderr: r.stderr };
    }));
    for (const r of results) expect(r, r.f).toEqual({ f: r.f, code: 0, sum: want.get(r.f), stderr: '' });
    expect(await terminate(d)).toEqual({ code: 0, signal: null });
  });

  it('serves random 4 KiB O_DIRECT reads of a local image from decoded copies of the chunks a reader came back to', async () => {
    // 20 chunks of 1 MiB: more than a worker's few decoded chunks, so a reader that comes back decodes again
    const MiB = 1 << 20;
    const data = Buffer.concat(Array.from({ length: 20 }, (_, i) => Buffer.from(createHash('sha512').update(`chunk ${i}`).digest('hex').repeat(MiB / 128))));
    mkdirSync(p('spill-src', 'etc'), { recursive: true }); // waitMounted looks for /etc
    writeFileSync(p('spill-src', 'data.bin'), data);
    spawnSync('tar', ['-C', p('spill-src'), '-cf', p('spill.tar'), 'data.bin', 'etc']);
    cli(['create', p('spill.tar'), '--bootstrap', p('spill.boot'), '--blob-dir', p('spill-blobs'), '--chunk-size', '0x100000']);
    const spillBlob = join(p('spill-blobs'), readdirSync(p('spill-blobs')).find((f) => /^[0-9a-f]{64}$/.test(f))!);
    // one FUSE thread: a chunk read again 18 chunks later has certainly left its few-chunk LRU (two
    // workers share what they spill: test/blobcache/decoded-spill.test.ts)
    const d = startLocalDaemon(['--bootstrap', p('spill.boot'), '--blob-dir', p('spill-blobs'), '--cache-dir', p('spill-cache'), '--threads', '1'], p('mnt-spill'));
    daemons.push(d);
    await waitMounted(d);
    // O_DIRECT 4 KiB reads at (chunk, block) pairs: each block's sha256 (compared with the source's), "EIO" where the read fails
    const readBlocks = (pairs: [number, number][]): string[] => {
      const script = String.raw`
import hashlib, json, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
out = []
for c, b in json.loads(sys.argv[2]):
    try:
        n = os.preadv(fd, [buf], c * 1048576 + b * 4096)
        out.append(hashlib.sha256(buf[:n]).hexdigest())
    except OSError as e:
        out.append("EIO" if e.errno == 5 else str(e))
print(json.dumps(out))`;
      const r = spawnSync('python3', ['-c', script, join(d.mnt, 'data.bin'), JSON.stringify(pairs)], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as string[];
    };
    const want = (pairs: [number, number][]): string[] => pairs.map(([c, b]) => sha256(data.subarray(c * MiB + b * 4096, c * MiB + (b + 1) * 4096)));
    // chunks 0-18 read twice over, chunk 19 never
    const twice: [number, number][] = [...Array.from({ length: 19 }, (_, c): [number, number] => [c, 1]), ...Array.from({ length: 19 }, (_, c): [number, number] => [c, 2])];
    expect(readBlocks(twice)).toEqual(want(twice));
    // the blob now decodes to nothing valid: what is read right can only come from decoded copies
    const blob = readFileSync(spillBlob);
    for (let i = 0; i < blob.length; i += 512) blob[i]! ^= 0xff;
    writeFileSync(spillBlob, blob);
    spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
    const random: [number, number][] = Array.from({ length: 200 }, (_, i) => [(i * 7) % 19, (i * 37) % 256]);
    expect(readBlocks(random)).toEqual(want(random));
    expect(readBlocks([[19, 0]])).toEqual(['EIO']); // never decoded: read from the (now broken) blob
    expect(await terminate(d)).toEqual({ code: 0, signal: null });
  });

  it('answers EIO for a file with a corrupt chunk, and keeps serving the others', async () => {
    const d = startDaemon(p('mnt-corrupt'), corruptBlobDir());
    await waitMounted(d);
    const read = (f: string) => readFileSync(join(d.mnt, f));
    expect(() => read('etc/os-release')).toThrow(expect.objectContaining({ code: 'EIO' }));
    expect(() => read('bin/hard')).toThrow(expect.objectContaining({ code: 'EIO' })); // the same inode
    expect(sha256(read('bin/big'))).toBe(sha256(readFileSync(p('src', 'bin/big'))));
    expect(read('etc/deep/er/still/leaf').toString()).toBe('deep\n');
    // still EIO (never stale or wrong data), and the metadata is fine
    expect(() => read('etc/os-release')).toThrow(expect.objectContaining({ code: 'EIO' }));
    expect(statSync(join(d.mnt, 'etc/os-release')).size).toBe(statSync(p('src', 'etc/os-release')).size);
    // workers report through the main thread: the log line follows shortly
    await waitFor(() => /read failed: EIO/.test(d.stderr()), 'the EIO log line', 10_000, 50);
    expect(await terminate(d)).toEqual({ code: 0, signal: null });
  });

  it('restarts a daemon killed -9 and mounts again: the manager supervises it', async () => {
    const mnt = p('mnt-restart');
    const d = startDaemon(mnt);
    await waitMounted(d);
    const [first] = daemonPids(d);
    expect(first).toBeGreaterThan(0);
    process.kill(first!, 'SIGKILL');
    await waitFor(() => daemonPids(d).length === 1 && daemonPids(d)[0] !== first && /mounted again/.test(d.stderr()) && /stale mount/.test(d.stderr()), 'a new daemon', 20_000, 50);
    expect(ourMounts(mnt)).toHaveLength(1);
    expect(readFileSync(join(mnt, 'etc/os-release'), 'utf8')).toBe(readFileSync(p('src', 'etc/os-release'), 'utf8'));
    // the new daemon found the dead one's mount and replaced it
    expect(d.stderr()).toMatch(/stale mount/);
    const [second] = daemonPids(d);
    expect(await terminate(d)).toEqual({ code: 0, signal: null });
    expect(ourMounts(mnt)).toEqual([]);
    expect(isRunning(second!)).toBe(false);
  });

  it('keeps serving when the manager is killed -9, and a restarted manager adopts the live daemon', async () => {
    const mnt = p('mnt-adopt');
    const first = startDaemon(mnt);
    await waitMounted(first);
    const [pid] = daemonPids(first);
    first.child.kill('SIGKILL');
    expect((await first.exit).signal).toBe('SIGKILL');
    expect(readFileSync(join(mnt, 'etc/os-release'), 'utf8')).toBe(readFileSync(p('src', 'etc/os-release'), 'utf8'));
    const second = startDaemon(mnt);
    await waitMounted(second);
    expect(second.stderr()).toMatch(/"adopted":true/);
    expect(daemonPids(second)).toEqual([pid]);
    expect(readFileSync(join(mnt, 'etc/deep/er/still/leaf'), 'utf8')).toBe('deep\n');
    expect(await terminate(second)).toEqual({ code: 0, signal: null });
    expect(ourMounts(mnt)).toEqual([]);
    expect(isRunning(pid!)).toBe(false);
  });

  it('serves two images through one shared daemon, restarted for both after a kill -9', async () => {
    const state = p('shared-state');
    const a = startLocalDaemon(['--bootstrap', boot, '--blob-dir', p('blobs'), '--daemon-mode', 'shared'], p('mnt-shared-a'), state);
    daemons.push(a);
    await waitMounted(a);
    const b = startLocalDaemon(['--bootstrap', boot, '--blob-dir', p('blobs'), '--daemon-mode', 'shared'], p('mnt-shared-b'), state);
    daemons.push(b);
    await waitMounted(b);
    expect(b.stderr()).toMatch(/"adopted":true/);
    const [pid] = daemonPids(a);
    expect(daemonPids(b)).toEqual([pid]);
    const record = JSON.parse(readFileSync(join(state, 'shared.json'), 'utf8')) as { mounts: unknown[] };
    expect(record.mounts).toHaveLength(2);
    for (const d of [a, b]) expect(diffManifests(reference, treeManifest(d.mnt))).toEqual([]);
    process.kill(pid!, 'SIGKILL');
    await waitFor(() => [a, b].every((d) => /mounted again/.test(d.stderr())) && daemonPids(a)[0] !== pid, 'both mounts back', 20_000, 50);
    for (const d of [a, b]) expect(readFileSync(join(d.mnt, 'etc/os-release'), 'utf8')).toBe(readFileSync(p('src', 'etc/os-release'), 'utf8'));
    // one manager stops: the other image stays; the last one stops the daemon
    expect(await terminate(a)).toEqual({ code: 0, signal: null });
    expect(ourMounts(a.mnt)).toEqual([]);
    expect(readFileSync(join(b.mnt, 'etc/deep/er/still/leaf'), 'utf8')).toBe('deep\n');
    const [second] = daemonPids(b);
    expect(await terminate(b)).toEqual({ code: 0, signal: null });
    expect(ourMounts(b.mnt)).toEqual([]);
    expect(isRunning(second!)).toBe(false);
    expect(existsSync(join(state, 'shared.json'))).toBe(false);
  });

  it('rejects --target with --bootstrap, and a bad bootstrap before mounting', () => {
    const target = spawnSync(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'mount', '--target', 'localhost:5000/x:y', '--bootstrap', boot, '--mount-path', work, '--state-dir', p('state-bad')], { encoding: 'utf8' });
    expect(target.status).toBe(1);
    expect(target.stderr).toMatch(/--target does not go with --bootstrap/);
    writeFileSync(p('bad.boot'), Buffer.alloc(8192));
    mkdirSync(p('mnt-bad'));
    const bad = spawnSync(process.execPath, [join(repoRoot, 'dist', 'cli', 'main.js'), 'mount', '--bootstrap', p('bad.boot'), '--blob-dir', p('blobs'), '--mount-path', p('mnt-bad'), '--state-dir', p('state-bad')], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/not a RAFS/);
    expect(ourMounts(p('mnt-bad'))).toEqual([]);
  });

  it('regression: a process that lives on after a clean unmount is not ended by the abort timer (the demo died 3 s after its local mounts)', () => {
    const mnt = p('mnt-in-process');
    mkdirSync(mnt);
    // the daemon in a process of its own making (as the demo does), which then lives on past the session's ABORT_AFTER_MS (3 s)
    const script = `
      import { readFile } from 'node:fs/promises';
      import { DEFAULT_CONFIG } from '${join(repoRoot, 'dist', 'daemon', 'config.js')}';
      import { Daemon } from '${join(repoRoot, 'dist', 'daemon', 'daemon.js')}';
      const daemon = new Daemon({ id: 'in-process', mode: 'dedicated', mountpoint: ${JSON.stringify(mnt)}, signals: [], config: { ...DEFAULT_CONFIG, cacheDir: ${JSON.stringify(p('cache-in-process'))} } });
      await daemon.start();
      await daemon.mount('/', { bootstrap: ${JSON.stringify(boot)}, blobDir: ${JSON.stringify(p('blobs'))} });
      const text = await readFile(${JSON.stringify(join(mnt, 'etc', 'os-release'))}, 'utf8');
      await daemon.stop();
      await new Promise((r) => setTimeout(r, 3500));
      console.log('alive', text.length);`;
    // a file, not -e: the FUSE worker threads inherit the process's execArgv
    writeFileSync(p('in-process.mjs'), script);
    const r = spawnSync(process.execPath, [p('in-process.mjs')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).not.toMatch(/aborting the FUSE connection|cannot abort/);
    expect(r.stdout).toMatch(/^alive \d+$/m);
    expect(r.status).toBe(0);
  });
});

describe('mountinfo parsing', () => {
  it('finds mount points with escaped characters and the fstype after the separator', () => {
    const text = [
      '42 27 0:39 / /tmp/with\\040space ro,relatime shared:1 - fuse.nydusify nydusify ro,user_id=0',
      '43 27 7:0 / /mnt ro - erofs /dev/loop0 ro',
      'garbage',
    ].join('\n');
    expect(parseMountInfo(text)).toEqual([
      { mountId: 42, dev: '0:39', mountPoint: '/tmp/with space', fsType: 'fuse.nydusify', source: 'nydusify' },
      { mountId: 43, dev: '7:0', mountPoint: '/mnt', fsType: 'erofs', source: '/dev/loop0' },
    ]);
  });
});

describe('RafsFuseFs request handling (no kernel)', () => {
  let unique = 1n;
  const u32s = (...v: number[]) => Buffer.concat(v.map((x) => { const b = Buffer.alloc(4); b.writeUInt32LE(x); return b; }));
  const readIn = (offset: number, size: number) => {
    const b = Buffer.alloc(40);
    b.writeBigUInt64LE(BigInt(offset), 8);
    b.writeUInt32LE(size, 16);
    return b;
  };
  const routers = new WeakMap<RafsFuseFs, FuseRouter>();
  /** The image as a dedicated mount serves it. */
  const routerOf = (fs: RafsFuseFs) => {
    let r = routers.get(fs);
    if (!r) {
      r = new FuseRouter('dedicated');
      r.add(0, '/', fs);
      routers.set(fs, r);
    }
    return r;
  };
  /** Sends one request; returns the errno (0 for success) and the payload. */
  const call = (fs: RafsFuseFs, opcode: number, nodeid: number, body?: Buffer) => {
    const parts = routerOf(fs).handle(encodeRequest(opcode, ++unique, nodeid, body));
    if (!parts) return undefined;
    const all = Buffer.concat(parts);
    const h = decodeOutHeader(all);
    expect(h.len).toBe(all.length);
    expect(h.unique).toBe(unique);
    return { errno: -h.error, data: all.subarray(16) };
  };
  const lookup = (fs: RafsFuseFs, parent: number, name: string) => readEntry(call(fs, Opcode.LOOKUP, parent, Buffer.from(`${name}\0`))!.data, 0);

  it('answers lookups, negative lookups, xattr probes and paged readdir', () => {
    const fs = new RafsFuseFs(RafsImage.open(readFileSync(boot)), new SyncBlobDirSource(p('blobs'), RafsImage.open(readFileSync(boot)).blobs));
    const etc = lookup(fs, FUSE_ROOT_ID, 'etc');
    expect(etc.nodeid).toBeGreaterThan(1);
    expect(etc.attr.mode & 0o170000).toBe(0o040000);
    const missing = lookup(fs, etc.nodeid, 'missing');
    expect(missing.nodeid).toBe(0);
    expect(missing.entryValid).toBeGreaterThan(0);
    const xf = lookup(fs, etc.nodeid, 'xattrs').nodeid;
    expect(call(fs, Opcode.GETXATTR, xf, Buffer.concat([u32s(0, 0), Buffer.from('user.comment\0')]))!.data.readUInt32LE(0)).toBe(5);
    expect(call(fs, Opcode.GETXATTR, xf, Buffer.concat([u32s(2, 0), Buffer.from('user.comment\0')]))!.errno).toBe(Errno.ERANGE);
    expect(call(fs, Opcode.GETXATTR, xf, Buffer.concat([u32s(64, 0), Buffer.from('user.comment\0')]))!.data.toString()).toBe('hello');
    expect(call(fs, Opcode.GETXATTR, xf, Buffer.concat([u32s(64, 0), Buffer.from('user.none\0')]))!.errno).toBe(Errno.ENODATA);
    expect(call(fs, Opcode.LISTXATTR, xf, u32s(64, 0))!.data.toString()).toBe('user.comment\0');
    // READDIR in pages of 300 bytes (room for the longest name) resumes at each page's last `off`
    const names: string[] = [];
    for (let off = 0, rounds = 0; rounds < 100; rounds++) {
      const page = parseDirents(call(fs, Opcode.READDIR, etc.nodeid, readIn(off, 300))!.data);
      if (page.length === 0) break;
      names.push(...page.map((d) => d.name.toString('latin1')));
      off = page[page.length - 1]!.off;
    }
    const want = ['.', '..', ...readdirSync(p('ref', 'etc'), { encoding: 'buffer' }).map((n) => n.toString('latin1'))].sort();
    expect(names.sort()).toEqual(want);
    const plus = parseDirentsPlus(call(fs, Opcode.READDIRPLUS, etc.nodeid, readIn(0, 1 << 16))!.data);
    expect(plus.map((d) => d.name.toString('latin1')).sort()).toEqual(want);
    for (const d of plus) if (d.name.toString() !== '.' && d.name.toString() !== '..') expect(d.entry.attr.ino).toBe(d.ino);
    // FORGET and INTERRUPT get no reply; FLUSH and unknown ops ENOSYS; a malformed request EINVAL
    expect(call(fs, Opcode.FORGET, etc.nodeid, Buffer.alloc(8))).toBeUndefined();
    expect(call(fs, Opcode.INTERRUPT, 0, Buffer.alloc(8))).toBeUndefined();
    expect(call(fs, Opcode.FLUSH, etc.nodeid, Buffer.alloc(24))!.errno).toBe(Errno.ENOSYS);
    expect(call(fs, 4242, etc.nodeid)!.errno).toBe(Errno.ENOSYS);
    expect(call(fs, Opcode.READ, etc.nodeid, Buffer.alloc(8))!.errno).toBe(Errno.EINVAL);
    expect(call(fs, Opcode.LOOKUP, FUSE_ROOT_ID, Buffer.from('no-nul'))!.errno).toBe(Errno.EINVAL);
    // a node id no inode has is EIO (corrupt metadata), not a crash
    expect(call(fs, Opcode.GETATTR, 1e12, Buffer.alloc(16))!.errno).toBe(Errno.EIO);
  });

  it('reads verified data, and EIO for a corrupt chunk without stopping', () => {
    const image = RafsImage.open(readFileSync(boot));
    const errors: number[] = [];
    const fs = new RafsFuseFs(image, new SyncBlobDirSource(corruptBlobDir(), image.blobs), { onReadError: (nid) => errors.push(nid) });
    const bin = lookup(fs, FUSE_ROOT_ID, 'bin').nodeid;
    const etc = lookup(fs, FUSE_ROOT_ID, 'etc').nodeid;
    const big = lookup(fs, bin, 'big');
    const source = readFileSync(p('src', 'bin/big'));
    const parts: Buffer[] = [];
    for (let off = 0; off < big.attr.size; off += 1 << 20) parts.push(call(fs, Opcode.READ, big.nodeid, readIn(off, 1 << 20))!.data);
    expect(Buffer.concat(parts).equals(source)).toBe(true);
    // an unaligned range across a chunk boundary, and past the end
    expect(call(fs, Opcode.READ, big.nodeid, readIn((1 << 20) - 5, 10))!.data.equals(source.subarray((1 << 20) - 5, (1 << 20) + 5))).toBe(true);
    expect(call(fs, Opcode.READ, big.nodeid, readIn(big.attr.size + 10, 100))!.data.length).toBe(0);
    const osRelease = lookup(fs, etc, 'os-release').nodeid;
    expect(call(fs, Opcode.READ, osRelease, readIn(0, 4096))!.errno).toBe(Errno.EIO);
    expect(errors).toHaveLength(1);
    expect(call(fs, Opcode.READ, lookup(fs, etc, 'xattrs').nodeid, readIn(0, 4096))!.data.toString()).toBe('xattrs\n');
    expect(call(fs, Opcode.READ, etc, readIn(0, 4096))!.errno).toBe(Errno.EISDIR);
  });
});
