// Building an eStargz chain's bootstrap, cold: ms per phase (TOC parse, models, merge, write, open) and peak RSS, median of fresh processes.
//
//   npm run bench -- stargz-build [--image 127.0.0.1:5000/debian-ml:stargz-e2e-esgz] [--runs 5]
//
// What the snapshotter does when containerd pulls an eStargz image (src/image/stargz-image.ts
// buildStargzChain, then the mount's RafsImage.open and chunk tables), in a fresh `node` process per
// sample, as the snapshotter meets it: JIT cold. The layers' footers and TOCs are read from the
// registry once and kept under /tmp (only the byte ranges readStargzToc asks for); each sample
// replays those reads from memory, so the numbers are CPU, not network. Each sample prints the
// bootstrap's sha256: an optimisation must leave it unchanged.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PHASES = ['toc', 'models', 'merge', 'write', 'open'];
const MANIFEST_TYPES = 'application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};

/** `host:port/repo:tag` → its manifest and blob URLs (loopback registries only: plain HTTP). */
function parseRef(ref) {
  const slash = ref.indexOf('/');
  const colon = ref.lastIndexOf(':');
  if (slash < 0 || colon < slash) throw new Error(`image ${ref}: expected HOST:PORT/REPO:TAG`);
  const base = `http://${ref.slice(0, slash)}/v2/${ref.slice(slash + 1, colon)}`;
  return { manifest: `${base}/manifests/${ref.slice(colon + 1)}`, blob: (digest) => `${base}/blobs/${digest}` };
}

/** Reads each layer's TOC once from the registry, keeping every range read, under `dir`. */
async function record(ref, dir) {
  const { readStargzToc } = await import(join(repo, 'dist/stargz/toc.js'));
  const urls = parseRef(ref);
  const res = await fetch(urls.manifest, { headers: { accept: MANIFEST_TYPES } });
  if (!res.ok) throw new Error(`${ref}: manifest: HTTP ${res.status}`);
  const manifest = await res.json();
  const layers = [];
  for (const layer of manifest.layers) {
    const reads = [];
    const read = async (offset, length) => {
      const r = await fetch(urls.blob(layer.digest), { headers: { range: `bytes=${offset}-${offset + length - 1}` } });
      if (r.status !== 206) throw new Error(`${layer.digest}: range request: HTTP ${r.status}`);
      const bytes = Buffer.from(await r.arrayBuffer());
      reads.push({ offset, data: bytes.toString('base64') });
      return bytes;
    };
    await readStargzToc(read, layer.size, { annotations: layer.annotations ?? {} });
    layers.push({ ...layer, reads });
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'layers.json'), JSON.stringify(layers));
}

/** One cold build from the kept reads: ms per phase, the bootstrap's sha256, peak RSS. */
async function sample(dir) {
  const layers = JSON.parse(readFileSync(join(dir, 'layers.json'), 'utf8'));
  const [{ readStargzToc }, { stargzBootstrap }, { mergeLayers }, { writeBootstrap }, { RafsImage }, { blobChunkTables }] = await Promise.all(
    ['stargz/toc.js', 'stargz/bootstrap.js', 'convert/merge.js', 'rafs/writer.js', 'rafs/reader.js', 'blobcache/fetcher.js'].map((m) => import(join(repo, 'dist', m))),
  );
  const replay = (reads) => async (offset, length) => {
    const hit = reads.find((r) => r.offset <= offset && offset + length <= r.offset + r.bytes.length);
    if (!hit) throw new Error(`no kept read covers [${offset}, ${offset + length})`);
    return hit.bytes.subarray(offset - hit.offset, offset - hit.offset + length);
  };
  for (const l of layers) for (const r of l.reads) r.bytes = Buffer.from(r.data, 'base64');
  const ms = {};
  const cpuMs = {};
  let t = performance.now();
  let cpu = process.cpuUsage();
  const lap = (phase) => {
    const now = performance.now();
    const used = process.cpuUsage();
    ms[phase] = now - t;
    cpuMs[phase] = (used.user + used.system - cpu.user - cpu.system) / 1000;
    t = now;
    cpu = used;
  };
  const tocs = [];
  for (const l of layers) tocs.push(await readStargzToc(replay(l.reads), l.size, { annotations: l.annotations ?? {} }));
  lap('toc');
  const models = tocs.map((toc, i) => stargzBootstrap(toc, { blobId: layers[i].digest.slice('sha256:'.length), blobSize: layers[i].size }));
  lap('models');
  const merged = mergeLayers(models, { prefetch: models.flatMap((m) => m.prefetch ?? []) });
  lap('merge');
  const bootstrap = writeBootstrap(merged);
  lap('write');
  await blobChunkTables(RafsImage.open(bootstrap));
  lap('open');
  const entries = tocs.map((toc) => toc.entries.length);
  const sha256 = createHash('sha256').update(bootstrap).digest('hex');
  console.log(JSON.stringify({ ms, cpuMs, entries, bytes: bootstrap.length, sha256, maxRssKiB: process.resourceUsage().maxRSS }));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const dirArg = arg('--sample');
  if (dirArg) return sample(dirArg);
  const ref = arg('--image', '127.0.0.1:5000/debian-ml:stargz-e2e-esgz');
  const runs = Number(arg('--runs', '5'));
  const dir = join('/tmp/stargz-build', ref.replace(/[^A-Za-z0-9._-]/g, '_'));
  if (!existsSync(join(dir, 'layers.json'))) await record(ref, dir);
  const samples = [];
  for (let i = 0; i < runs; i++) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--sample', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`sample ${i} exited ${r.status}`);
    samples.push(JSON.parse(r.stdout.trim().split('\n').pop()));
  }
  const digests = new Set(samples.map((s) => s.sha256));
  if (digests.size !== 1) throw new Error(`samples built different bootstraps: ${[...digests].join(', ')}`);
  const { entries, bytes, sha256 } = samples[0];
  console.log(`${ref}: ${entries.length} layers (${entries.join(' + ')} TOC entries) → ${bytes} byte bootstrap, sha256 ${sha256}`);
  console.log(`median of ${runs} fresh processes, wall ms per phase, then the process's CPU ms (main thread and V8's helpers: what other load on the machine skews least):\n`);
  console.log(`| ${PHASES.join(' | ')} | total ms | total CPU ms | peak RSS MiB |`);
  console.log(`|${PHASES.map(() => '---:').join('|')}|---:|---:|---:|`);
  const total = (key) => median(samples.map((s) => PHASES.reduce((sum, p) => sum + s[key][p], 0)));
  const cells = PHASES.map((p) => median(samples.map((s) => s.ms[p])).toFixed(1));
  console.log(`| ${cells.join(' | ')} | ${total('ms').toFixed(1)} | ${total('cpuMs').toFixed(1)} | ${(median(samples.map((s) => s.maxRssKiB)) / 1024).toFixed(0)} |`);
}

await main();
