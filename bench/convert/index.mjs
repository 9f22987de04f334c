// Registry→registry `convert` wall time and peak RSS next to `gzip -dc` of the same layers (the
// decode floor) and stargz-snapshotter's `ctr-remote image convert --estargz`.
//
//   npm run bench -- convert [--runs 2]
//
// Images: debian-ml (scripts/e2e/make-images.sh) and "usr-big", a one-layer image of this
// machine's /usr (≥ 300 MB uncompressed, made from bench/create's tar, pushed with skopeo).
// Our time covers pull + convert + push; ctr-remote's covers only converting content containerd
// already pulled (its pull is not timed), so the ratio favours the peer. Best of --runs.
// Prints a markdown table, writes bench/out/convert.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const e2e = join(repo, 'scripts', 'e2e');
const out = join(repo, 'bench', 'out');
const work = join(out, 'convert-work');
const e2eDir = process.env.E2E_DIR ?? '/tmp/e2e';
const REG = '127.0.0.1:5000';
const cli = join(repo, 'dist', 'cli', 'main.js');
const ctrEnv = { ...process.env, CONTAINERD_ADDRESS: join(e2eDir, 'containerd', 'containerd.sock') };
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 2) || 2;

const sh = (script, env) => execFileSync('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'], env: env ?? process.env, maxBuffer: 1 << 26 }).toString();

function measure(script, env) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', 'bash', '-c', script], { encoding: 'utf8', env: env ?? process.env, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`failed: ${script}\n${r.stderr}`);
  const [secs, kb] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
  return { seconds: secs, rssMB: kb / 1024 };
}

function layerBlobs(repoName, tag) {
  const m = JSON.parse(sh(`curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json' http://${REG}/v2/${repoName}/manifests/${tag}`));
  return m.layers.map((l) => l.digest);
}

function usrBigImage() {
  if (spawnSync('curl', ['-sf', '-o', '/dev/null', `http://${REG}/v2/usr-big/manifests/latest`]).status === 0) return;
  const tarGz = join(out, 'create-work', 'usr-335544320.tar.gz');
  if (!existsSync(tarGz)) throw new Error(`run \`npm run bench -- create\` first: it makes ${tarGz}`);
  const dir = join(work, 'usr-oci');
  rmSync(dir, { recursive: true, force: true });
  sh(`gzip -dc ${tarGz} > ${work}/usr.tar && umoci init --layout ${dir} && umoci new --image ${dir}:latest && ` +
    `umoci raw add-layer --image ${dir}:latest ${work}/usr.tar && umoci config --image ${dir}:latest --os linux --architecture amd64 && ` +
    `skopeo copy --dest-tls-verify=false oci:${dir}:latest docker://${REG}/usr-big:latest && rm -f ${work}/usr.tar`);
}

function bench(repoName) {
  const layers = layerBlobs(repoName, 'latest');
  const blobUrl = (d) => `http://${REG}/v2/${repoName}/blobs/${d}`;
  for (const d of layers) sh(`curl -sf ${blobUrl(d)} -o ${work}/${d.slice(7)}`);
  sh(`ctr images pull --plain-http ${REG}/${repoName}:latest > /dev/null`, ctrEnv);
  const tools = {
    'gzip -dc of the layers (decode floor)': () => layers.map((d) => `gzip -dc ${work}/${d.slice(7)} > /dev/null`).join(' && '),
    'nydusify-ts convert (pull + convert + push)': () =>
      `node ${cli} convert --log-level warn --plain-http --source ${REG}/${repoName}:latest --target ${REG}/${repoName}:bench-nydus`,
    'ctr-remote image convert --estargz (local, no pull/push)': () =>
      `ctr images rm ${REG}/${repoName}:bench-esgz > /dev/null 2>&1; ctr-remote image convert --estargz --oci ${REG}/${repoName}:latest ${REG}/${repoName}:bench-esgz > /dev/null`,
  };
  const best = Object.fromEntries(Object.keys(tools).map((k) => [k, { seconds: Infinity, rssMB: 0 }]));
  for (let i = 0; i < runs; i++) {
    for (const [name, script] of Object.entries(tools)) {
      const m = measure(script(), ctrEnv);
      if (m.seconds < best[name].seconds) best[name] = m;
    }
  }
  const floor = best['gzip -dc of the layers (decode floor)'].seconds;
  const ours = best['nydusify-ts convert (pull + convert + push)'].seconds;
  return Object.entries(best).map(([tool, m]) => ({ image: repoName, tool, seconds: m.seconds, vsFloor: m.seconds / floor, oursFasterBy: m.seconds / ours, peakRssMB: m.rssMB }));
}

mkdirSync(work, { recursive: true });
sh(`${e2e}/registry-up.sh >/dev/null && ${e2e}/make-images.sh >/dev/null && ${e2e}/stargz-up.sh >/dev/null && ${e2e}/containerd-up.sh >/dev/null`);
usrBigImage();
const rows = [...bench('debian-ml'), ...bench('usr-big')];
console.log('| image | tool | seconds | × decode floor | peer time ÷ ours | peak RSS MB |');
console.log('|---|---|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.image} | ${r.tool} | ${r.seconds.toFixed(2)} | ${r.vsFloor.toFixed(2)} | ${r.oursFasterBy.toFixed(2)} | ${r.peakRssMB.toFixed(0)} |`);
console.log('\ntargets: convert ≤ 1.5 × the gzip -dc floor; ≥ 5× faster than the eStargz conversion; peak RSS ≤ 500 MB');
writeFileSync(join(out, 'convert.json'), JSON.stringify({ date: new Date().toISOString(), runs, rows }, null, 2));
