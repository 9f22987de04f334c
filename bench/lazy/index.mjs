// Lazy start: Nydus `mount` + `node -e 1` vs full pull + unpack + the same (debian-ml, shaped netns registry).
//
//   npm run bench -- lazy [--runs 3] [--no-containerd]
//   node bench/run.mjs lazy [--runs 3] [--no-containerd]
//
// Needs root, /dev/fuse, chroot, skopeo, umoci, curl, ip/tc, and (for the containerd row) containerd +
// runc + ctr. Starts what it needs, idempotently, from scripts/e2e: registry-up.sh (loopback
// registry 127.0.0.1:5000), make-images.sh (debian-ml:latest), netns-up.sh with 200 mbit and 10 ms
// per direction (E2E_RATE / E2E_DELAY_MS override) — the "remote" registry is 10.203.0.2:5000 in
// netns e2e-reg and shares the loopback registry's storage. debian-ml:latest is converted once,
// on loopback, to debian-ml:nydus-bench (skipped when the tag exists).
//
// Rows, each timed from process start to `chroot ROOT /usr/local/bin/node -e 1` exiting 0:
//   - ours: `nydusify-ts mount --target NS/debian-ml:nydus-bench` with a fresh empty --cache-dir;
//     "ready" = until it logs "mounted". node needs neither /proc nor /dev, so the read-only FUSE
//     mount is chrooted into directly (no overlay). Fetched bytes / Range requests come from the
//     "lazy loading done" line it logs on SIGTERM (they include the warm second run, which should
//     add nothing).
//   - skopeo copy docker://NS/debian-ml:latest → oci:DIR (fresh dir) + umoci unpack + chroot rootfs.
//   - containerd: `ctr images pull` + `ctr run --rm` (what a docker/containerd user waits for), on a
//     private containerd (E2E_DIR=/tmp/e2e-bench-lazy, namespace bench-lazy) so content that other
//     jobs pulled into the shared one cannot make the pull warm (content is shared across
//     namespaces); `ctr images rm --sync` before every run. Includes runc start-up (~0.2–0.4 s).
// "warm" = the same command run a second time right after (page cache / FUSE cache warm).
// Each column is a median of its own, so ready + first run need not add up to total.
// Every row runs --runs times (default 3), interleaved; medians are reported. Ratio = baseline
// total ÷ ours total; target ≥ 5×. Prints a markdown table, writes bench/out/lazy.json.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { floorSeconds, measureFloor, rateBytes } from '../floor.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const e2e = join(repo, 'scripts', 'e2e');
const out = join(repo, 'bench', 'out');
const work = join(out, 'lazy-work');
const cli = join(repo, 'dist', 'cli', 'main.js');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const runs = Number(arg('--runs', '3')) || 3;
const withContainerd = !process.argv.includes('--no-containerd');

const REG = '127.0.0.1:5000'; // loopback registry (push/convert)
const NSREG = '10.203.0.2:5000'; // shaped registry in netns e2e-reg (pull)
const REPO = 'debian-ml';
const NYDUS_TAG = 'nydus-bench';
/** debian-ml optimized for CMD: `optimize --run` records CMD under our daemon and lays the image out hot-first. */
/** l3 (hot packs): the generation of optimize's output, bumped when it changes (a cached image of an older one measures old code). */
const NYDUS_OPT_TAG = process.env.LAZY_OPT_TAG ?? 'nydus-bench-opt-l3';
const HOT_CHUNK = process.env.LAZY_HOT_CHUNK ?? '16K';
const DELAY_MS = process.env.E2E_DELAY_MS ?? '10';
const RATE = process.env.E2E_RATE ?? '200mbit';
const CMD = ['/usr/local/bin/node', '-e', '1'];
const CMD_TIMEOUT_MS = 180_000;
// A clean, equal environment for every chroot (ours and baseline): no NODE_EXTRA_CA_CERTS etc. from the host.
const chrootEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C' };

// Lazy rows: ours with extra `mount` flags. A variant is one line, e.g.
//   { name: 'nydusify-ts mount --prefetch', flags: ['--prefetch'] },
// The first one is "ours" for the ratios.
const lazyVariants = [
  { name: 'nydusify-ts mount (lazy, cold cache)', flags: [], tag: NYDUS_TAG },
  { name: 'nydusify-ts mount, optimized image (hot region streamed at mount)', flags: [], tag: NYDUS_OPT_TAG },
];

const ctrDir = process.env.LAZY_CTR_E2E_DIR ?? '/tmp/e2e-bench-lazy';
const ctrNs = 'bench-lazy';
const ctrEnv = { ...process.env, E2E_DIR: ctrDir, CONTAINERD_ADDRESS: join(ctrDir, 'containerd', 'containerd.sock') };

// ---------------------------------------------------------------------------------------------
// helpers

const now = () => performance.now() / 1000;
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const die = (msg) => {
  console.error(`bench lazy: ${msg}`);
  process.exit(1);
};

function sh(script, env) {
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', env: env ?? process.env, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`failed (${r.status}): ${script}\n${r.stdout.slice(-2000)}${r.stderr.slice(-4000)}`);
  return r.stdout;
}

/** Run a command asynchronously (so a FUSE daemon child of ours keeps being served); reject on non-zero exit. */
function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout = (stdout + d).slice(-100_000); });
    p.stderr.on('data', (d) => { stderr = (stderr + d).slice(-100_000); });
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? CMD_TIMEOUT_MS);
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${cmd} ${args.join(' ')} → ${signal ?? `exit ${code}`}\n${stderr.slice(-3000)}`));
    });
  });
}

const isMounted = (dir) => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);

// Everything that must be undone if we stop early: FUSE daemons + their mount points, containers.
const live = { mounts: new Map(), containers: new Set() };
function cleanupSync() {
  for (const [mnt, child] of live.mounts) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  live.mounts.clear();
  for (const id of live.containers) {
    spawnSync('ctr', ['-n', ctrNs, 'task', 'kill', '-s', 'SIGKILL', id], { env: ctrEnv });
    spawnSync('ctr', ['-n', ctrNs, 'containers', 'rm', id], { env: ctrEnv });
  }
  live.containers.clear();
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { cleanupSync(); process.exit(130); });

// ---------------------------------------------------------------------------------------------
// set-up

function preflight() {
  if (process.getuid?.() !== 0) die('needs root (FUSE mount, chroot, netns, containerd)');
  if (!existsSync(cli)) die(`${cli} is missing: run \`npm run build\` first`);
  if (!existsSync('/dev/fuse')) die('/dev/fuse is missing');
  const need = ['chroot', 'skopeo', 'umoci', 'curl', 'ip', 'tc', 'umount', 'jq'];
  if (withContainerd) need.push('containerd', 'ctr', 'runc');
  const missing = need.filter((c) => spawnSync('bash', ['-c', `command -v ${c}`]).status !== 0);
  if (missing.length) {
    die(`missing commands: ${missing.join(', ')} (apt-get install skopeo umoci containerd runc jq; ` +
      `see scripts/e2e/README.md${withContainerd ? '; or pass --no-containerd' : ''})`);
  }
}

function setUp() {
  const env = { ...process.env, E2E_DELAY_MS: DELAY_MS, E2E_RATE: RATE };
  process.stderr.write(`bench lazy: registry-up, make-images, netns-up (${RATE}, ${DELAY_MS} ms/direction)…\n`);
  for (const script of ['registry-up.sh', 'make-images.sh', 'netns-up.sh']) {
    try {
      sh(join(e2e, script), env);
    } catch (e) {
      die(`scripts/e2e/${script} failed; see scripts/e2e/README.md\n${e.message}`);
    }
  }
  const exists = (host, tag) => spawnSync('curl', ['-sf', '-o', '/dev/null', '-H',
    'Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json',
    `http://${host}/v2/${REPO}/manifests/${tag}`]).status === 0;
  if (!exists(REG, 'latest')) die(`${REG}/${REPO}:latest is missing after make-images.sh`);
  if (!exists(REG, NYDUS_TAG)) {
    process.stderr.write(`bench lazy: converting ${REG}/${REPO}:latest → :${NYDUS_TAG} (once)…\n`);
    sh(`node ${cli} convert --log-level warn --plain-http --source ${REG}/${REPO}:latest --target ${REG}/${REPO}:${NYDUS_TAG}`);
  }
  if (!exists(REG, NYDUS_OPT_TAG)) {
    process.stderr.write(`bench lazy: optimizing :${NYDUS_TAG} → :${NYDUS_OPT_TAG} for \`${CMD.join(' ')}\` (${HOT_CHUNK} hot chunks, once)…\n`);
    sh(`node ${cli} optimize --log-level warn --plain-http --hot-chunk-size ${HOT_CHUNK} --source ${REG}/${REPO}:${NYDUS_TAG} --target ${REG}/${REPO}:${NYDUS_OPT_TAG} --run ${CMD.join(' ')}`);
  }
  if (!exists(NSREG, NYDUS_TAG)) die(`${NSREG}/${REPO}:${NYDUS_TAG} is not visible through the netns registry`);
  // link sanity: GET /v2/ should take ≈ 2 × delay
  const rtt = median([0, 1, 2].map(() => Number(sh(`curl -s -o /dev/null -w '%{time_total}' http://${NSREG}/v2/`))));
  if (rtt < (1.5 * Number(DELAY_MS)) / 1000) process.stderr.write(`bench lazy: warning: GET /v2/ on ${NSREG} took ${(rtt * 1000).toFixed(0)} ms; the ${DELAY_MS} ms delay proxy does not seem to be in the path\n`);
  let containerd = false;
  if (withContainerd) {
    try {
      sh(`${e2e}/containerd-up.sh`, ctrEnv);
      containerd = true;
      process.on('exit', stopPrivateContainerd);
    } catch (e) {
      process.stderr.write(`bench lazy: private containerd did not start, skipping its row:\n${e.message}\n`);
    }
  }
  return { rtt, containerd };
}

// The private containerd is only ours: stop it (through its PID file) when the bench ends.
function stopPrivateContainerd() {
  spawnSync(join(e2e, 'stop.sh'), ['containerd'], { env: ctrEnv, stdio: 'ignore' });
}

function imageSize(host, tag) {
  const m = JSON.parse(sh(`curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json' http://${host}/v2/${REPO}/manifests/${tag}`));
  return { layers: m.layers.reduce((a, l) => a + l.size, 0), config: m.config.size, count: m.layers.length };
}

// ---------------------------------------------------------------------------------------------
// the measured paths

async function lazyRun(variant, i) {
  const dir = join(work, `lazy-${i}`);
  const mnt = join(dir, 'mnt');
  const cache = join(dir, 'cache');
  if (existsSync(mnt) && isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(mnt, { recursive: true });
  mkdirSync(cache);
  const args = [cli, 'mount', '--target', `${NSREG}/${REPO}:${variant.tag}`, '--mount-path', mnt, '--plain-http',
    '--cache-dir', cache, '--state-dir', join(dir, 'state'), ...variant.flags];
  const t0 = now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  live.mounts.set(mnt, child);
  const logs = [];
  let tail = '';
  let waiter = null;
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  child.stderr.on('data', (d) => {
    const parts = (tail + d).split('\n');
    tail = parts.pop();
    for (const line of parts) {
      let j = null;
      try { j = JSON.parse(line); } catch { /* not JSON: keep raw */ }
      logs.push(j ?? { raw: line });
      if (waiter && j && j.msg === waiter.msg) { waiter.resolve(j); waiter = null; }
    }
  });
  const waitMsg = (msg, timeoutMs) => {
    const seen = logs.find((l) => l.msg === msg);
    if (seen) return Promise.resolve(seen);
    return Promise.race([
      new Promise((resolve) => { waiter = { msg, resolve }; }),
      exited.then((e) => { throw new Error(`mount exited (${e.signal ?? e.code}) before "${msg}":\n${logs.map((l) => l.raw ?? JSON.stringify(l)).slice(-20).join('\n')}`); }),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no "${msg}" from mount within ${timeoutMs / 1000} s`)), timeoutMs).unref()),
    ]);
  };
  try {
    await waitMsg('mounted', 60_000);
    const ready = now() - t0;
    await run('chroot', [mnt, ...CMD], { env: chrootEnv });
    const total = now() - t0;
    const w0 = now();
    await run('chroot', [mnt, ...CMD], { env: chrootEnv });
    const warm = now() - w0;
    child.kill('SIGTERM');
    const done = await waitMsg('lazy loading done', 30_000);
    await exited;
    return { ready, run: total - ready, total, warm, fetchedBytes: done.fetchedBytes, rangeRequests: done.rangeRequests,
      blobBytes: done.blobBytes, chunks: done.chunks, amplifiedChunks: done.amplifiedChunks };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
    live.mounts.delete(mnt);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function skopeoRun(i) {
  const dir = join(work, `full-${i}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const rootfs = join(dir, 'bundle', 'rootfs');
  try {
    const t0 = now();
    await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${NSREG}/${REPO}:latest`, `oci:${join(dir, 'oci')}:latest`]);
    const pulled = now() - t0;
    await run('umoci', ['unpack', '--image', `${join(dir, 'oci')}:latest`, join(dir, 'bundle')]);
    const ready = now() - t0;
    await run('chroot', [rootfs, ...CMD], { env: chrootEnv });
    const total = now() - t0;
    const w0 = now();
    await run('chroot', [rootfs, ...CMD], { env: chrootEnv });
    return { pull: pulled, unpack: ready - pulled, ready, run: total - ready, total, warm: now() - w0 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ctrRef = `${NSREG}/${REPO}:latest`;
const ctr = (args) => run('ctr', ['-n', ctrNs, ...args], { env: ctrEnv });
async function ctrDrop() {
  const refs = (await ctr(['images', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
  if (refs.length) await ctr(['images', 'rm', '--sync', ...refs]);
}
async function containerdRun(i) {
  await ctrDrop();
  const id = `bench-lazy-${process.pid}-${i}`;
  try {
    const t0 = now();
    await ctr(['images', 'pull', '--plain-http', ctrRef]);
    const ready = now() - t0;
    live.containers.add(id);
    await ctr(['run', '--rm', ctrRef, id, ...CMD]);
    const total = now() - t0;
    const w0 = now();
    await ctr(['run', '--rm', ctrRef, `${id}-warm`, ...CMD]);
    return { ready, run: total - ready, total, warm: now() - w0 };
  } finally {
    live.containers.delete(id);
    await ctrDrop().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------

preflight();
// leftovers of a run that was killed hard: unmount (lazily) before deleting anything under work/
for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
  const point = l.split(' ')[4];
  if (point?.startsWith(`${work}/`)) spawnSync('umount', ['-l', point]);
}
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const { rtt, containerd } = setUp();
process.stderr.write(`bench lazy: measuring the floor: pages \`${CMD.join(' ')}\` touches in the unpacked image, compressed…\n`);
const floor = measureFloor({ source: `docker://${REG}/${REPO}:latest`, cmd: CMD, work: join(work, 'floor'), env: chrootEnv });
const floorTotal = floorSeconds(floor, { localRun: floor.localRun, rateBytesPerSec: rateBytes(RATE), rttSeconds: (2 * Number(DELAY_MS)) / 1000 });
const oci = imageSize(REG, 'latest');
const nydus = imageSize(REG, NYDUS_TAG);

const rows = [
  ...lazyVariants.map((v) => ({ name: v.name, kind: 'lazy', measure: (i) => lazyRun(v, i), samples: [] })),
  { name: 'skopeo copy + umoci unpack (full pull)', kind: 'full', measure: skopeoRun, samples: [] },
  ...(containerd ? [{ name: 'containerd: ctr pull + ctr run (full pull)', kind: 'full', measure: containerdRun, samples: [] }] : []),
];

try {
  for (let i = 0; i < runs; i++) {
    for (const r of rows) {
      process.stderr.write(`bench lazy: run ${i + 1}/${runs}: ${r.name}…`);
      const s = await r.measure(i);
      process.stderr.write(` ${s.total.toFixed(2)} s\n`);
      r.samples.push(s);
    }
  }
} catch (e) {
  cleanupSync();
  die(e.stack ?? String(e));
}

const med = (r, k) => median(r.samples.map((s) => s[k]));
for (const r of rows) {
  r.median = Object.fromEntries(['ready', 'run', 'total', 'warm', 'pull', 'unpack', 'fetchedBytes', 'rangeRequests', 'blobBytes', 'chunks', 'amplifiedChunks']
    .map((k) => [k, med(r, k)]).filter(([, v]) => Number.isFinite(v)));
}
const ours = rows[0];
const lazyRows = rows.filter((r) => r.kind === 'lazy');
const fullRows = rows.filter((r) => r.kind === 'full');
const MB = (b) => (b / 1e6).toFixed(1);

console.log(`\nlink: ${NSREG} in netns e2e-reg, ${RATE}, ${DELAY_MS} ms/direction (GET /v2/ ${(rtt * 1000).toFixed(0)} ms); ` +
  `image ${REPO}: OCI ${oci.count} gzip layers ${MB(oci.layers)} MB, Nydus ${MB(nydus.layers)} MB (incl. bootstrap layer); median of ${runs}\n`);
console.log('| path | ready s (mount / pull+unpack) | first `node -e 1` s | total s | warm rerun s | fetched MB | Range GETs | baseline ÷ ours |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const m = r.median;
  const fetched = r.kind === 'lazy' ? `${MB(m.fetchedBytes)} of ${MB(m.blobBytes)}` : `${MB(oci.layers + oci.config)} (all)`;
  const ratio = r.kind === 'full' ? `${(m.total / ours.median.total).toFixed(2)}×` : r === ours ? '1.00×' : `${(ours.median.total / m.total).toFixed(2)}× vs row 1`;
  const ready = r.kind === 'full' && Number.isFinite(m.pull) ? `${m.ready.toFixed(2)} (${m.pull.toFixed(2)} + ${m.unpack.toFixed(2)})` : m.ready.toFixed(2);
  console.log(`| ${r.name} | ${ready} | ${m.run.toFixed(2)} | ${m.total.toFixed(2)} | ${m.warm.toFixed(2)} | ${fetched} | ${r.kind === 'lazy' ? m.rangeRequests : '–'} | ${ratio} |`);
}
console.log(`\nfloor: \`${CMD.join(' ')}\` touches ${MB(floor.touchedBytes)} MB in ${floor.files.length} files, ${MB(floor.compressedBytes)} MB zstd; ` +
  `floor ${floorTotal.toFixed(2)} s = cold local chroot run ${floor.localRun.toFixed(2)} s + ${(floor.compressedBytes / rateBytes(RATE)).toFixed(2)} s at ${RATE} + 3 round trips`);
for (const l of lazyRows) console.log(`${l.name}: ${(l.median.total / floorTotal).toFixed(2)}× the floor's time, ${(l.median.fetchedBytes / floor.compressedBytes).toFixed(2)}× its bytes`);
const verdicts = [];
for (const l of lazyRows) {
  for (const f of fullRows) {
    const x = f.median.total / l.median.total;
    verdicts.push({ ours: l.name, baseline: f.name, ratio: x, met: x >= 5 });
    console.log(`\ntarget ≥ 5×: ${f.name} ÷ ${l.name} = ${x.toFixed(2)}× — ${x >= 5 ? 'met' : 'missed'}`);
  }
}

writeFileSync(join(out, 'lazy.json'), JSON.stringify({
  date: new Date().toISOString(), runs, link: { registry: NSREG, rate: RATE, delayMs: Number(DELAY_MS), getV2Seconds: rtt },
  image: { repo: REPO, oci, nydus, nydusTag: NYDUS_TAG }, command: CMD,
  rows: rows.map(({ name, kind, samples, median: m }) => ({ name, kind, median: m, samples })), verdicts,
  floor: { ...floor, files: floor.files.slice(0, 20), seconds: floorTotal },
}, null, 2));
