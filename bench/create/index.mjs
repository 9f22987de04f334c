// `create --type targz-rafs` speed and memory next to `gzip -dc` and `tar -xzf` + `mkfs.erofs`.
//
//   npm run bench -- create [--usr-size 320M] [--runs 3]
//
// Inputs: debian-ml's largest layer (built by scripts/e2e/make-images.sh) and a gzip tar of this
// machine's /usr cut to --usr-size (default 320 MiB, uncompressed); plus a layer of 65,536 small
// files for the metadata path. Each command is run --runs times, interleaved; the best wall time is
// kept. Ratios are against `gzip -dc L > /dev/null`, the time just to decompress the layer.
// Prints a markdown table, writes bench/out/create.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(repo, 'bench', 'out');
const work = join(out, 'create-work');
const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const cli = join(repo, 'dist', 'cli', 'main.js');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const runs = Number(arg('--runs', '3'));
const usrBytes = (() => {
  const m = /^(\d+)([MG]?)$/i.exec(arg('--usr-size', '320M'));
  return Number(m[1]) * ({ '': 1, M: 1 << 20, G: 1 << 30 }[m[2].toUpperCase()]);
})();

/** Wall seconds and peak RSS (MB) of a shell command, via GNU time. */
function measure(script) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', 'bash', '-c', script], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`failed: ${script}\n${r.stderr}`);
  const [secs, kb] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
  return { seconds: secs, rssMB: kb / 1024 };
}

function debianMlLargestLayer() {
  execFileSync(join(repo, 'scripts', 'e2e', 'make-images.sh'), ['--no-push'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const layout = join(e2eDir, 'images', 'oci');
  const blob = (d) => join(layout, 'blobs', ...d.split(':'));
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'debian-ml');
  const layers = JSON.parse(readFileSync(blob(desc.digest), 'utf8')).layers;
  return blob(layers.reduce((a, b) => (b.size > a.size ? b : a)).digest);
}

function usrLayer() {
  const path = join(work, `usr-${usrBytes}.tar.gz`);
  if (!existsSync(path)) {
    // a valid tar of whole files, stopped once it passes the wanted size
    execFileSync('bash', ['-c', `cd / && find usr -xdev \\( -type f -o -type l -o -type d \\) -print0 | python3 -c '
import sys,os
limit=int(sys.argv[1]); total=0; out=[]
for p in sys.stdin.buffer.read().split(b"\\0"):
    if not p: continue
    out.append(p)
    try: total += os.lstat(p).st_size
    except OSError: pass
    if total > limit: break
sys.stdout.buffer.write(b"\\0".join(out))' ${usrBytes} | tar --null --no-recursion -T - -cf - 2>/dev/null | gzip -6 > ${path}`]);
  }
  return path;
}

function manyFilesLayer() {
  const path = join(work, 'many-files.tar.gz');
  if (!existsSync(path)) {
    const dir = join(work, 'many');
    rmSync(dir, { recursive: true, force: true });
    execFileSync('python3', ['-c', `
import os
root = ${JSON.stringify(dir)}
for d in range(256):
    os.makedirs(f"{root}/d{d:03}", exist_ok=True)
    for f in range(256):
        with open(f"{root}/d{d:03}/f{f:03}", "w") as fh:
            fh.write(f"{d} {f}\\n")
`]);
    execFileSync('bash', ['-c', `tar -C ${dir} -cf - . | gzip -1 > ${path} && rm -rf ${dir}`]);
  }
  return path;
}

function uncompressedSize(layer) {
  return Number(execFileSync('bash', ['-c', `gzip -dc ${layer} | wc -c`]).toString().trim());
}

function bench(label, layer) {
  const bytes = uncompressedSize(layer);
  const tools = {
    'gzip -dc (decode floor)': () => `gzip -dc ${layer} > /dev/null`,
    'nydusify-ts create': () => `rm -rf ${work}/ours && node ${cli} create --log-level warn --type targz-rafs ${layer} --bootstrap ${work}/ours/boot --blob-dir ${work}/ours/blobs`,
    'tar -xzf + mkfs.erofs --chunksize=1M --blobdev': () =>
      `rm -rf ${work}/peer && mkdir -p ${work}/peer/root && tar -xzf ${layer} -C ${work}/peer/root && mkfs.erofs --quiet --chunksize=1048576 --blobdev=${work}/peer/blob ${work}/peer/meta ${work}/peer/root`,
  };
  const best = Object.fromEntries(Object.keys(tools).map((k) => [k, { seconds: Infinity, rssMB: 0 }]));
  for (let i = 0; i < runs; i++) {
    for (const [name, script] of Object.entries(tools)) {
      const m = measure(script());
      if (m.seconds < best[name].seconds) best[name] = m;
    }
  }
  const floor = best['gzip -dc (decode floor)'].seconds;
  return Object.entries(best).map(([tool, m]) => ({
    input: label, tool, seconds: m.seconds, mibPerSec: bytes / (1 << 20) / m.seconds, vsGzip: m.seconds / floor, peakRssMB: m.rssMB,
  }));
}

mkdirSync(work, { recursive: true });
const rows = [
  ...bench('debian-ml largest layer', debianMlLargestLayer()),
  ...bench(`/usr tar (${(usrBytes / (1 << 20)).toFixed(0)} MiB)`, usrLayer()),
  ...bench('65,536 small files', manyFilesLayer()),
];
console.log('| input | tool | seconds | MiB/s (uncompressed) | × gzip -dc | peak RSS MB |');
console.log('|---|---|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.input} | ${r.tool} | ${r.seconds.toFixed(2)} | ${r.mibPerSec.toFixed(0)} | ${r.vsGzip.toFixed(2)} | ${r.peakRssMB.toFixed(0)} |`);
}
// the targets of issue #17, each judged on this run
const ours = rows.filter((r) => r.tool === 'nydusify-ts create');
const verdicts = [
  ...ours.filter((r) => !r.input.startsWith('65,536')).map((r) => [`${r.input}: create ≤ 1.0 × gzip -dc`, `${r.vsGzip.toFixed(2)}×`, r.vsGzip <= 1]),
  ...ours.map((r) => [`${r.input}: peak RSS ≤ 300 MB`, `${r.peakRssMB.toFixed(0)} MB`, r.peakRssMB <= 300]),
  ...ours.filter((r) => r.input.startsWith('65,536')).map((r) => [`${r.input}: ≤ 1 s`, `${r.seconds.toFixed(2)} s`, r.seconds <= 1]),
];
console.log('\n| target | measured | met? |\n|---|---:|---|');
for (const [target, measured, met] of verdicts) console.log(`| ${target} | ${measured} | ${met ? 'met' : 'missed'} |`);
writeFileSync(join(out, 'create.json'), JSON.stringify({ date: new Date().toISOString(), runs, rows, verdicts }, null, 2));
rmSync(join(work, 'ours'), { recursive: true, force: true });
rmSync(join(work, 'peer'), { recursive: true, force: true });
