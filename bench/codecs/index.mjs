// Codec and digest MB/s of the native addon next to the C command-line tools, on the same data.
//
//   npm run bench -- codecs [--size 256M]      (or BENCH_SIZE=256M; a bare number means MiB)
//
// The corpus is the start of a tar of /usr/bin, /usr/lib/x86_64-linux-gnu and /usr/share (binaries,
// libraries and data files, like a container image layer) cut into 1 MiB chunks, the Nydus chunk
// size. Every figure is the best of 3 passes over the whole corpus; MB = 10^6 bytes of
// uncompressed data, for decompression too. Prints a markdown table, writes bench/out/codecs.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as native from '../../dist/native/index.js';

const CHUNK = 1 << 20;
const PASSES = 3;
/** Chunks per batch call: about what a blob reader queues at once. */
const BATCH = 64;
/** Batch calls queued at once: the next one runs while the main thread wraps the last one's results. */
const IN_FLIGHT = 2;
const MB = 1e6;
const cores = availableParallelism();

function parseSize(text) {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?$/i.exec(String(text).trim());
  if (!m) throw new Error(`bad size '${text}' (e.g. 256M, 1G, 64)`);
  const unit = { '': 1 << 20, K: 1 << 10, M: 1 << 20, G: 1 << 30 }[m[2].toUpperCase()];
  return Math.round(Number(m[1]) * unit);
}

function option(name) {
  const args = process.argv.slice(2);
  const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  return args[i].includes('=') ? args[i].slice(name.length + 1) : args[i + 1];
}

const hasCommand = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** The first `bytes` of a tar of real system files (tar's complaints and head's SIGPIPE ignored). */
function makeCorpus(path, bytes) {
  const script = 'tar cf - -C / usr/bin usr/lib/x86_64-linux-gnu usr/share 2>/dev/null | head -c "$1" > "$2"';
  execFileSync('bash', ['-c', script, 'corpus', String(bytes), path]);
  return readFileSync(path);
}

async function bestSeconds(run) {
  let best = Infinity;
  for (let i = 0; i < PASSES; i++) {
    const t0 = performance.now();
    await run();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

/** Best-of-PASSES wall time of a CLI run, its output thrown away. */
async function timeCli(cmd, args) {
  const devNull = openSync('/dev/null', 'w');
  try {
    return await bestSeconds(() => {
      const r = spawnSync(cmd, args, { stdio: ['ignore', devNull, 'pipe'] });
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
    });
  } finally {
    closeSync(devNull);
  }
}

/**
 * MB/s of a CLI over `bytes` of data: its time on the corpus minus its time on an empty input
 * (`emptyArgs`), so that starting a process from this big node process does not count.
 */
async function cliRate(bytes, cmd, args, emptyArgs) {
  const startup = await timeCli(cmd, emptyArgs);
  return bytes / MB / ((await timeCli(cmd, args)) - startup);
}

/**
 * Compression and decompression MB/s from the in-memory benchmark of `zstd -b` / `lz4 -b`, whose
 * progress lines end in "C MB/s, D MB/s" (both in 10^6 bytes of input per second). Each run already
 * keeps its fastest loop; the best of PASSES runs is kept.
 */
function cliBench(cmd, args) {
  let best = { compress: 0, decompress: 0 };
  for (let i = 0; i < PASSES; i++) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
    const found = [...(r.stdout + r.stderr).matchAll(/([\d.]+) MB\/s\s*,\s*([\d.]+) MB\/s/g)].at(-1);
    if (!found) throw new Error(`cannot find the speeds in the output of ${cmd} ${args.join(' ')}`);
    best = { compress: Math.max(best.compress, Number(found[1])), decompress: Math.max(best.decompress, Number(found[2])) };
  }
  return best;
}

function checkSame(outputs, chunks, what) {
  outputs.forEach((out, i) => {
    if (!out.equals(chunks[i])) throw new Error(`${what}: chunk ${i} did not round-trip`);
  });
}

async function main() {
  const size = parseSize(option('--size') ?? process.env.BENCH_SIZE ?? '256M');
  const work = mkdtempSync(join(tmpdir(), 'nydusify-bench-codecs-'));
  try {
    await run(size, work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function run(size, work) {
  const corpusPath = join(work, 'corpus.tar');
  const corpus = makeCorpus(corpusPath, size);
  const total = corpus.length;
  if (total === 0) throw new Error('the corpus came out empty: are /usr/bin and /usr/share there?');
  const chunks = [];
  for (let off = 0; off < total; off += CHUNK) chunks.push(corpus.subarray(off, off + CHUNK));
  const sizes = chunks.map((c) => c.length);
  // decompressInto target: one reused buffer, as a reader with a buffer pool would do
  const pool = Buffer.alloc(CHUNK);
  const slots = sizes.map((n) => pool.subarray(0, n));
  console.error(`corpus: ${(total / MB).toFixed(1)} MB in ${chunks.length} chunks of 1 MiB; ${cores} cores`);

  const rows = [];
  const row = (what, oursMBps, cli, cliMBps, target) => {
    const ratio = oursMBps / cliMBps;
    const value = target?.ratio !== undefined ? ratio : oursMBps;
    const min = target?.ratio ?? target?.mbps;
    rows.push({ what, oursMBps, cli, cliMBps, ratio, target, met: target ? value >= min : undefined });
    console.error(`  ${what}: ${oursMBps.toFixed(0)} MB/s`);
  };
  const mbps = async (fn) => total / MB / (await bestSeconds(fn));

  const syncDecompress = (codec, packed) => () => {
    for (let i = 0; i < packed.length; i++) native.decompressInto(codec, packed[i], slots[i]);
  };
  /** Runs `call(start, end)` over the chunks BATCH at a time, with up to `inFlight` calls queued. */
  const batches = (inFlight, call) => async () => {
    const running = new Set();
    for (let i = 0; i < chunks.length; i += BATCH) {
      const p = call(i, Math.min(i + BATCH, chunks.length)).then(() => running.delete(p));
      running.add(p);
      if (running.size >= inFlight) await Promise.race(running);
    }
    await Promise.all(running);
  };
  const batchDecompress = (codec, packed, inFlight) =>
    batches(inFlight, (i, j) => native.decompressBatch(codec, packed.slice(i, j), sizes.slice(i, j)));
  const batchCompress = (codec, level) => batches(IN_FLIGHT, (i, j) => native.compressBatch(codec, chunks.slice(i, j), level));
  const batchDigest = (algo) => batches(IN_FLIGHT, (i, j) => native.digestBatch(algo, chunks.slice(i, j)));
  const packAll = (codec, level) => chunks.map((c) => native.compress(codec, c, level));

  // zstd, level 3 (the Nydus default), against zstd's in-memory benchmark on 1 MiB blocks
  const zstdCli = cliBench('zstd', ['-b3', '-B1M', '-i1', corpusPath]);
  const zstdPacked = packAll('zstd', 3);
  checkSame(await native.decompressBatch('zstd', zstdPacked, sizes), chunks, 'zstd');
  const zstdB = ['zstd -b3 -B1M', zstdCli.decompress];
  row('zstd decompress, decompressInto a pooled buffer (1 core)', await mbps(syncDecompress('zstd', zstdPacked)), ...zstdB, { ratio: 0.9 });
  row('zstd decompress, decompress to a new Buffer (1 core)', await mbps(() => zstdPacked.forEach((p, i) => native.decompress('zstd', p, { size: sizes[i] }))), ...zstdB);
  for (const inFlight of [1, IN_FLIGHT]) {
    row(`zstd decompress, decompressBatch, ${inFlight} × ${BATCH} chunks in flight (${cores} cores)`, await mbps(batchDecompress('zstd', zstdPacked, inFlight)), ...zstdB, { mbps: 1500 });
  }
  row('zstd -3 compress (1 core)', await mbps(() => packAll('zstd', 3)), 'zstd -b3 -B1M', zstdCli.compress);
  row(`zstd -3 compress, compressBatch (${cores} cores)`, await mbps(batchCompress('zstd', 3)), 'zstd -b3 -B1M', zstdCli.compress);

  // lz4 blocks against lz4's in-memory benchmark on 1 MiB blocks (-B6), the same LZ4_*_safe calls
  const lz4Cli = cliBench('lz4', ['-b1', '-B6', '-i1', corpusPath]);
  const lz4Packed = packAll('lz4_block');
  checkSame(await native.decompressBatch('lz4_block', lz4Packed, sizes), chunks, 'lz4');
  const lz4B = ['lz4 -b1 -B6', lz4Cli.decompress];
  row('lz4 block decompress, decompressInto a pooled buffer (1 core)', await mbps(syncDecompress('lz4_block', lz4Packed)), ...lz4B, { ratio: 0.9 });
  row(`lz4 block decompress, decompressBatch (${cores} cores)`, await mbps(batchDecompress('lz4_block', lz4Packed, IN_FLIGHT)), ...lz4B);
  row('lz4 block compress (1 core)', await mbps(() => packAll('lz4_block')), 'lz4 -b1 -B6', lz4Cli.compress);

  // gzip: both sides decode the very same bytes, one gzip member per chunk (as pigz writes)
  const gzipPacked = packAll('gzip', 6);
  checkSame(await native.decompressBatch('gzip', gzipPacked, sizes), chunks, 'gzip');
  const gzPath = join(work, 'corpus.tar.gz');
  const emptyGzPath = join(work, 'empty.gz');
  writeFileSync(gzPath, Buffer.concat(gzipPacked));
  writeFileSync(emptyGzPath, native.gzipCompress(Buffer.alloc(0)));
  const oursGunzip = await mbps(syncDecompress('gzip', gzipPacked));
  for (const gunzip of hasCommand('pigz') ? ['gzip', 'pigz'] : ['gzip']) {
    const rate = await cliRate(total, gunzip, ['-dc', gzPath], ['-dc', emptyGzPath]);
    row('gzip decompress, decompressInto a pooled buffer (1 core)', oursGunzip, `${gunzip} -dc`, rate);
  }

  // digests: the CLIs hash the corpus file (in the page cache), we hash it chunk by chunk as Nydus does
  const emptyPath = join(work, 'empty');
  writeFileSync(emptyPath, '');
  const b3sum = (threads) => cliRate(total, 'b3sum', ['--num-threads', threads, '--no-names', corpusPath], ['--no-names', emptyPath]);
  const sslRate = await cliRate(total, 'openssl', ['dgst', '-sha256', corpusPath], ['dgst', '-sha256', emptyPath]);
  const digestEach = (algo) => () => chunks.forEach((c) => native.digest(algo, c));
  row('blake3, digest per chunk (1 core)', await mbps(digestEach('blake3')), 'b3sum --num-threads 1', await b3sum('1'), { ratio: 0.9 });
  row(`blake3, digestBatch (${cores} cores)`, await mbps(batchDigest('blake3')), 'b3sum --num-threads 2', await b3sum('2'));
  row('sha256, digest per chunk (1 core)', await mbps(digestEach('sha256')), 'openssl dgst -sha256', sslRate, { ratio: 0.9 });
  row(`sha256, digestBatch (${cores} cores)`, await mbps(batchDigest('sha256')), 'openssl dgst -sha256 (1 core)', sslRate);

  const table = markdown(rows);
  console.log(`\ncorpus ${(total / MB).toFixed(0)} MB (tar of /usr), 1 MiB chunks, ${cores} cores, ${cpus()[0]?.model ?? 'unknown CPU'}; MB/s of uncompressed data, best of ${PASSES}\n`);
  console.log(table);
  if (!hasCommand('pigz')) console.log('\n(pigz is not installed, so there is no pigz row)');

  const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'out');
  mkdirSync(outDir, { recursive: true });
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    nativeVersion: native.nativeVersion,
    cpu: cpus()[0]?.model,
    cores,
    corpus: { bytes: total, chunkBytes: CHUNK, chunks: chunks.length },
    packedBytes: { zstd3: sum(zstdPacked), lz4: sum(lz4Packed), gzip6: sum(gzipPacked) },
    passes: PASSES,
    rows,
  };
  writeFileSync(join(outDir, 'codecs.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.error(`\nwrote ${join(outDir, 'codecs.json')}`);
}

const sum = (bufs) => bufs.reduce((a, b) => a + b.length, 0);

function markdown(rows) {
  const lines = ['| what | ours MB/s | C CLI | CLI MB/s | ours / CLI | target | |', '|---|--:|---|--:|--:|---|---|'];
  for (const r of rows) {
    const target = r.target?.ratio !== undefined ? `≥ ${r.target.ratio}× CLI` : r.target?.mbps !== undefined ? `≥ ${r.target.mbps / 1000} GB/s` : '';
    const met = r.met === undefined ? '' : r.met ? 'ok' : '**MISS**';
    lines.push(`| ${r.what} | ${r.oursMBps.toFixed(0)} | \`${r.cli}\` | ${r.cliMBps.toFixed(0)} | ${r.ratio.toFixed(2)}× | ${target} | ${met} |`);
  }
  return lines.join('\n');
}

await main();
