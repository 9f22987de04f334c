// containerd lazy start: our snapshotter (FUSE and block drivers) vs stargz-snapshotter vs overlayfs full pull, `node -e 1` in debian-ml (shaped netns registry).
//
//   npm run bench -- containerd-lazy [--runs 3] [--rows ours,ours-opt,ours-block,ours-esgz,stargz,stargz-opt,overlayfs,ours-pull,ours-gzidx] [--hot-chunk-size 16K]
//   node bench/run.mjs containerd-lazy [--runs 3] [--rows …] [--hot-chunk-size 16K]
//
// Needs root, /dev/fuse, containerd + runc + ctr + ctr-remote, ip/tc, curl, go (once, to build the
// stargz daemon if scripts/e2e has not). Starts what it needs from scripts/e2e: registry-up.sh,
// make-images.sh, netns-up.sh (200 mbit, 10 ms per direction; E2E_RATE / E2E_DELAY_MS override),
// and a private containerd (E2E_DIR=/tmp/e2e-bench-containerd-lazy, namespace bench-cl) with two
// proxy snapshotters: stargz (stargz-up.sh, its prefetch of an optimized image's landmark region on, no background fetch) and ours
// (`nydusify-ts snapshotter`, dedicated daemons). Converts once, on loopback: debian-ml:latest →
// :containerd-lazy-nydus (ours) and → :containerd-lazy-esgz (ctr-remote image convert --estargz, ~50 s).
//
// Rows, each timed from the pull command's start to `ctr run --rm … node -e 1` exiting 0, every run
// cold (`ctr images rm --sync` of everything first; stargz restarted with its fscache/httpcache
// emptied; ours restarted on a fresh root, so a fresh blob cache):
//   - overlayfs: `ctr images pull` (download + unpack everything) + `ctr run`
//   - ours-pull: `ctr-remote image rpull --snapshotter nydusify-ts` of the plain image: our snapshotter
//     pulls it whole itself (all layers at once, each unpacked as it streams) + `ctr run`
//   - stargz: `ctr-remote image rpull` of the eStargz image + `ctr run --snapshotter stargz`
//   - ours: `ctr-remote image rpull --snapshotter nydusify-ts` of the Nydus image + `ctr run`
//     (`snapshotter --fs-driver fuse`: the lower dir is the daemon's FUSE tree)
//   - ours-esgz: our snapshotter on the eStargz image itself (no conversion; eStargz layers served lazily)
//   - ours-gzidx: our snapshotter on the plain image itself with a gzip index beside it (`index --push`
//     into a copy of the image's repository, REPO-gzidx-gN, digests preserved): its layers served lazily
//   - ours-soci: the same with a SOCI index v1 instead (REPO-soci-gN): zTOCs made by soci-snapshotter's own
//     ztoc code (bench/soci-ztoc, built from its source mirror; layers of 10 MiB and more, 4 MiB spans)
//   - ours-opt: our snapshotter on :containerd-lazy-nydus-opt-l3-SIZE (`optimize --run node -e 1`, hot
//     chunks of --hot-chunk-size, default 16K; each size optimized once, its own tag)
//   - stargz-opt: stargz-snapshotter on `ctr-remote image optimize` of the image (its prefetch landmark)
// A cold start is a cold cache and no image, not a cold snapshotter: each run waits until our
// snapshotter's spare daemon is up (as it is on a node that has run a while).
//   - ours-block: the same with `snapshotter --fs-driver block --recover-policy failover` (the lower
//     dir is the kernel's EROFS on the daemon's flat image file)
// BENCH_SNAP_LOG=PREFIX keeps the logs of each run of ours (PREFIX-N.log, PREFIX-N-daemons/);
// BENCH_TIMELINE=1 prints each run's pull and run start and end times (wall clock, as in the logs);
// BENCH_SNAP_NODE_ARGS adds node flags to the snapshotter's process (a --cpu-prof, say).
// --rows picks some of them (comma-separated keys; default all). Medians of --runs (default 3),
// interleaved. Ratio = ours ÷ baseline; targets ≤ 0.5× stargz and ≤ 0.15× full pull, for both of
// our drivers. Prints a markdown table, writes bench/out/containerd-lazy.json.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { floorSeconds, measureFloor, rateBytes } from '../floor.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const e2e = join(repo, 'scripts', 'e2e');
const out = join(repo, 'bench', 'out');
const cli = join(repo, 'dist', 'cli', 'main.js');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const runs = Number(arg('--runs', '3')) || 3;
const rowKeys = arg('--rows', 'ours,ours-opt,ours-block,ours-esgz,stargz,stargz-opt,overlayfs,ours-pull,ours-gzidx').split(',');
const REG = '127.0.0.1:5000';
const NSREG = '10.203.0.2:5000';
/** The image (repository, tag latest) and the command run in it: debian-ml's `node -e 1` unless told (bench/plain-oci runs another with /bin/true). */
const REPO = arg('--repo', 'debian-ml');
const NYDUS_TAG = 'containerd-lazy-nydus';
/** The plain image's copy that has a gzip index (its own repository: an index makes our snapshotter serve the image lazily, not pull it); g1: the index's generation. */
const GZIDX_REPO = `${REPO}-gzidx-g2`;
/** The plain image's copy with a SOCI index (soci's own zTOCs, bench/soci-ztoc) beside it: our snapshotter serves it lazily from that index. */
const SOCI_REPO = `${REPO}-soci-g2`;
const ESGZ_TAG = 'containerd-lazy-esgz';
/** The eStargz image optimized by stargz's own tool for CMD (ctr-remote image optimize: it runs a container). */
const ESGZ_OPT_TAG = 'containerd-lazy-esgz-opt';
/** Our Nydus image optimized for CMD (nydusify-ts optimize --run: a trace of CMD under our daemon, no container). */
/** The optimized image's hot chunk size (`--hot-chunk-size`); each size is its own tag. */
const HOT_CHUNK_SIZE = arg('--hot-chunk-size', '16K');
/** l3 (hot packs): the generation of optimize's output, bumped when it changes (a cached image of an older one measures old code). */
const NYDUS_OPT_TAG = `containerd-lazy-nydus-opt-l3-${HOT_CHUNK_SIZE.toLowerCase()}`;
const DELAY_MS = process.env.E2E_DELAY_MS ?? '10';
const RATE = process.env.E2E_RATE ?? '200mbit';
const CMD = arg('--cmd', 'node -e 1').split(' ');
/** --no-floor: the lazy floor (pages the command touches) is not measured (a full-pull comparison has no use for it). */
const withFloor = !process.argv.includes('--no-floor');
const needs = (...keys) => keys.some((k) => rowKeys.includes(k));
const DIR = '/tmp/e2e-bench-containerd-lazy';
const NS = 'bench-cl';
const SNAP_SOCK = join(DIR, 'nydusify-ts.sock');
const SNAP_ROOT = join(DIR, 'nydusify-ts');
/**
 * The netns registry's log (scripts/e2e/netns-up.sh): every blob GET every row makes, with its bytes.
 * The registry is shared: if the e2e harness (default E2E_DIR) started it first, its log is there.
 */
const nsLog = () => [join(DIR, 'logs', 'ns-registry.log'), join(process.env.E2E_DIR ?? '/tmp/e2e', 'logs', 'ns-registry.log')]
  .filter((f) => existsSync(f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
const env = { ...process.env, E2E_STARGZ_NO_PREFETCH: '0', E2E_DIR: DIR, E2E_DELAY_MS: DELAY_MS, E2E_RATE: RATE, E2E_EXTRA_SNAPSHOTTERS: `nydusify-ts=${SNAP_SOCK}`, CONTAINERD_ADDRESS: join(DIR, 'containerd', 'containerd.sock') };

const now = () => performance.now() / 1000;
/** Wall-clock time of a now() reading, to line up with the logs. */
const wall = (t) => new Date(performance.timeOrigin + t * 1000).toISOString().slice(11, 23);
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const die = (msg) => {
  console.error(`bench containerd-lazy: ${msg}`);
  process.exit(1);
};
const say = (msg) => process.stderr.write(`bench containerd-lazy: ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sh(script, e = env) {
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', env: e, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`failed (${r.status}): ${script}\n${r.stdout.slice(-2000)}${r.stderr.slice(-4000)}`);
  return r.stdout;
}

/** Asynchronous, so the snapshotter (our child) keeps being served; rejects on non-zero exit. */
function run(cmd, args, timeoutMs = 300_000) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout = (stdout + d).slice(-100_000); });
    p.stderr.on('data', (d) => { stderr = (stderr + d).slice(-100_000); });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${cmd} ${args.join(' ')} → exit ${code}\n${stderr.slice(-3000)}${stdout.slice(-1000)}`));
    });
  });
}
const ctr = (args) => run('ctr', ['-n', NS, ...args]);
const ctrRemote = (args) => run('ctr-remote', ['-n', NS, ...args]);

// ---------------------------------------------------------------------------------------------
// our snapshotter, restarted on a fresh root for every cold run

/** `snapshotter` flags of each of our fs drivers. */
const driverFlags = {
  fuse: ['--fs-driver', 'fuse'],
  block: ['--fs-driver', 'block', '--recover-policy', 'failover'],
};

let snap;
async function startOurs(fsDriver) {
  rmSync(SNAP_ROOT, { recursive: true, force: true });
  // BENCH_SNAP_NODE_ARGS: node flags for the snapshotter process (e.g. --cpu-prof --cpu-prof-dir=DIR)
  const nodeArgs = (process.env.BENCH_SNAP_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, cli, 'snapshotter', '--address', SNAP_SOCK, '--root', SNAP_ROOT, '--plain-http', ...driverFlags[fsDriver]], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...env, NYDUSIFY_LOG_LEVEL: process.env.BENCH_SNAP_LOG_LEVEL ?? 'info' } });
  let log = '';
  child.stderr.on('data', (d) => { log = (log + d).slice(-200_000); });
  const exited = new Promise((r) => child.on('close', r));
  snap = { child, exited, log: () => log };
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) die(`snapshotter exited: ${log}`);
    if (log.includes('"snapshotter ready"')) {
      // containerd's connection may be in backoff (≤ 3 s): a Prepare must go through
      const probe = `probe-${i}`;
      if (spawnSync('ctr', ['-n', NS, 'snapshots', '--snapshotter', 'nydusify-ts', 'prepare', probe], { env }).status === 0) {
        spawnSync('ctr', ['-n', NS, 'snapshots', '--snapshotter', 'nydusify-ts', 'rm', probe], { env });
        // a running snapshotter has its spare daemon up: a cold start is a cold cache, not a cold
        // snapshotter (failover hands each daemon its connection at spawn: no spares)
        if (!driverFlags[fsDriver].includes('failover')) await untilSpareReady();
        // and its eStargz path compiled (it rehearses that over a made-up image once it is up)
        await untilRehearsed();
        return;
      }
    }
    if (i > 600) die(`snapshotter not reachable: ${log}`);
    await sleep(50);
  }
}
/** Waits (≤ 20 s) until the snapshotter's spare daemon says it is ready. */
async function untilSpareReady() {
  const dir = join(SNAP_ROOT, 'daemons', 'spares');
  for (let i = 0; i < 400; i++) {
    if (existsSync(dir) && readdirSync(dir).some((n) => n.endsWith('.log') && readFileSync(join(dir, n), 'utf8').includes('"spare daemon ready"'))) return;
    await sleep(50);
  }
  die('the snapshotter\'s spare daemon did not come up');
}
/** Waits (≤ 20 s) until the snapshotter has rehearsed its eStargz chain path (or says it could not). */
async function untilRehearsed() {
  for (let i = 0; i < 400; i++) {
    if (/eStargz chain path rehearsed|rehearsing the eStargz chain path/.test(snap.log())) return;
    await sleep(50);
  }
  die('the snapshotter did not rehearse its eStargz path');
}
let stops = 0;
async function stopOurs() {
  if (!snap) return;
  if (snap.child.exitCode === null) snap.child.kill('SIGTERM');
  await snap.exited;
  // BENCH_SNAP_LOG=PREFIX keeps each run's snapshotter log (and its daemons' logs) as PREFIX-N.log / PREFIX-N-daemons/
  if (process.env.BENCH_SNAP_LOG) {
    writeFileSync(`${process.env.BENCH_SNAP_LOG}-${stops}.log`, snap.log());
    const d = join(SNAP_ROOT, 'daemons');
    if (existsSync(d)) sh(`mkdir -p '${process.env.BENCH_SNAP_LOG}-${stops}-daemons' && cp ${d}/*.log ${SNAP_ROOT}/traces/*.json '${process.env.BENCH_SNAP_LOG}-${stops}-daemons/' 2>/dev/null || true`);
  }
  stops++;
  // daemons left (none once images are removed): by recorded pid, then their mounts
  const d = join(SNAP_ROOT, 'daemons');
  for (const n of existsSync(d) ? readdirSync(d).filter((x) => x.endsWith('.json') && !x.endsWith('.config.json')) : []) {
    try { process.kill(JSON.parse(readFileSync(join(d, n), 'utf8')).pid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const point = l.split(' ')[4];
    if (point?.startsWith(`${SNAP_ROOT}/`)) spawnSync('umount', ['-l', point]);
  }
  snap = undefined;
}

async function dropImages() {
  const refs = (await ctr(['images', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
  if (refs.length) await ctr(['images', 'rm', '--sync', ...refs]);
}

// ---------------------------------------------------------------------------------------------
// set-up

function preflight() {
  if (process.getuid?.() !== 0) die('needs root');
  if (!existsSync(cli)) die(`${cli} is missing: run \`npm run build\` first`);
  const missing = ['containerd', 'ctr', 'ctr-remote', 'runc', 'curl', 'ip', 'tc'].filter((c) => spawnSync('bash', ['-c', `command -v ${c}`]).status !== 0);
  if (missing.length) die(`missing commands: ${missing.join(', ')} (see scripts/e2e/README.md)`);
}

const hasTag = (host, tag, repository = REPO) => spawnSync('curl', ['-sf', '-o', '/dev/null', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json', `http://${host}/v2/${repository}/manifests/${tag}`]).status === 0;

async function setUp() {
  say(`registry-up, make-images, netns-up (${RATE}, ${DELAY_MS} ms/direction), private containerd + stargz…`);
  for (const s of ['registry-up.sh', 'make-images.sh']) sh(join(e2e, s), { ...process.env });
  sh(join(e2e, 'netns-up.sh'), { ...process.env, E2E_DELAY_MS: DELAY_MS, E2E_RATE: RATE });
  // the stargz daemon binary scripts/e2e built once for the default E2E_DIR saves a 20–50 s build
  mkdirSync(join(DIR, 'bin'), { recursive: true });
  const built = join(process.env.E2E_DIR ?? '/tmp/e2e', 'bin', 'e2e-stargz-grpc');
  if (!existsSync(join(DIR, 'bin', 'e2e-stargz-grpc')) && existsSync(built)) copyFileSync(built, join(DIR, 'bin', 'e2e-stargz-grpc'));
  const up = spawnSync(join(e2e, 'containerd-up.sh'), [], { env, encoding: 'utf8' });
  if (up.status !== 0) sh(`${e2e}/containerd-up.sh --restart`);
  process.on('exit', () => spawnSync(join(e2e, 'stop.sh'), ['stargz', 'containerd'], { env, stdio: 'ignore' }));
  if (needs('stargz', 'stargz-opt')) sh(join(e2e, 'stargz-up.sh'));
  if (needs('ours', 'ours-block', 'ours-opt') && !hasTag(REG, NYDUS_TAG)) {
    say(`converting ${REPO}:latest → :${NYDUS_TAG} (once)…`);
    sh(`node ${cli} convert --log-level warn --plain-http --source ${REG}/${REPO}:latest --target ${REG}/${REPO}:${NYDUS_TAG}`);
  }
  if (rowKeys.includes('ours-opt') && !hasTag(REG, NYDUS_OPT_TAG)) {
    say(`optimizing :${NYDUS_TAG} → :${NYDUS_OPT_TAG} for \`${CMD.join(' ')}\` (once)…`);
    sh(`node ${cli} optimize --log-level warn --plain-http --hot-chunk-size ${HOT_CHUNK_SIZE} --source ${REG}/${REPO}:${NYDUS_TAG} --target ${REG}/${REPO}:${NYDUS_OPT_TAG} --run /usr/local/bin/${CMD.join(' ')}`);
  }
  if (needs('ours-esgz', 'stargz') && !hasTag(REG, ESGZ_TAG)) {
    say(`converting ${REPO}:latest → :${ESGZ_TAG} with ctr-remote (once, ~50 s)…`);
    await ctr(['images', 'pull', '--plain-http', `${REG}/${REPO}:latest`]);
    await ctrRemote(['image', 'convert', '--estargz', '--oci', `${REG}/${REPO}:latest`, `${REG}/${REPO}:${ESGZ_TAG}`]);
    await ctr(['images', 'push', '--plain-http', `${REG}/${REPO}:${ESGZ_TAG}`]);
    await dropImages();
  }
  if (rowKeys.includes('stargz-opt') && !hasTag(REG, ESGZ_OPT_TAG)) {
    say(`optimizing ${REPO}:latest → :${ESGZ_OPT_TAG} with ctr-remote image optimize for \`${CMD.join(' ')}\` (once, ~60 s)…`);
    await ctr(['images', 'pull', '--plain-http', `${REG}/${REPO}:latest`]);
    await ctrRemote(['image', 'optimize', '--oci', '--period', '3', '--entrypoint', JSON.stringify([`/usr/local/bin/${CMD[0]}`]), '--args', JSON.stringify(CMD.slice(1)), `${REG}/${REPO}:latest`, `${REG}/${REPO}:${ESGZ_OPT_TAG}`]);
    await ctr(['images', 'push', '--plain-http', `${REG}/${REPO}:${ESGZ_OPT_TAG}`]);
    await dropImages();
  }
  if (rowKeys.includes('ours-gzidx') && !hasTag(REG, 'latest', GZIDX_REPO)) {
    say(`copying ${REPO}:latest → ${GZIDX_REPO}:latest and pushing its gzip index (once)…`);
    sh(`skopeo copy --quiet --preserve-digests --dest-tls-verify=false --src-tls-verify=false docker://${REG}/${REPO}:latest docker://${REG}/${GZIDX_REPO}:latest`);
    sh(`node ${cli} index --log-level warn --plain-http --push --source ${REG}/${GZIDX_REPO}:latest`);
  }
  if (rowKeys.includes('ours-gzidx') && !hasTag(NSREG, 'latest', GZIDX_REPO)) die(`${NSREG}/${GZIDX_REPO}:latest is not visible through the netns registry`);
  if (rowKeys.includes('ours-soci') && !hasTag(REG, 'latest', SOCI_REPO)) {
    say(`copying ${REPO}:latest → ${SOCI_REPO}:latest and pushing a SOCI index made by soci's own ztoc code (once; needs its source mirror: bench/soci-ztoc/make.sh)…`);
    // tagged latest only once indexed: a failed index leaves no latest to skip it next time
    const copy = (tag) => sh(`skopeo copy --quiet --preserve-digests --dest-tls-verify=false --src-tls-verify=false docker://${REG}/${REPO}:latest docker://${REG}/${SOCI_REPO}:${tag}`);
    copy('unindexed');
    sh(`node ${join(repo, 'bench', 'soci-ztoc', 'push-index.mjs')} ${REG}/${SOCI_REPO}:unindexed`);
    copy('latest');
  }
  if (rowKeys.includes('ours-soci') && !hasTag(NSREG, 'latest', SOCI_REPO)) die(`${NSREG}/${SOCI_REPO}:latest is not visible through the netns registry`);
  const tags = ['latest', ...(needs('ours', 'ours-block', 'ours-opt') ? [NYDUS_TAG] : []), ...(needs('ours-esgz', 'stargz') ? [ESGZ_TAG] : []), ...(rowKeys.includes('ours-opt') ? [NYDUS_OPT_TAG] : []), ...(rowKeys.includes('stargz-opt') ? [ESGZ_OPT_TAG] : [])];
  for (const t of tags) if (!hasTag(NSREG, t)) die(`${NSREG}/${REPO}:${t} is not visible through the netns registry`);
}

// ---------------------------------------------------------------------------------------------
// the measured paths (each cold)

let seq = 0;
/** Bytes of blob GETs (whole or ranges) the netns registry logged since `logSize()` said `from`, whoever asked. */
function registryBytes({ log, size }) {
  if (!log) return NaN;
  let total = 0;
  for (const line of readFileSync(log).subarray(size).toString('utf8').split('\n')) {
    const m = /"GET \/v2\/[^ ]+\/blobs\/sha256:[0-9a-f]{64} [^"]*" 20[06] (\d+)/.exec(line);
    if (m) total += Number(m[1]);
  }
  return total;
}

/** Where the registry log ends now (and which log it is). */
function logSize() {
  const log = nsLog();
  return { log, size: log ? statSync(log).size : 0 };
}

/**
 * Flushes the page cache and waits (≤ 20 s) until the disks have written, read and discarded
 * nothing for a second: removing the last run's image (hundreds of MB of files: their writeback and
 * discards) must not slow the next run's writes, whichever row that is.
 */
async function quietDisks() {
  spawnSync('sync');
  const counters = () => readdirSync('/sys/block').filter((d) => !/^(loop|zram|ram)/.test(d))
    .map((d) => readFileSync(join('/sys/block', d, 'stat'), 'utf8').trim().split(/\s+/).filter((_, i) => i !== 8 && i !== 9 && i !== 10).join(' ')).join('|');
  let last = counters();
  for (let i = 0, still = 0; i < 80 && still < 4; i++) {
    await sleep(250);
    const now = counters();
    still = now === last ? still + 1 : 0;
    last = now;
  }
}

async function timed(pull, snapshotter, ref) {
  const id = `bench-cl-${process.pid}-${seq++}`;
  await quietDisks();
  const from = logSize();
  const t0 = now();
  await pull();
  const pulled = now() - t0;
  await ctr(['run', '--rm', ...(snapshotter ? ['--snapshotter', snapshotter] : []), ref, id, ...CMD]);
  const total = now() - t0;
  if (process.env.BENCH_TIMELINE) console.error(`timeline ${id}: pull ${wall(t0)} → ${wall(t0 + pulled)}, run → ${wall(t0 + total)}`);
  return { pull: pulled, run: total - pulled, total, registryBytes: registryBytes(from) };
}

async function overlayfsRun() {
  await dropImages();
  const ref = `${NSREG}/${REPO}:latest`;
  return timed(() => ctr(['images', 'pull', '--plain-http', ref]), undefined, ref);
}

async function stargzRun(tag = ESGZ_TAG) {
  await dropImages();
  // stargz keeps fetched chunks across image removal: restart it with its caches emptied
  sh(`${e2e}/stop.sh stargz`);
  for (const c of ['fscache', 'httpcache']) rmSync(join(DIR, 'stargz', 'root', 'stargz', c), { recursive: true, force: true });
  sh(join(e2e, 'stargz-up.sh'));
  const ref = `${NSREG}/${REPO}:${tag}`;
  return timed(() => ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', 'stargz', ref]), 'stargz', ref);
}

async function oursRun(fsDriver, tag = NYDUS_TAG, repository = REPO) {
  await dropImages();
  await stopOurs();
  await startOurs(fsDriver);
  const ref = `${NSREG}/${repository}:${tag}`;
  const r = await timed(() => ctrRemote(['image', 'rpull', '--plain-http', '--snapshotter', 'nydusify-ts', ref]), 'nydusify-ts', ref);
  // the container is gone, so its daemon stopped and logged what it fetched
  const d = join(SNAP_ROOT, 'daemons');
  let fetched = NaN;
  for (let i = 0; i < 50 && !Number.isFinite(fetched); i++) {
    for (const n of existsSync(d) ? readdirSync(d).filter((x) => x.endsWith('.log')) : []) {
      const line = readFileSync(join(d, n), 'utf8').split('\n').find((l) => l.includes('"daemon stopped"'));
      if (line) fetched = JSON.parse(line).backend.bytes;
    }
    if (!Number.isFinite(fetched)) await sleep(100);
  }
  return { ...r, fetchedBytes: fetched };
}

// ---------------------------------------------------------------------------------------------

preflight();
rmSync(SNAP_ROOT, { recursive: true, force: true });
await setUp();
if (withFloor) say(`measuring the floor: pages \`${CMD.join(' ')}\` touches in the unpacked image, compressed…`);
const floor = withFloor && measureFloor({ source: `docker://${REG}/${REPO}:latest`, cmd: [`/usr/local/bin/${CMD[0]}`, ...CMD.slice(1)], work: join(DIR, 'floor'), env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/root', LANG: 'C' } });
const allRows = [
  { name: 'nydusify-ts snapshotter, FUSE driver (rpull, lazy)', key: 'ours', measure: () => oursRun('fuse'), samples: [] },
  { name: 'nydusify-ts snapshotter on our optimized image (optimize --run, hot region streamed at mount)', key: 'ours-opt', measure: () => oursRun('fuse', NYDUS_OPT_TAG), samples: [] },
  { name: 'nydusify-ts snapshotter, block driver (rpull, lazy, kernel EROFS)', key: 'ours-block', measure: () => oursRun('block'), samples: [] },
  { name: 'nydusify-ts snapshotter on the eStargz image (rpull, lazy, no conversion)', key: 'ours-esgz', measure: () => oursRun('fuse', ESGZ_TAG), samples: [] },
  { name: 'stargz-snapshotter (rpull eStargz, lazy)', key: 'stargz', measure: () => stargzRun(), samples: [] },
  { name: 'stargz-snapshotter on its optimized eStargz (ctr-remote image optimize, prefetch)', key: 'stargz-opt', measure: () => stargzRun(ESGZ_OPT_TAG), samples: [] },
  { name: 'overlayfs (ctr pull, full)', key: 'overlayfs', measure: overlayfsRun, samples: [] },
  { name: 'nydusify-ts snapshotter pulling the plain image whole (rpull: all layers at once, each unpacked as it streams)', key: 'ours-pull', measure: () => oursRun('fuse', 'latest'), samples: [] },
  { name: 'nydusify-ts snapshotter on the plain image with a gzip index (rpull, lazy, no conversion)', key: 'ours-gzidx', measure: () => oursRun('fuse', 'latest', GZIDX_REPO), samples: [] },
  { name: 'nydusify-ts snapshotter on the plain image with a SOCI index (soci\'s zTOCs, 4 MiB spans; rpull, lazy)', key: 'ours-soci', measure: () => oursRun('fuse', 'latest', SOCI_REPO), samples: [] },
];
const unknownRows = rowKeys.filter((k) => !allRows.some((r) => r.key === k));
if (unknownRows.length) die(`unknown --rows ${unknownRows.join(', ')} (have ${allRows.map((r) => r.key).join(', ')})`);
const rows = allRows.filter((r) => rowKeys.includes(r.key));
try {
  for (let i = 0; i < runs; i++) {
    for (const r of rows) {
      process.stderr.write(`bench containerd-lazy: run ${i + 1}/${runs}: ${r.name}…`);
      const s = await r.measure(i);
      process.stderr.write(` ${s.total.toFixed(2)} s\n`);
      r.samples.push(s);
    }
  }
} catch (e) {
  await stopOurs();
  die(e.stack ?? String(e));
}
await dropImages().catch(() => {});
await stopOurs();

for (const r of rows) r.median = Object.fromEntries(['pull', 'run', 'total', 'fetchedBytes', 'registryBytes'].map((k) => [k, median(r.samples.map((s) => s[k]))]).filter(([, v]) => Number.isFinite(v)));
const ourRows = rows.filter((r) => r.key.startsWith('ours'));
console.log(`\nlink: ${NSREG} (netns e2e-reg), ${RATE}, ${DELAY_MS} ms/direction; ${REPO}, \`ctr run … ${CMD.join(' ')}\`, cold; median of ${runs}\n`);
console.log(`| path | pull s | first run s | total s | registry MB | ${ourRows.map((o) => `${o.key} ÷ this`).join(' | ')} | samples (total s) |`);
console.log(`|---|---:|---:|---:|---:|${ourRows.map(() => '---:|').join('')}---|`);
for (const r of rows) {
  const m = r.median;
  const mb = Number.isFinite(m.registryBytes) ? (m.registryBytes / 1e6).toFixed(1) : '–';
  console.log(`| ${r.name} | ${m.pull.toFixed(2)} | ${m.run.toFixed(2)} | ${m.total.toFixed(2)} | ${mb} | ${ourRows.map((o) => `${(o.median.total / m.total).toFixed(2)}×`).join(' | ')} | ${r.samples.map((s) => s.total.toFixed(2)).join(', ')} |`);
}
for (const o of ourRows) if (Number.isFinite(o.median.fetchedBytes)) console.log(`\n${o.key} fetched ${(o.median.fetchedBytes / 1e6).toFixed(1)} MB (median) from the registry`);
// the floor: a container start with the data local (overlayfs row's run, else the cold chroot run), plus the touched pages compressed at link rate, plus 3 round trips
const overlay = rows.find((r) => r.key === 'overlayfs');
const floorTotal = floor && floorSeconds(floor, { localRun: overlay?.median.run ?? floor.localRun, rateBytesPerSec: rateBytes(RATE), rttSeconds: (2 * Number(DELAY_MS)) / 1000 });
if (floor) console.log(`\nfloor: \`${CMD.join(' ')}\` touches ${(floor.touchedBytes / 1e6).toFixed(1)} MB (${(floor.compressedBytes / 1e6).toFixed(1)} MB zstd) in ${floor.files.length} files; ` +
  `floor start ${floorTotal.toFixed(2)} s = ${overlay ? 'local container run' : 'cold local chroot run'} ${(overlay?.median.run ?? floor.localRun).toFixed(2)} s + ${(floor.compressedBytes / rateBytes(RATE)).toFixed(2)} s at ${RATE} + 3 round trips`);
if (floor) console.log(`| path | total s | ÷ floor | registry MB | ÷ floor bytes |`);
if (floor) console.log('|---|---:|---:|---:|---:|');
if (floor) for (const r of rows) console.log(`| ${r.name} | ${r.median.total.toFixed(2)} | ${(r.median.total / floorTotal).toFixed(2)}× | ${Number.isFinite(r.median.registryBytes) ? (r.median.registryBytes / 1e6).toFixed(1) : '–'} | ${Number.isFinite(r.median.registryBytes) ? `${(r.median.registryBytes / floor.compressedBytes).toFixed(2)}×` : '–'} |`);
const optTargets = [];
const opt = rows.find((r) => r.key === 'ours-opt');
if (opt) {
  const check = (what, value, max) => {
    console.log(`target ours-opt ${what} ≤ ${max}: ${value.toFixed(2)} — ${value <= max ? 'met' : 'missed'}`);
    optTargets.push({ what, value, max, met: value <= max });
  };
  const sopt = rows.find((r) => r.key === 'stargz-opt');
  if (sopt) {
    check('time ÷ stargz-opt', opt.median.total / sopt.median.total, 0.5);
    check('registry bytes ÷ stargz-opt\'s', opt.median.registryBytes / sopt.median.registryBytes, 1);
  }
  if (floor) check('time ÷ floor', opt.median.total / floorTotal, 1.3);
}
const targets = [
  { baseline: 'stargz', max: 0.5 },
  { baseline: 'overlayfs', max: 0.15 },
].flatMap((t) => {
  const base = rows.find((r) => r.key === t.baseline);
  if (!base) return [];
  // the lazy rows' targets: a full pull is measured against containerd's own below
  return ourRows.filter((o) => o.key !== 'ours-pull').map((o) => {
    const ratio = o.median.total / base.median.total;
    console.log(`target ${o.key} ÷ ${t.baseline} ≤ ${t.max}: ${ratio.toFixed(2)} — ${ratio <= t.max ? 'met' : 'missed'}`);
    return { ...t, ours: o.key, ratio, met: ratio <= t.max };
  });
});
const pull = rows.find((r) => r.key === 'ours-pull');
if (pull && overlay) {
  const speedup = overlay.median.pull / pull.median.pull;
  console.log(`target ours-pull's pull ≥ 1.5× faster than containerd's (ctr pull): ${speedup.toFixed(2)}× — ${speedup >= 1.5 ? 'met' : 'missed'}`);
  targets.push({ baseline: 'overlayfs', ours: 'ours-pull', speedup, min: 1.5, met: speedup >= 1.5 });
}
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'containerd-lazy.json'), JSON.stringify({
  date: new Date().toISOString(), runs, rowKeys: rows.map((r) => r.key), link: { registry: NSREG, rate: RATE, delayMs: Number(DELAY_MS) }, command: CMD,
  rows: rows.map(({ name, key, samples, median: m }) => ({ name, key, median: m, samples })), targets, optTargets,
  // every touched file with its ranges: bench/stargz-lazy finds the eStargz members holding them
  ...(floor ? { floor: { ...floor, seconds: floorTotal } } : {}),
}, null, 2));
