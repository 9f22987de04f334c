// `mount` (our FUSE daemon) reads, metadata walk and RSS next to kernel EROFS (`export --block`) and squashfuse.
//
//   npm run bench -- fuse [--runs 3] [--cold-runs 2] [--random-reads 2000] [--threads 2] [--rebuild]
//
// Needs root, /dev/fuse, erofs in the kernel, mksquashfs + squashfuse + squashfuse_ll + fusermount3
// (`apt-get install -y squashfs-tools squashfuse fuse3`) and python3. Takes about 5 minutes.
//
// Systems: our `mount` (--threads, default 2), the kernel's EROFS driver on a loop device,
// `squashfuse` (libfuse high-level API; the peer the targets name) and `squashfuse_ll` (the same
// package's low-level-API binary, the faster of the two), both in the foreground.
//
// Input: a generated tree, cached under bench/out/fuse-work (--rebuild to regenerate it):
// ~24,000 real files sampled (every k-th, sorted, ≤ 1 MiB each) from this machine's /usr, a
// 320 MiB file and eight 8 MiB files in which each MiB is half seeded pseudo-random bytes and half
// text/binaries from that /usr sample (so they compress about 2:1). It is packed as a sorted tar
// (`create --type tar-rafs`, zstd, 1 MiB chunks), exported as a flat uncompressed EROFS disk image
// (`export --block`, loop-mounted by the kernel) and squashed with `mksquashfs -comp zstd -b 1M`
// (level 3, like ours). Our bootstrap, blob and EROFS image are rebuilt on every run, the tree,
// tar and squashfs image only with --rebuild.
//
// Measurements, each interleaved over the four systems, best of --runs (read-all: --cold-runs):
//   metadata walk   cold (fresh mount, caches dropped): `find M -printf` with size/mode/owner/mtime of every entry
//   cold read-all   fresh mount, caches dropped: `find M -type f | xargs -P4 -n256 cat`; MiB/s of file bytes
//   cold seq read   fresh mount, caches dropped: `cat` of the 320 MiB file once
//   warm seq read   `cat` of the 320 MiB file again once it is in the page cache (the read in between
//                   is a sha256sum, checked against the source tree on the first run)
//   4K O_DIRECT     fresh mount: --random-reads seeded 4 KiB-aligned preadv() over the 320 MiB file,
//                   O_DIRECT; one untimed pass (warms the backing files), then the timed pass of the
//                   same offsets: IOPS, p50/p99 latency
//   daemon RSS      VmHWM (summed over the daemon's process tree) just after mounting and after a
//                   cold read-all; the largest of the --cold-runs. Kernel EROFS has no daemon.
// Every system is remounted (daemons restarted) before every cold measurement, so no user-space
// cache survives; the kernel's caches are dropped (sync; echo 3 > /proc/sys/vm/drop_caches).
// Prints a markdown table, writes bench/out/fuse.json.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(repo, 'bench', 'out');
const work = join(out, 'fuse-work');
const cli = join(repo, 'dist', 'cli', 'main.js');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const runs = Number(arg('--runs', '3'));
const coldRuns = Number(arg('--cold-runs', '2'));
const randomReads = Number(arg('--random-reads', '2000'));
const threads = Number(arg('--threads', '2'));
const rebuild = process.argv.includes('--rebuild');

const BIG_MIB = 320;
const MEDIUM = 8;
const MEDIUM_MIB = 8;
const USR_FILES = 24000;
const SEED = 20240611;

const tree = join(work, 'tree');
const tarPath = join(work, 'tree.tar');
const sqfsImg = join(work, 'tree.sqfs');
const oursDir = join(work, 'ours');
const bootstrap = join(oursDir, 'bootstrap');
const blobDir = join(oursDir, 'blobs');
const erofsImg = join(oursDir, 'tree.erofs');
const bigRel = 'big/seq-320M.bin';

// ---------------------------------------------------------------------------------------------
// helpers

function fail(msg) {
  console.error(`bench fuse: ${msg}`);
  process.exit(1);
}

function sh(script, opts = {}) {
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new Error(`failed (${r.status}): ${script}\n${r.stderr}`);
  return r.stdout;
}

/** Wall seconds of a shell command (spawn overhead included: a few ms). */
function timed(script) {
  const t0 = process.hrtime.bigint();
  sh(script);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function dropCaches() {
  sh('sync; echo 3 > /proc/sys/vm/drop_caches');
}

function mountTypeAt(path) {
  const abs = resolve(path);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep > 0 && f[4] === abs) return f[sep + 1];
  }
  return undefined;
}

function processTree(pid) {
  const kids = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const c = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
      if (c) kids.push(...c.split(/\s+/).map(Number));
    }
  } catch { /* gone */ }
  return [pid, ...kids.flatMap(processTree)];
}

/** VmHWM and VmRSS (MB) summed over a process and its descendants. */
function rssOf(pid) {
  let hwm = 0;
  let rss = 0;
  let anon = 0;
  for (const p of processTree(pid)) {
    try {
      const s = readFileSync(`/proc/${p}/status`, 'utf8');
      hwm += Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0) / 1024;
      rss += Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0) / 1024;
      anon += Number(/RssAnon:\s+(\d+)/.exec(s)?.[1] ?? 0) / 1024;
    } catch { /* gone */ }
  }
  return { hwmMB: hwm, rssMB: rss, anonMB: anon };
}

function which(tool) {
  return spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).status === 0;
}

function preflight() {
  if (process.getuid?.() !== 0) fail('needs root (FUSE, loop and drop_caches)');
  if (!existsSync(cli)) fail(`${cli} missing: run the build first`);
  if (!existsSync('/dev/fuse')) fail('/dev/fuse missing');
  const missing = ['mksquashfs', 'squashfuse', 'squashfuse_ll', 'fusermount3', 'python3', 'tar', 'find', 'xargs', 'sha256sum', 'mount', 'umount']
    .filter((t) => !which(t));
  if (missing.length) fail(`missing tools: ${missing.join(', ')} (apt-get install -y squashfs-tools squashfuse fuse3)`);
  if (!readFileSync('/proc/filesystems', 'utf8').includes('erofs')) {
    spawnSync('modprobe', ['erofs']);
    if (!readFileSync('/proc/filesystems', 'utf8').includes('erofs')) fail('the kernel has no erofs (modprobe erofs failed)');
  }
  if (!/zstd/.test(spawnSync('mksquashfs', ['-help'], { encoding: 'utf8' }).stderr + spawnSync('mksquashfs', ['-help'], { encoding: 'utf8' }).stdout)) {
    fail('mksquashfs has no zstd compressor');
  }
}

// ---------------------------------------------------------------------------------------------
// input

function buildTree() {
  const stamp = join(work, 'tree.done');
  if (!rebuild && existsSync(stamp) && existsSync(tarPath) && existsSync(tree)) return;
  console.error('generating the tree (cached in bench/out/fuse-work) ...');
  rmSync(tree, { recursive: true, force: true });
  rmSync(stamp, { force: true });
  mkdirSync(tree, { recursive: true });
  execFileSync('python3', ['-c', `
import os, random, shutil, stat
root, nfiles, seed = ${JSON.stringify(tree)}, ${USR_FILES}, ${SEED}
files = []
for d, dirs, names in os.walk('/usr'):
    dirs.sort()
    for n in sorted(names):
        p = os.path.join(d, n)
        try: st = os.lstat(p)
        except OSError: continue
        if stat.S_ISREG(st.st_mode) and 0 < st.st_size <= 1 << 20: files.append(p)
step = len(files) / nfiles
picked = [files[int(i * step)] for i in range(nfiles)]
corpus = bytearray()
for p in picked:
    dst = os.path.join(root, p.lstrip('/'))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        with open(p, 'rb') as f: data = f.read()
    except OSError:
        data = b''
    with open(dst, 'wb') as f: f.write(data)
    if len(corpus) < 64 << 20: corpus += data
rng = random.Random(seed)
half = 512 << 10
def mixed(path, mib):
    with open(path, 'wb') as f:
        for i in range(mib):
            f.write(rng.randbytes(half))
            off = rng.randrange(len(corpus) - half)
            f.write(corpus[off:off + half])
os.makedirs(os.path.join(root, 'big'), exist_ok=True)
mixed(os.path.join(root, ${JSON.stringify(bigRel)}), ${BIG_MIB})
for m in range(${MEDIUM}):
    mixed(os.path.join(root, 'big', f'medium-{m}.bin'), ${MEDIUM_MIB})
`], { stdio: ['ignore', 'inherit', 'inherit'] });
  sh(`tar -C ${tree} --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 -cf ${tarPath} .`);
  rmSync(sqfsImg, { force: true });
  writeFileSync(stamp, new Date().toISOString());
}

function buildSquashfs() {
  if (!rebuild && existsSync(sqfsImg)) return;
  console.error('mksquashfs -comp zstd -b 1M ...');
  sh(`mksquashfs ${tree} ${sqfsImg} -noappend -comp zstd -Xcompression-level 3 -b 1M -all-root -no-progress -quiet -processors ${nproc()}`);
}

function nproc() {
  return Number(sh('nproc').trim());
}

function buildOurs() {
  rmSync(oursDir, { recursive: true, force: true });
  mkdirSync(oursDir, { recursive: true });
  console.error('nydusify-ts create + export --block ...');
  const createSec = timed(`node ${cli} create --log-level warn --type tar-rafs ${tarPath} --bootstrap ${bootstrap} --blob-dir ${blobDir}`);
  sh(`node ${cli} export --log-level warn --block --bootstrap ${bootstrap} --blob-dir ${blobDir} --output ${erofsImg}`);
  return createSec;
}

function treeStats() {
  const [files, dirs, bytes] = sh(`find ${tree} -type f -printf 'f %s\\n' -o -type d -printf 'd 0\\n' | awk '$1=="f"{f++; b+=$2} $1=="d"{d++} END{printf "%d %d %d", f, d, b}'`).split(' ').map(Number);
  return { files, dirs, bytes };
}

// ---------------------------------------------------------------------------------------------
// the three systems

const children = new Set();
const mountPoints = [];

/** A FUSE server process (ours or squashfuse): asked to stop, killed if it lingers, its mount cleared. */
class FuseProcess {
  child = undefined;
  pid() {
    return this.child?.pid;
  }
  async umount() {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    const exited = child.exitCode === null ? new Promise((r) => child.once('exit', r)) : Promise.resolve();
    if (child.exitCode === null) this.stop(child);
    await Promise.race([exited, sleep(10000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    children.delete(child);
    if (mountTypeAt(this.mnt)) spawnSync('umount', ['-l', this.mnt]);
  }
}

class Ours extends FuseProcess {
  name = 'nydusify-ts FUSE';
  key = 'ours';
  mnt = join(work, 'mnt', 'ours');
  async mount() {
    mkdirSync(this.mnt, { recursive: true });
    // the daemon itself (what `mount` starts and supervises), so its memory is what is measured
    const child = spawn(process.execPath, [cli, 'daemon', '--bootstrap', bootstrap, '--blob-dir', blobDir, '--mountpoint', this.mnt, '--threads', String(threads)], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NYDUSIFY_LOG_LEVEL: 'info' } });
    children.add(child);
    this.child = child;
    let stderr = '';
    await new Promise((done, reject) => {
      const timer = setTimeout(() => reject(new Error(`our daemon did not mount in 30 s:\n${stderr}`)), 30000);
      child.stderr.on('data', (d) => {
        stderr += d.toString();
        if (stderr.includes('"msg":"daemon ready"')) {
          clearTimeout(timer);
          done();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`our daemon exited (${code}) before mounting:\n${stderr}`));
      });
    });
    child.stderr.on('data', (d) => {
      // keep errors visible, but not the info chatter
      for (const line of d.toString().split('\n')) if (/"level":"(error|warn)"/.test(line)) console.error(`daemon: ${line}`);
    });
    // "mounted" is logged before the kernel's INIT is answered; a stat waits for it
    statSync(this.mnt);
  }
  stop(child) {
    child.kill('SIGTERM');
  }
}

class Erofs {
  name = 'kernel EROFS (loop)';
  key = 'erofs';
  mnt = join(work, 'mnt', 'erofs');
  async mount() {
    mkdirSync(this.mnt, { recursive: true });
    sh(`mount -t erofs -o ro,loop ${erofsImg} ${this.mnt}`);
  }
  pid() {
    return undefined;
  }
  async umount() {
    if (mountTypeAt(this.mnt)) sh(`umount ${this.mnt}`);
  }
}

/** `squashfuse` (libfuse high-level API, what the issue names) or `squashfuse_ll` (low-level API). */
class Squashfuse extends FuseProcess {
  constructor(bin) {
    super();
    this.bin = bin;
    this.name = bin;
    this.key = bin;
    this.mnt = join(work, 'mnt', bin);
  }
  async mount() {
    mkdirSync(this.mnt, { recursive: true });
    const child = spawn(this.bin, ['-f', sqfsImg, this.mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    this.child = child;
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d.toString()));
    const deadline = Date.now() + 30000;
    while (!mountTypeAt(this.mnt)?.startsWith('fuse')) {
      if (child.exitCode !== null) throw new Error(`${this.bin} exited (${child.exitCode}):\n${stderr}`);
      if (Date.now() > deadline) throw new Error(`${this.bin} did not mount in 30 s:\n${stderr}`);
      await sleep(20);
    }
    statSync(this.mnt);
  }
  stop() {
    spawnSync('fusermount3', ['-u', this.mnt]);
  }
}

function emergencyCleanup() {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
  for (const m of mountPoints) {
    if (mountTypeAt(m)) spawnSync('umount', ['-l', m]);
  }
}
process.on('exit', emergencyCleanup);
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  // (node runs this once the command in progress returns: spawnSync blocks the event loop)
  process.on(s, () => {
    console.error(`bench fuse: ${s}: unmounting and stopping the daemons`);
    emergencyCleanup();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------------------------
// measurements

const RANDOM_PY = `
import json, mmap, os, random, sys, time
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
except OSError as e:
    print(json.dumps({"error": f"open O_DIRECT: {e}"})); sys.exit(0)
size = os.fstat(fd).st_size
buf = mmap.mmap(-1, 4096)
rng = random.Random(seed)
offs = [rng.randrange(size // 4096) * 4096 for _ in range(n)]
def one_pass():
    lat = []
    t0 = time.perf_counter()
    for o in offs:
        t = time.perf_counter()
        r = os.preadv(fd, [buf], o)
        if r != 4096: raise SystemExit(f"short read {r} at {o}")
        lat.append(time.perf_counter() - t)
    return time.perf_counter() - t0, sorted(lat)
try:
    one_pass()
    el, lat = one_pass()
except OSError as e:
    print(json.dumps({"error": f"pread O_DIRECT: {e}"})); sys.exit(0)
print(json.dumps({"iops": n / el, "p50us": lat[n // 2] * 1e6, "p99us": lat[int(n * 0.99)] * 1e6}))
`;

async function coldRestart(sys) {
  await sys.umount();
  dropCaches();
  await sys.mount();
}

async function main() {
  preflight();
  mkdirSync(work, { recursive: true });
  buildTree();
  buildSquashfs();
  const createSec = buildOurs();
  const stats = treeStats();
  const bigBytes = statSync(join(tree, bigRel)).size;
  const bigSha = sh(`sha256sum ${join(tree, bigRel)}`).split(' ')[0];
  const blobBytes = readdirSync(blobDir).reduce((n, f) => n + statSync(join(blobDir, f)).size, 0);
  const sizes = {
    ours: blobBytes + statSync(bootstrap).size,
    erofs: statSync(erofsImg).size,
    squashfuse: statSync(sqfsImg).size,
    squashfuse_ll: statSync(sqfsImg).size,
  };
  console.error(`tree: ${stats.files} files, ${stats.dirs} dirs, ${(stats.bytes / 2 ** 20).toFixed(0)} MiB; create ${createSec.toFixed(1)} s`);

  const systems = [new Ours(), new Erofs(), new Squashfuse('squashfuse'), new Squashfuse('squashfuse_ll')];
  mountPoints.push(...systems.map((s) => s.mnt));
  for (const s of systems) await s.umount(); // stale mounts of an interrupted run
  for (const s of systems) if (mountTypeAt(s.mnt)) spawnSync('umount', ['-l', s.mnt]);
  for (const s of systems) await s.mount();

  const res = Object.fromEntries(systems.map((s) => [s.key, {
    metaSec: Infinity, readAllSec: Infinity, coldSeqSec: Infinity, warmSeqSec: Infinity, random: undefined, hwmMB: undefined, rssAfterMB: undefined, entries: 0, shaOk: undefined,
  }]));

  // metadata walk, cold
  for (let i = 0; i < runs; i++) {
    for (const s of systems) {
      await coldRestart(s);
      const t = timed(`find ${s.mnt} -printf '%y %s %m %U %G %T@ %p\\n' > /dev/null`);
      res[s.key].metaSec = Math.min(res[s.key].metaSec, t);
      console.error(`  metadata walk  ${s.name}: ${t.toFixed(2)} s`);
    }
  }
  for (const s of systems) res[s.key].entries = Number(sh(`find ${s.mnt} | wc -l`).trim());

  // cold read-all + daemon RSS
  for (let i = 0; i < coldRuns; i++) {
    for (const s of systems) {
      await coldRestart(s);
      if (s.pid()) res[s.key].idleHwmMB = Math.max(res[s.key].idleHwmMB ?? 0, rssOf(s.pid()).hwmMB);
      const t = timed(`cd ${s.mnt} && find . -type f -print0 | xargs -0 -P4 -n256 cat > /dev/null`);
      res[s.key].readAllSec = Math.min(res[s.key].readAllSec, t);
      const pid = s.pid();
      if (pid) {
        const m = rssOf(pid);
        res[s.key].hwmMB = Math.max(res[s.key].hwmMB ?? 0, m.hwmMB);
        res[s.key].rssAfterMB = Math.max(res[s.key].rssAfterMB ?? 0, m.rssMB);
        res[s.key].rssAnonMB = Math.max(res[s.key].rssAnonMB ?? 0, m.anonMB);
      }
      console.error(`  cold read-all  ${s.name}: ${t.toFixed(2)} s${pid ? `, VmHWM ${rssOf(pid).hwmMB.toFixed(0)} MB` : ''}`);
    }
  }

  // cold and warm sequential read of the big file
  for (let i = 0; i < runs; i++) {
    for (const s of systems) {
      await coldRestart(s);
      const f = join(s.mnt, bigRel);
      const cold = timed(`cat ${f} > /dev/null`);
      if (res[s.key].shaOk === undefined) res[s.key].shaOk = sh(`sha256sum ${f}`).split(' ')[0] === bigSha;
      else sh(`cat ${f} > /dev/null`);
      const warm = timed(`cat ${f} > /dev/null`);
      res[s.key].coldSeqSec = Math.min(res[s.key].coldSeqSec, cold);
      res[s.key].warmSeqSec = Math.min(res[s.key].warmSeqSec, warm);
      console.error(`  seq read       ${s.name}: cold ${cold.toFixed(2)} s, warm ${warm.toFixed(3)} s`);
    }
  }

  // 4K O_DIRECT random reads
  for (let i = 0; i < runs; i++) {
    for (const s of systems) {
      // a fresh daemon each time: ours grows (and slows down) with every chunk it has decoded
      await coldRestart(s);
      const r = JSON.parse(execFileSync('python3', ['-c', RANDOM_PY, join(s.mnt, bigRel), String(randomReads), String(SEED)], { encoding: 'utf8' }));
      const prev = res[s.key].random;
      if (!prev || prev.error || (!r.error && r.iops > prev.iops)) res[s.key].random = r;
      console.error(`  4K O_DIRECT    ${s.name}: ${r.error ?? `${r.iops.toFixed(0)} IOPS`}`);
    }
  }

  for (const s of systems) await s.umount();

  // ----- table
  const MiB = 2 ** 20;
  const GiB = 2 ** 30;
  const keys = systems.map((s) => s.key);
  const peers = keys.filter((k) => k !== 'ours');
  const o = res.ours;
  const rows = [];
  const fmt = (v, d) => (v === undefined || v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
  /** One row: `value(result, key)` per system, `met(values by key)` for the target if any. */
  const row = (measurement, value, digits, target = '', met = undefined) => {
    const values = Object.fromEntries(keys.map((k) => [k, value(res[k], k)]));
    const ratios = Object.fromEntries(peers.map((k) => [k, values.ours !== undefined && values[k] !== undefined ? values.ours / values[k] : undefined]));
    rows.push({ measurement, values, ratios, target, met: met ? met(values) : undefined, digits });
  };
  const rnd = (r) => (r.random && !r.random.error ? r.random : undefined);
  row(`warm sequential read, ${BIG_MIB} MiB file (GiB/s)`, (r) => bigBytes / GiB / r.warmSeqSec, 2, 'ours ≥ 1 GiB/s', (v) => v.ours >= 1);
  row(`cold sequential read, ${BIG_MIB} MiB file (MiB/s)`, (r) => bigBytes / MiB / r.coldSeqSec, 0);
  row(`cold read-all, ${stats.files} files (MiB/s)`, (r) => stats.bytes / MiB / r.readAllSec, 0, '≥ 0.8 × kernel EROFS', (v) => v.ours / v.erofs >= 0.8);
  row('cold read-all (s)', (r) => r.readAllSec, 2);
  row(`metadata walk, ${o.entries} entries, cold (s)`, (r) => r.metaSec, 2, '≤ 2 × kernel EROFS', (v) => v.ours / v.erofs <= 2);
  row('4K O_DIRECT random read (IOPS)', (r) => rnd(r)?.iops, 0, 'ours ≥ 10k', (v) => v.ours >= 10_000);
  row('4K O_DIRECT p50 latency (µs)', (r) => rnd(r)?.p50us, 0);
  row('4K O_DIRECT p99 latency (µs)', (r) => rnd(r)?.p99us, 0);
  row('daemon VmHWM just after mounting (MB)', (r) => r.idleHwmMB, 0);
  row('daemon peak RSS: VmHWM after read-all (MB)', (r) => r.hwmMB, 0, 'ours ≤ 100 MB', (v) => v.ours <= 100);
  row('image size on disk (MiB)', (_r, k) => sizes[k] / MiB, 0);

  console.log(`tree: ${stats.files} files, ${stats.dirs} dirs, ${(stats.bytes / MiB).toFixed(0)} MiB (one ${BIG_MIB} MiB file); ` +
    `ours: zstd, 1 MiB chunks, ${threads} FUSE threads, blobs local; EROFS: export --block (uncompressed), loop; ` +
    `squashfs: zstd level 3, 1 MiB blocks; best of ${runs} (read-all: best of ${coldRuns}); ratios are ours ÷ peer\n`);
  const names = Object.fromEntries(systems.map((s) => [s.key, s.name]));
  console.log(`| measurement | ${keys.map((k) => names[k]).join(' | ')} | ${peers.map((k) => `÷ ${names[k].replace(/ \(.*/, '')}`).join(' | ')} | target | met? |`);
  console.log(`|---|${keys.map(() => '---:').join('|')}|${peers.map(() => '---:').join('|')}|---|---|`);
  for (const r of rows) {
    console.log(`| ${r.measurement} | ${keys.map((k) => fmt(r.values[k], r.digits)).join(' | ')} | ${peers.map((k) => fmt(r.ratios[k], 2)).join(' | ')} | ` +
      `${r.target} | ${r.met === undefined ? '' : r.met ? 'met' : 'missed'} |`);
  }
  const notes = [];
  for (const s of systems) {
    if (res[s.key].random?.error) notes.push(`${s.name}: 4K O_DIRECT failed: ${res[s.key].random.error}`);
    if (res[s.key].shaOk === false) notes.push(`${s.name}: sha256 of ${bigRel} DIFFERS from the source tree`);
    if (res[s.key].entries !== o.entries) notes.push(`${s.name}: ${res[s.key].entries} entries (ours ${o.entries})`);
  }
  if (o.rssAfterMB !== undefined) notes.push(`our daemon's VmRSS right after read-all: ${o.rssAfterMB.toFixed(0)} MB (${fmt(o.rssAnonMB, 0)} MB anonymous)`);
  console.log(`\n${notes.map((n) => `- ${n}`).join('\n')}`);
  writeFileSync(join(out, 'fuse.json'), JSON.stringify({
    date: new Date().toISOString(), runs, coldRuns, randomReads, threads, tree: stats, bigFileBytes: bigBytes, createSeconds: createSec, sizes, results: res,
    rows: rows.map(({ digits, ...r }) => r), notes,
  }, null, 2));
}

main().then(() => process.exit(0), (err) => {
  console.error(`bench fuse: ${err.stack ?? err}`);
  process.exit(1);
});
