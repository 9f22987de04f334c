// Plain OCI images, unmodified: our snapshotter's fast pull vs containerd's own (debian-ml and a 3-layer
// image of some 2 GB unpacked), and debian-ml served lazily through a gzip index (shaped netns registry).
//
//   npm run bench -- plain-oci [--runs 3] [--images debian-ml,bigplain]
//
// Each image unmodified in the registry, every run cold; timed from the pull command's start to its
// end (and then a `ctr run` of a command in the image, to show it runs):
//   - containerd: `ctr images pull` (its content store, then unpacked by its overlayfs snapshotter);
//   - ours: `ctr-remote image rpull --snapshotter nydusify-ts`, the snapshotter's fast pull (every
//     layer at once, each streamed, checked and written as an EROFS image the kernel mounts).
// The measuring is bench/containerd-lazy's (`--rows overlayfs,ours-pull`, its private containerd, the
// 200 mbit / 10 ms netns registry, quiet disks before each run). bigplain is made here once from this
// machine's files: debian-ml's base layer, then /usr/share and /usr/lib/x86_64-linux-gnu as gzip
// layers (its size depends on the machine: printed). Target (issue #18): ours ≥ 1.5× faster.
// debian-ml also runs, in the same runs, `ours-gzidx` (a copy of the image with `index --push` beside
// it, served lazily by our snapshotter) and `stargz` (stargz-snapshotter on the image re-pushed as
// eStargz): cold `node -e 1`, seconds and registry bytes; target: under 10 % of the layers fetched.
// Writes bench/out/plain-oci.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(repo, 'bench', 'out');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const runs = arg('--runs', '3');
const images = arg('--images', 'debian-ml,bigplain').split(',');
const REG = '127.0.0.1:5000';
const BIG = 'bigplain';
const say = (msg) => process.stderr.write(`bench plain-oci: ${msg}\n`);

const hasImage = (name) => spawnSync('curl', ['-sf', '-o', '/dev/null', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json', `http://${REG}/v2/${name}/manifests/latest`]).status === 0;

async function sha256File(path) {
  const h = createHash('sha256');
  for await (const piece of createReadStream(path)) h.update(piece);
  return `sha256:${h.digest('hex')}`;
}

/** bigplain as an OCI layout, pushed with skopeo: debian-ml's base layer and two layers of this machine's files. */
async function makeBig() {
  const dir = join('/tmp', 'bench-plain-oci-layout');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (file, mediaType) => {
    const digest = await sha256File(file);
    execFileSync('mv', [file, join(dir, 'blobs', 'sha256', digest.slice(7))]);
    return { mediaType, digest, size: statSync(join(dir, 'blobs', 'sha256', digest.slice(7))).size };
  };
  const manifest = JSON.parse(execFileSync('curl', ['-sf', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json', `http://${REG}/v2/debian-ml/manifests/latest`], { encoding: 'utf8' }));
  const config = JSON.parse(execFileSync('curl', ['-sf', `http://${REG}/v2/debian-ml/blobs/${manifest.config.digest}`], { encoding: 'utf8', maxBuffer: 1 << 24 }));
  const base = manifest.layers[0];
  execFileSync('curl', ['-sf', '-o', join(dir, 'base'), `http://${REG}/v2/debian-ml/blobs/${base.digest}`]);
  const layers = [await put(join(dir, 'base'), base.mediaType)];
  const diffIds = [config.rootfs.diff_ids[0]];
  for (const [i, path] of ['usr/share', 'usr/lib/x86_64-linux-gnu'].entries()) {
    say(`layer ${i + 2}: /${path} (tar | gzip -1)…`);
    const tar = join(dir, `l${i}.tar`);
    execFileSync('tar', ['-C', '/', '--numeric-owner', '-cf', tar, path]);
    diffIds.push(await sha256File(tar));
    execFileSync('gzip', ['-1', tar]);
    layers.push(await put(`${tar}.gz`, 'application/vnd.oci.image.layer.v1.tar+gzip'));
  }
  const cfg = Buffer.from(JSON.stringify({ ...config, history: undefined, rootfs: { type: 'layers', diff_ids: diffIds } }));
  writeFileSync(join(dir, 'config'), cfg);
  const configDesc = await put(join(dir, 'config'), 'application/vnd.oci.image.config.v1+json');
  const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers }));
  writeFileSync(join(dir, 'manifest'), m);
  const mDesc = await put(join(dir, 'manifest'), 'application/vnd.oci.image.manifest.v1+json');
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...mDesc, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));
  say(`pushing ${BIG}:latest (${(layers.reduce((n, l) => n + l.size, 0) / 1e6).toFixed(0)} MB in ${layers.length} layers)…`);
  execFileSync('skopeo', ['copy', '--dest-tls-verify=false', `oci:${dir}:latest`, `docker://${REG}/${BIG}:latest`], { stdio: 'inherit' });
  rmSync(dir, { recursive: true, force: true });
}

const results = [];
for (const image of images) {
  if (image === BIG && !hasImage(BIG)) await makeBig();
  const cmd = image === 'debian-ml' ? 'node -e 1' : '/bin/true';
  const lazy = image === 'debian-ml';
  const rows = lazy ? 'overlayfs,ours-pull,ours-gzidx,stargz' : 'overlayfs,ours-pull';
  const r = spawnSync(process.execPath, [join(repo, 'bench', 'containerd-lazy', 'index.mjs'), '--rows', rows, '--runs', runs, '--repo', image, '--cmd', cmd, '--no-floor'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
  const result = JSON.parse(readFileSync(join(out, 'containerd-lazy.json'), 'utf8'));
  const row = (key) => result.rows.find((x) => x.key === key).median;
  results.push({ image, containerd: row('overlayfs'), ours: row('ours-pull'), ...(lazy ? { gzidx: row('ours-gzidx'), stargz: row('stargz') } : {}) });
}
console.log('\n| image | registry MB | containerd pull s | ours pull s | ours faster by |');
console.log('|---|---:|---:|---:|---:|');
for (const { image, containerd, ours } of results) {
  console.log(`| ${image} | ${(containerd.registryBytes / 1e6).toFixed(0)} | ${containerd.pull.toFixed(2)} | ${ours.pull.toFixed(2)} | ${(containerd.pull / ours.pull).toFixed(2)}× |`);
}
const targets = results.map(({ image, containerd, ours }) => ({ image, speedup: containerd.pull / ours.pull, min: 1.5, met: containerd.pull / ours.pull >= 1.5 }));
for (const t of targets) console.log(`target ${t.image}: ours ≥ 1.5× faster than containerd's pull: ${t.speedup.toFixed(2)}× — ${t.met ? 'met' : 'missed'}`);
const lazyResults = results.filter((x) => x.gzidx);
if (lazyResults.length) {
  console.log('\n| cold `node -e 1` | total s | registry MB | of the layers |');
  console.log('|---|---:|---:|---:|');
  for (const { image, containerd, gzidx, stargz } of lazyResults) {
    const layers = containerd.registryBytes;
    const line = (name, x) => console.log(`| ${image}: ${name} | ${x.total.toFixed(2)} | ${(x.registryBytes / 1e6).toFixed(1)} | ${((100 * x.registryBytes) / layers).toFixed(1)} % |`);
    line('containerd full pull', containerd);
    line('ours, gzip index (unmodified image)', gzidx);
    line('stargz-snapshotter (re-pushed as eStargz)', stargz);
    const fraction = gzidx.registryBytes / layers;
    targets.push({ image, lazyFraction: fraction, max: 0.1, met: fraction < 0.1, vsFullPull: gzidx.total / containerd.total, vsStargz: gzidx.total / stargz.total });
    console.log(`target ${image}: under 10 % of the layers fetched for node -e 1 through the gzip index: ${(100 * fraction).toFixed(1)} % — ${fraction < 0.1 ? 'met' : 'missed'}; time ${(gzidx.total / containerd.total).toFixed(2)}× the full pull, ${(gzidx.total / stargz.total).toFixed(2)}× stargz's`);
  }
}
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'plain-oci.json'), JSON.stringify({ date: new Date().toISOString(), runs: Number(runs), results, targets }, null, 2));
