#!/usr/bin/env node
// `npm run fixtures`: fetches the upstream Nydus test data the compatibility tests read
// (test/helpers/fixtures.ts) from the public repositories, at pinned commits, and keeps a file only when
// its sha256 is the one pinned here. Every file is fetched and checked before anything is written; the
// result replaces .fixtures/ in one rename, so a wrong byte leaves nothing behind.
//
//   NYDUSIFY_FIXTURES_BASE  where the repositories are (default https://raw.githubusercontent.com):
//                           an http(s):// or file:// URL or a directory, laid out OWNER/REPO/COMMIT/PATH
//   NYDUSIFY_FIXTURES_OUT   where to put them (default .fixtures/ in this checkout)
//   --list                  prints what would be fetched (source under the base, dest, size, sha256)
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Both projects are Apache-2.0; what each file is: docs/rafs-v6.md §8.2. Names are the upstream ones. */
const SOURCES = [
  {
    repo: 'dragonflyoss/nydus',
    commit: '34e6071e556aca39ad5b400d69a609797f879e55',
    from: 'tests/texture',
    to: 'nydus',
    files: {
      'blobs/be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef': [14554, '4b16fb83ae9f62d8263323b8569535e66ebf21171cf98fd94db9db27b59755ac'],
      'bootstrap/rafs-v6-2.2.boot': [20480, '6a1ab377a31df3b1dfe6d3f09b4168f1db66207f77012206ac7b98cb5a42186d'],
      'stargz/estargz_sample.json': [1420, '48b227b8f727f26b35e32aa79c109484cafcf2fa012d5d9f5dd6d6fe59ef40c3'],
      'tar/all-entry-type.tar': [10240, '87aae74a677161ede3210f3a70a9d5fea997193e6c6a03ef22f4e3eeaeb30884'],
      'tar/empty.tar': [0, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
      'toc/2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca': [10034, '2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca'],
      'zran/zran-single-stream.tar.gz': [229, '13f6f96d1dfa3074c84b6ac2d16ae6f21c1019cee48656050b6b9325494d5a5a'],
      'zran/zran-two-streams.tar.gz': [8908, '5f7e0bcb80041a7f4db24cb2e1c3789f7544db3d296d261354d46f6070ff27d0'],
      'zstd/2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca.zst': [3746, '1ea08987171892deea1c71709a201cde1214923c47ea5569b17c4b63fbc58df5'],
    },
  },
  {
    repo: 'containerd/nydus-snapshotter',
    commit: 'a7a1f071c194c3cb88eee5656a8e78783d0b0351',
    from: 'pkg/filesystem/testdata',
    to: 'nydus/snapshotter-testdata',
    files: {
      'invalid-bootstrap-file-size-133513.tar.gz': [48020, '6d67644e8f34601a60e4d47ee1a45716d86ae79453af2a67ec90abeb7ad68b25'],
      'invalid.tar.gz': [2446, '67b11e078a136820456725448fdf73c8438ae002fa8c0d70a4f66b2ab78d635f'],
      'v5-bootstrap-file-size-736032.tar.gz': [296733, '9ae243a895395b420c2357310080d7dcc7388c01a282b2c4b74c4a289ef9b05d'],
    },
  },
  // the sample configs upstream ships: a nydusd or snapshotter config of a user moving over loads as it is (test/e2e/daemon/upstream-configs.test.ts)
  {
    repo: 'dragonflyoss/nydus',
    commit: '34e6071e556aca39ad5b400d69a609797f879e55',
    from: 'misc/configs',
    to: 'nydus/configs',
    files: {
      'nydusd-blob-cache-entry-configuration-v2.toml': [4399, 'e56c0f3fb03a28fb2728ca9be42aaa66747566dc948955c35b4d3c9f62d92b0d'],
      'nydusd-blob-cache-entry.toml': [4423, '97265584367be04c10ecab7723f7155190a7c8680a05a54503ab486e2e49742e'],
      'nydusd-boostrap-blob-cache-entry.json': [337, '612397bbf9006fa06becdf89a2e7faede4a199b529971977a3d8580040e6ba4e'],
      'nydusd-config-v2.toml': [5435, '6b0a9b892aeb086b5226a5d73476b171f73e8302c1dfeb60d890380bf5d0c2df'],
      'nydusd-config.json': [596, '0879b224846471d7bbb9ba9cbe923a02751619eda47341ae277a5e2371e0a130'],
    },
  },
  {
    repo: 'containerd/nydus-snapshotter',
    commit: 'a7a1f071c194c3cb88eee5656a8e78783d0b0351',
    from: 'misc/snapshotter',
    to: 'nydus/snapshotter-configs',
    files: {
      'config.toml': [6779, '38bfd1c0db6d6f926d35802bc3c0051ee2ffa0bf7d3eb76942b1bf0edfc551e5'],
      'config-proxy.toml': [496, 'c952f3f3b2be98986117850eb361845a5cfabf254900a89b1e65e03efc50d4f6'],
      'config-blockdev.toml': [1515, '4c9a7c8aaad5228552d947c212a00e96ca15351189f1bac19188ce4d980511d8'],
      'nydusd-config.fusedev.json': [467, 'bc8dc08f6889186bb5fb0a235448c4843301c333ec7367fcbc75921e9b683f3d'],
      'nydusd-config-localfs.json': [412, 'ec74052e9e75a04a5bcd6b1e10e066bf7cf44e14efb8e7bf3bd02a8c09e480cd'],
      'nydusd-config.fscache.json': [285, 'bbdcf2c98b7a857b620522c2c39c5b40b3fec3b0017f1703fb80a0c225abe1fc'],
    },
  },
];

const TIMEOUT_MS = 60_000;
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** One entry per file: where it comes from (URL path under the base), where it goes, what it must be. */
function manifest() {
  return SOURCES.flatMap(({ repo, commit, from, to, files }) =>
    Object.entries(files).map(([name, [size, sha256]]) => ({ source: `${repo}/${commit}/${from}/${name}`, dest: `${to}/${name}`, size, sha256 })));
}

function baseUrl(base) {
  if (/^(https?|file):\/\//.test(base)) return base.endsWith('/') ? base : `${base}/`;
  return pathToFileURL(resolve(base)).href + '/';
}

/** The bytes at `url`, refused past `size` + 1 so a hostile or wrong server cannot fill the memory. */
async function download(url, size) {
  if (url.protocol === 'file:') {
    const path = fileURLToPath(url);
    if ((await stat(path)).size > size) throw new Error(`${url.href}: larger than the pinned ${size} bytes`);
    return readFile(path);
  }
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'follow' });
  if (!res.ok) throw new Error(`${url.href}: HTTP ${res.status}`);
  const chunks = [];
  let length = 0;
  for await (const chunk of res.body) {
    length += chunk.length;
    if (length > size) throw new Error(`${url.href}: larger than the pinned ${size} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** True when `out` already holds every file with its pinned sha256. */
function upToDate(out, files) {
  return files.every((f) => {
    const path = join(out, f.dest);
    return existsSync(path) && statSync(path).size === f.size && sha256(readFileSync(path)) === f.sha256;
  });
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length > 0 && !(args.length === 1 && args[0] === '--list')) throw new Error(`unknown arguments ${args.join(' ')} (only --list)`);
  if (args[0] === '--list') {
    console.log(JSON.stringify(manifest(), null, 2));
    return;
  }
  const base = baseUrl(process.env.NYDUSIFY_FIXTURES_BASE ?? 'https://raw.githubusercontent.com');
  const outArg = process.env.NYDUSIFY_FIXTURES_OUT ?? join(repoRoot, '.fixtures');
  const out = isAbsolute(outArg) ? outArg : resolve(outArg);
  const files = manifest();
  if (upToDate(out, files)) {
    console.log(`${out}: ${files.length} fixtures present, sha256 checked`);
    return;
  }
  const fetched = await Promise.all(files.map(async (f) => {
    const url = new URL(f.source, base);
    const bytes = await download(url, f.size);
    const got = sha256(bytes);
    if (got !== f.sha256) throw new Error(`${url.href}: sha256 ${got}, pinned ${f.sha256} (${bytes.length} bytes): refused`);
    return { ...f, bytes };
  }));
  const stage = `${out}.partial-${process.pid}`;
  const old = `${out}.old-${process.pid}`;
  try {
    for (const f of fetched) {
      mkdirSync(dirname(join(stage, f.dest)), { recursive: true });
      writeFileSync(join(stage, f.dest), f.bytes);
    }
    if (existsSync(out)) renameSync(out, old);
    renameSync(stage, out);
  } finally {
    rmSync(stage, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  }
  console.log(`${out}: ${fetched.length} fixtures fetched from ${base}, sha256 checked`);
}

main().catch((err) => {
  console.error(`fixtures: ${err.message}`);
  process.exitCode = 1;
});
