// Block mode: kernel EROFS on our FUSE image file vs our FUSE filesystem vs kernel EROFS on a local file (debian-ml), and cold `ctr run` per fs driver.
//
//   npm run bench -- block [--runs 5] [--ctr-runs 3] [--no-containerd]
//
// Needs root, /dev/fuse, erofs in the kernel (file-backed EROFS: Linux ≥ 6.12), and what
// bench/containerd-lazy needs for the second half (--no-containerd skips it). Starts the shared
// loopback registry and debian-ml from scripts/e2e (registry-up.sh, make-images.sh) and converts
// debian-ml:latest once to :containerd-lazy-nydus, the Nydus image bench/containerd-lazy runs, so both
// halves measure the same image.
//
// 1. Metadata walk and read-all of debian-ml, pulled from the loopback registry (127.0.0.1:5000), through
//    (a) `mount --block --target`: the kernel's EROFS on the one file our daemon's FUSE mount shows,
//    (b) `mount --target`: our FUSE filesystem,
//    (c) `export --block --target` written to a local file, `mount -t erofs -o ro,loop`.
//    metadata walk  `find M -printf` of type, size, mode, owner, group and mtime of every entry
//    read-all       `find M -type f | xargs -P4 -n256 cat`: MiB/s of file bytes
//    States: cold (fresh --cache-dir, kernel caches dropped, fresh mount), cache-warm (the blob
//    cache a cold read-all filled, kernel caches dropped, fresh mount), page-warm (the same
//    command again on the mount that just ran it, nothing dropped). (c) has no blob cache: its cold
//    and cache-warm are the same procedure, measured twice. Caches are dropped with
//    `sync; echo 3 > /proc/sys/vm/drop_caches` before every mount. Every system runs its whole
//    sequence once per run, interleaved, --runs times (default 5); medians are reported, with
//    ratios to (c). Targets (issue 13): (a)'s walk ≤ 1.2 × (c)'s, cold and cache-warm; (a)'s warm
//    read-all ≥ 1 GiB/s. On the first run every system's listing and file contents are hashed
//    (untimed) and compared with (c)'s.
// 2. Cold `ctr run … node -e 1` through the shaped netns registry: our snapshotter with
//    `--fs-driver block --recover-policy failover` vs `--fs-driver fuse` vs stargz-snapshotter;
//    bench/containerd-lazy runs it (`--rows ours-block,ours,stargz --runs --ctr-runs`, its own E2E_DIR)
//    and its rows are copied here.
//
// (a) and (b) are `mount` in the foreground, each with its own --state-dir under bench/out/block-work;
// they are stopped with SIGTERM (which unmounts); a daemon that outlives its `mount` is killed by the
// pid its state dir records (only if that process is still a daemon of that state dir).
// Prints markdown tables, writes bench/out/block.json.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const e2e = join(repo, 'scripts', 'e2e');
const out = join(repo, 'bench', 'out');
const work = join(out, 'block-work');
const cli = join(repo, 'dist', 'cli', 'main.js');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const runs = Number(arg('--runs', '5')) || 5;
const ctrRuns = Number(arg('--ctr-runs', '3')) || 3;
const withContainerd = !process.argv.includes('--no-containerd');

const REG = '127.0.0.1:5000';
const REPO = 'debian-ml';
// the tag bench/containerd-lazy converts to and runs: the same image in both halves
const NYDUS_TAG = 'containerd-lazy-nydus';
const REF = `${REG}/${REPO}:${NYDUS_TAG}`;
const flatImage = join(work, 'flat.erofs');
const MiB = 2 ** 20;
const GiB = 2 ** 30;

// ---------------------------------------------------------------------------------------------
// helpers

const now = () => performance.now() / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const say = (msg) => process.stderr.write(`bench block: ${msg}\n`);
const die = (msg) => {
  say(msg);
  process.exit(1);
};
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function sh(script) {
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`failed (${r.status}): ${script}\n${r.stdout.slice(-2000)}${r.stderr.slice(-4000)}`);
  return r.stdout;
}

/**
 * Wall seconds of a shell command, run asynchronously: a `mount` child of ours keeps having its
 * output read meanwhile (bash start-up included: a few ms).
 */
function timed(script) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const p = spawn('bash', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(now() - t0) : reject(new Error(`failed (${code}): ${script}\n${stderr}`))));
  });
}

const dropCaches = () => sh('sync; echo 3 > /proc/sys/vm/drop_caches');

const mountPointsUnder = (dir) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
  .map((l) => l.split(' ')[4]).filter((p) => p === dir || p?.startsWith(`${dir}/`));

/** Lazily unmounts everything under `dir`, the innermost (the last mounted) first. */
function unmountUnder(dir) {
  for (const p of mountPointsUnder(dir).reverse()) spawnSync('umount', ['-l', p]);
}

/** Kills the daemons a state dir records, each only while its command line still names that state dir. */
function killRecordedDaemons(stateDir) {
  if (!existsSync(stateDir)) return;
  for (const f of readdirSync(stateDir).filter((n) => n.endsWith('.json') && !n.endsWith('.config.json'))) {
    let pid;
    try { pid = JSON.parse(readFileSync(join(stateDir, f), 'utf8')).pid; } catch { continue; }
    let cmdline = '';
    try { cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { continue; }
    if (Number.isInteger(pid) && cmdline.includes(`${stateDir}/`)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
}

function recordedDaemonPid(stateDir) {
  const f = existsSync(stateDir) ? readdirSync(stateDir).find((n) => n.endsWith('.json') && !n.endsWith('.config.json')) : undefined;
  return f ? JSON.parse(readFileSync(join(stateDir, f), 'utf8')).pid : undefined;
}

/** A JSON log line, or undefined. */
function parsed(line) {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

function vmHwmMB(pid) {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------------
// the three systems

/** `nydusify-ts mount [--block]` in the foreground; its daemon is a process of its own, recorded in its state dir. */
class OurMount {
  constructor(key, name, flags) {
    Object.assign(this, { key, name, flags });
    this.dir = join(work, key);
    this.mnt = join(this.dir, 'mnt');
    this.cache = join(this.dir, 'cache');
    this.state = join(this.dir, 'state');
    this.child = undefined;
  }

  /** Mounts (with an empty blob cache when `fresh`); resolves to the seconds until `mount` logs "mounted". */
  mount({ fresh }) {
    if (fresh) rmSync(this.cache, { recursive: true, force: true });
    for (const d of [this.mnt, this.cache]) mkdirSync(d, { recursive: true });
    const t0 = now();
    const child = spawn(process.execPath, [cli, 'mount', ...this.flags, '--target', REF, '--plain-http', '--cache-dir', this.cache,
      '--mount-path', this.mnt, '--state-dir', this.state], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.exited = new Promise((r) => child.on('close', r));
    this.lines = [];
    let tail = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: not mounted within 120 s:\n${this.lines.slice(-20).join('\n')}`)), 120_000);
      child.stderr.on('data', (d) => {
        const parts = (tail + d).split('\n');
        tail = parts.pop();
        for (const line of parts) {
          this.lines.push(line);
          if (/"level":"(error|warn)"/.test(line)) say(`${this.key}: ${line}`);
          if (line.includes('"msg":"mounted"') && parsed(line)?.mountPath === this.mnt) {
            clearTimeout(timer);
            resolve(now() - t0);
          }
        }
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        reject(new Error(`${this.name}: mount exited (${code}) before mounting:\n${this.lines.slice(-20).join('\n')}`));
      });
    });
  }

  daemonPid() {
    return recordedDaemonPid(this.state);
  }

  /** SIGTERM to `mount` (it unmounts and stops its daemon); resolves to its "lazy loading done" log record. */
  async umount() {
    const child = this.child;
    if (!child) return undefined;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([this.exited, sleep(30_000)]);
    if (child.exitCode === null && child.signalCode === null) {
      say(`${this.name}: mount did not stop within 30 s: killing it and its daemon`);
      child.kill('SIGKILL');
    }
    this.reap();
    return parsed(this.lines.find((l) => l.includes('"msg":"lazy loading done"')) ?? '');
  }

  /** Whatever a stopped (or killed) `mount` left behind: its daemon, its mounts. */
  reap() {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
    killRecordedDaemons(this.state);
    unmountUnder(this.dir);
  }
}

/** `export --block` output, mounted by the kernel (mount(8) puts a loop device under the file). */
class LocalErofs {
  key = 'local';
  name = '(c) kernel EROFS on a local file';
  dir = join(work, 'local');
  mnt = join(this.dir, 'mnt');
  async mount() {
    mkdirSync(this.mnt, { recursive: true });
    const t0 = now();
    sh(`mount -t erofs -o ro,loop ${flatImage} ${this.mnt}`);
    return now() - t0;
  }
  daemonPid() {
    return undefined;
  }
  async umount() {
    if (mountPointsUnder(this.mnt).length) sh(`umount ${this.mnt}`);
    return undefined;
  }
  reap() {
    unmountUnder(this.dir);
  }
}

const systems = [
  new OurMount('block', '(a) kernel EROFS on our FUSE file', ['--block']),
  new OurMount('fuse', '(b) our FUSE filesystem', []),
  new LocalErofs(),
];

function cleanupSync() {
  for (const s of systems) s.reap();
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { say(`${sig}: unmounting and stopping the daemons`); process.exit(130); });

// ---------------------------------------------------------------------------------------------
// set-up

function preflight() {
  if (process.getuid?.() !== 0) die('needs root (FUSE, mount, drop_caches)');
  if (!existsSync(cli)) die(`${cli} is missing: run \`npm run build\` first`);
  if (!existsSync('/dev/fuse')) die('/dev/fuse is missing');
  const missing = ['curl', 'find', 'xargs', 'sha256sum', 'mount', 'umount'].filter((c) => spawnSync('bash', ['-c', `command -v ${c}`]).status !== 0);
  if (missing.length) die(`missing commands: ${missing.join(', ')}`);
  if (!readFileSync('/proc/filesystems', 'utf8').includes('erofs')) spawnSync('modprobe', ['erofs']);
  if (!readFileSync('/proc/filesystems', 'utf8').includes('erofs')) die('the kernel has no erofs');
}

function setUp() {
  say('registry-up, make-images…');
  for (const s of ['registry-up.sh', 'make-images.sh']) sh(join(e2e, s));
  const have = spawnSync('curl', ['-sf', '-o', '/dev/null', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json',
    `http://${REG}/v2/${REPO}/manifests/${NYDUS_TAG}`]).status === 0;
  if (!have) {
    say(`converting ${REPO}:latest → :${NYDUS_TAG} (once)…`);
    sh(`node ${cli} convert --log-level warn --plain-http --source ${REG}/${REPO}:latest --target ${REF}`);
  }
  say('export --block…');
  const t0 = now();
  sh(`node ${cli} export --log-level warn --block --target ${REF} --plain-http --output ${flatImage}`);
  return now() - t0;
}

// ---------------------------------------------------------------------------------------------
// part 1: walk and read-all

const WALK = (m) => `find ${m} -printf '%y %s %m %U %G %T@ %p\\n' > /dev/null`;
const READ_ALL = (m) => `cd ${m} && find . -type f -print0 | xargs -0 -P4 -n256 cat > /dev/null`;
// what is compared between systems (directory sizes are each filesystem's own business)
const LISTING = (m) => `cd ${m} && find . \\( -type d -printf '%y - %m %U %G %T@ %P\\n' \\) -o -printf '%y %s %m %U %G %T@ %P %l\\n' | LC_ALL=C sort | sha256sum`;
const CONTENTS = (m) => `cd ${m} && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum`;

async function remount(s, fresh) {
  await s.umount();
  dropCaches();
  return s.mount({ fresh });
}

/** One run of every measurement on one system; fills `r` (arrays of samples per measurement). */
async function measure(s, r, first) {
  const push = (k, v) => (r[k] ??= []).push(v);
  // cold: an empty blob cache
  push('mountCold', await remount(s, true));
  push('walkCold', await timed(WALK(s.mnt)));
  push('walkPage', await timed(WALK(s.mnt)));
  push('fetchedWalkCold', (await s.umount())?.fetchedBytes);
  dropCaches();
  await s.mount({ fresh: true });
  push('readCold', await timed(READ_ALL(s.mnt)));
  const pid = s.daemonPid();
  if (pid) push('hwmMB', vmHwmMB(pid));
  push('readPage', await timed(READ_ALL(s.mnt)));
  if (first) {
    r.listing = sh(LISTING(s.mnt)).split(' ')[0];
    r.contents = sh(CONTENTS(s.mnt)).split(' ')[0];
  }
  push('fetchedReadCold', (await s.umount())?.fetchedBytes);
  // cache-warm: the blob cache the cold read-all filled
  dropCaches();
  push('mountWarm', await s.mount({ fresh: false }));
  push('walkWarm', await timed(WALK(s.mnt)));
  await remount(s, false);
  push('readWarm', await timed(READ_ALL(s.mnt)));
  push('fetchedReadWarm', (await s.umount())?.fetchedBytes);
}

function treeOf(mnt) {
  const [entries, files, bytes] = sh(`find ${mnt} -printf '%y %s\\n' | awk '{n++} $1=="f"{f++; b+=$2} END{printf "%d %d %d", n, f, b}'`).split(' ').map(Number);
  return { entries, files, bytes };
}

// ---------------------------------------------------------------------------------------------
// part 2: containerd, through bench/containerd-lazy

function containerdRows() {
  const json = join(out, 'containerd-lazy.json');
  const t0 = Date.now();
  say(`bench/containerd-lazy --rows ours-block,ours,stargz --runs ${ctrRuns}…`);
  // its table goes to our stderr: ours is printed (with its rows) at the end
  const r = spawnSync(process.execPath, [join(repo, 'bench', 'containerd-lazy', 'index.mjs'), '--rows', 'ours-block,ours,stargz', '--runs', String(ctrRuns)],
    { stdio: ['ignore', 2, 2] });
  if (r.status !== 0) throw new Error(`bench/containerd-lazy failed (${r.status ?? r.signal})`);
  const result = JSON.parse(readFileSync(json, 'utf8'));
  if (Date.parse(result.date) < t0) throw new Error(`${json} is older than this run`);
  return result;
}

// ---------------------------------------------------------------------------------------------

function table(res, tree) {
  const [a, b, c] = systems.map((s) => s.key);
  const med = (k, key) => median(res[k][key] ?? []);
  const rate = (key) => (k) => tree.bytes / MiB / med(k, key);
  const rows = [];
  const row = (measurement, state, value, digits, target = '', met = undefined) => {
    const v = Object.fromEntries(systems.map((s) => [s.key, value(s.key)]));
    rows.push({ measurement, state, values: v, ratios: { [a]: v[a] / v[c], [b]: v[b] / v[c] }, target, met: met?.(v), digits });
  };
  const walkTarget = (v) => v[a] / v[c] <= 1.2;
  const readTarget = (v) => v[a] >= GiB / MiB;
  row(`metadata walk, ${tree.entries} entries (s)`, 'cold', (k) => med(k, 'walkCold'), 3, '(a) ≤ 1.2 × (c)', walkTarget);
  row('', 'cache-warm', (k) => med(k, 'walkWarm'), 3, '(a) ≤ 1.2 × (c)', walkTarget);
  row('', 'page-warm', (k) => med(k, 'walkPage'), 3);
  row(`read-all, ${tree.files} files, ${(tree.bytes / MiB).toFixed(0)} MiB (MiB/s)`, 'cold', rate('readCold'), 0);
  row('', 'cache-warm', rate('readWarm'), 0, '(a) ≥ 1024 MiB/s', readTarget);
  row('', 'page-warm', rate('readPage'), 0, '(a) ≥ 1024 MiB/s', readTarget);
  row('mount until ready (s)', 'cold', (k) => med(k, 'mountCold'), 2);
  row('', 'cache-warm', (k) => med(k, 'mountWarm'), 2);
  row('fetched from the registry (MB)', 'cold walk', (k) => med(k, 'fetchedWalkCold') / 1e6, 1);
  row('', 'cold read-all', (k) => med(k, 'fetchedReadCold') / 1e6, 1);
  row('', 'cache-warm read-all', (k) => med(k, 'fetchedReadWarm') / 1e6, 1);
  row('daemon VmHWM after cold read-all (MB)', 'cold', (k) => med(k, 'hwmMB'), 0);
  return rows;
}

const fmt = (v, d) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');

function printTable(rows) {
  const [a, b] = systems;
  console.log(`| measurement | state | ${systems.map((s) => s.name).join(' | ')} | (a) ÷ (c) | (b) ÷ (c) | target | met? |`);
  console.log('|---|---|---:|---:|---:|---:|---:|---|---|');
  for (const r of rows) {
    console.log(`| ${r.measurement} | ${r.state} | ${systems.map((s) => fmt(r.values[s.key], r.digits)).join(' | ')} | ` +
      `${fmt(r.ratios[a.key], 2)} | ${fmt(r.ratios[b.key], 2)} | ${r.target} | ${r.met === undefined ? '' : r.met ? 'met' : 'missed'} |`);
  }
}

function printContainerd(cl) {
  const block = cl.rows.find((r) => r.key === 'ours-block');
  console.log(`\ncold \`ctr run … ${cl.command.join(' ')}\` of debian-ml through ${cl.link.registry} (${cl.link.rate}, ${cl.link.delayMs} ms/direction), median of ${cl.runs} (bench/containerd-lazy)\n`);
  console.log('| path | pull s | first run s | total s | block ÷ this | fetched MB | samples (total s) |');
  console.log('|---|---:|---:|---:|---:|---:|---|');
  for (const r of cl.rows) {
    const m = r.median;
    console.log(`| ${r.name} | ${fmt(m.pull, 2)} | ${fmt(m.run, 2)} | ${fmt(m.total, 2)} | ${fmt(block.median.total / m.total, 2)}× | ` +
      `${Number.isFinite(m.fetchedBytes) ? (m.fetchedBytes / 1e6).toFixed(1) : '–'} | ${r.samples.map((s) => s.total.toFixed(2)).join(', ')} |`);
  }
}

async function main() {
  preflight();
  // what a run killed hard left behind, and its daemon records (a `mount` would adopt them)
  cleanupSync();
  for (const s of systems) if (s.state) rmSync(s.state, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const exportSec = setUp();

  const res = Object.fromEntries(systems.map((s) => [s.key, {}]));
  try {
    for (let i = 0; i < runs; i++) {
      for (const s of systems) {
        say(`run ${i + 1}/${runs}: ${s.name}…`);
        await measure(s, res[s.key], i === 0);
        const r = res[s.key];
        say(`  walk cold ${r.walkCold.at(-1).toFixed(3)} s, cache-warm ${r.walkWarm.at(-1).toFixed(3)} s, page-warm ${r.walkPage.at(-1).toFixed(3)} s; ` +
          `read-all cold ${r.readCold.at(-1).toFixed(2)} s, cache-warm ${r.readWarm.at(-1).toFixed(2)} s, page-warm ${r.readPage.at(-1).toFixed(2)} s`);
      }
    }
  } finally {
    for (const s of systems) await s.umount();
  }
  const local = systems[2];
  await local.mount();
  const tree = treeOf(local.mnt);
  await local.umount();

  const rows = table(res, tree);
  const notes = [];
  for (const s of systems.slice(0, 2)) {
    if (res[s.key].listing !== res.local.listing) notes.push(`${s.name}: the listing (type, size, mode, owner, mtime, name, link target of every entry) DIFFERS from (c)'s`);
    if (res[s.key].contents !== res.local.contents) notes.push(`${s.name}: file contents DIFFER from (c)'s`);
  }
  if (!notes.length) notes.push('listings and file contents of (a) and (b) equal (c)\'s');
  notes.push(`flat image (export --block --target, ${fmt(exportSec, 1)} s): ${(statSync(flatImage).size / MiB).toFixed(0)} MiB`);

  const cl = withContainerd ? containerdRows() : undefined;

  console.log(`\ndebian-ml (${REF}, loopback registry): ${tree.entries} entries, ${tree.files} files, ${(tree.bytes / MiB).toFixed(0)} MiB; ` +
    `median of ${runs}; ratios are the row's value ÷ (c)'s (seconds: lower is better; MiB/s: higher is better)\n`);
  printTable(rows);
  console.log(`\n${notes.map((n) => `- ${n}`).join('\n')}`);
  if (cl) printContainerd(cl);

  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'block.json'), JSON.stringify({
    date: new Date().toISOString(), runs, image: REF, tree, flatImageBytes: statSync(flatImage).size, exportSeconds: exportSec,
    systems: systems.map((s) => ({ key: s.key, name: s.name })), samples: res, rows: rows.map(({ digits, ...r }) => r), notes,
    containerd: cl ?? null,
  }, null, 2));
}

main().then(() => process.exit(0), (err) => {
  say(err.stack ?? String(err));
  process.exit(1);
});
