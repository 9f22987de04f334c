// End to end, `nydusify-ts optimize` against the registry of scripts/e2e (needs root and /dev/fuse
// for the mounts): debian-ml is converted, a trace is made by hand from real paths and offsets of the
// converted image (the reads a `node --version` start makes: the loader, libc, libstdc++, parts of
// node), and the image is optimized into another repository. The optimized image passes `check
// --with-data` against the OCI image it came from; mounted, it serves files inside and outside the
// trace byte for byte as `umoci unpack` gives them; the hot region annotation is the compressed bytes
// of exactly the touched chunks; the kept blobs are the source's. busybox read whole drops its one
// blob. A trace of another bootstrap, or naming a path the image lacks, pushes nothing. Mounted, the
// optimized image's hot region lands in the page cache of the files the kernel looked up, before or
// after their chunks arrived, so reading them costs no FUSE READ (and without the stores, it does).
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonClient } from '../../../src/daemon/api-client.js';
import { openRemoteNydusImage } from '../../../src/image/remote.js';
import { clientForReferences } from '../../../src/registry/client.js';
import { openImageStore } from '../../../src/registry/open-image-store.js';
import type { ChunkRef } from '../../../src/rafs/tree.js';
import { S_IFMT, S_IFREG } from '../../../src/rafs/tree.js';
import type { RafsImage } from '../../../src/rafs/reader.js';
import { formatHotPackIndex, framesOf, hotPackBytes, hotRegionOf, parseHotPackIndex } from '../../../src/rafs/hot-pack.js';
import { zstdCompress } from '../../../src/native/index.js';
import { type AccessTrace, DEFAULT_HOT_CHUNK_SIZE, type TraceRead } from '../../../src/trace/access-trace.js';
import { cliAsync, runCliAsync } from '../../helpers/cli.js';
import { cleanUp, type Daemon, readToEnd, startDaemon, stopWithStats, waitMounted } from '../../helpers/daemon.js';
import { E2E_DIR, e2eUp } from '../../helpers/e2e.js';
import { runAsync } from '../../helpers/run.js';
import { waitFor } from '../../helpers/wait-for.js';

const REG = '127.0.0.1:5000';
const SOURCE = `${REG}/optimize/debian-ml:nydus`;
const TARGET = `${REG}/optimize/debian-ml-hot:latest`;
const HOT_REGION = 'org.nydusify-ts.hot-region';
const HOT_PACK = 'org.nydusify-ts.hot-pack';
const MiB = 1 << 20;
const work = mkdtempSync(join(tmpdir(), 'nydusify-optimize-'));
const p = (...parts: string[]) => join(work, ...parts);
const daemons: Daemon[] = [];
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

interface Descriptor { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }
interface Manifest { layers: Descriptor[]; config: Descriptor }

async function manifestOf(ref: string): Promise<Manifest | undefined> {
  const [repo, tag] = ref.slice(REG.length + 1).split(':');
  const res = await fetch(`http://${REG}/v2/${repo}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  return res.status === 404 ? undefined : ((await res.json()) as Manifest);
}

/** A Nydus image (registry or oci:DIR): its bootstrap's sha256, its RAFS image, every regular file's nid and size. */
async function openImage(ref: string): Promise<{ digest: string; rafs: RafsImage; files: Map<string, { nid: number; size: number }> }> {
  const client = clientForReferences([[ref, false]], true);
  try {
    const { store, reference } = await openImageStore(ref, client);
    const { bootstrap, rafs } = await openRemoteNydusImage(store, reference);
    const files = new Map<string, { nid: number; size: number }>();
    for (const e of rafs.walk()) if ((e.inode.mode & S_IFMT) === S_IFREG && !e.seen) files.set(e.path, { nid: e.nid, size: e.inode.size });
    return { digest: sha256(bootstrap), rafs, files };
  } finally {
    await client.close();
  }
}

/** A trace of `bootstrap` whose reads are `reads` ([path, offset, length], one ms apart): paths as UTF-8 text. */
function traceOf(bootstrap: string, files: Map<string, { size: number }>, reads: Array<[string, number, number]>): AccessTrace {
  const paths = [...new Set(reads.map(([path]) => path))];
  return {
    format: 'nydusify-ts access trace', version: 1, image: SOURCE, bootstrap, started: new Date().toISOString(), duration: reads.length,
    blobs: [], fetches: [], truncated: false,
    files: paths.map((path) => ({ path: Buffer.from(path, 'latin1').toString('utf8'), size: files.get(path)!.size })),
    reads: reads.map(([path, offset, length], t): TraceRead => ({ t, file: paths.indexOf(path), offset, length, miss: true })),
  };
}

/** Replays the reads under a mount (pread at each offset). */
async function replay(mnt: string, reads: Array<[string, number, number]>): Promise<void> {
  for (const [path, offset, length] of reads) {
    const file = await open(join(mnt, Buffer.from(path, 'latin1').toString('utf8')));
    try {
      const { bytesRead } = await file.read(Buffer.alloc(length), 0, length, offset);
      expect(bytesRead, path).toBe(length);
    } finally {
      await file.close();
    }
  }
}

function mount(ref: string, name: string): Daemon {
  const d = startDaemon(['--target', ref, '--plain-http', '--cache-dir', p(`${name}-cache`)], p(name));
  daemons.push(d);
  return d;
}

beforeAll(async () => {
  e2eUp('registry-up.sh');
  e2eUp('make-images.sh');
  await Promise.all([
    cliAsync(['convert', '--source', `${REG}/debian-ml:latest`, '--target', SOURCE, '--plain-http']),
    runAsync('umoci', ['unpack', '--image', `${join(E2E_DIR, 'images', 'oci')}:debian-ml`, p('bundle')]),
  ]);
}, 300_000);

afterAll(() => cleanUp(daemons, work));

describe('optimize debian-ml from a trace of node starting', () => {
  let source: Awaited<ReturnType<typeof openImage>>;
  let reads: Array<[string, number, number]>;
  let report: { hotRegionBytes: number; touchedBytes: number; sourceTouchedBytes: number; hotFiles: number; keptBlobs: string[]; droppedBlobs: string[]; hotBlob: { size: number }; hotPack?: { digest: string; size: number; frames: number } };
  const LIB = '/usr/lib/x86_64-linux-gnu';
  const UTF8 = Buffer.from('/etc/e2e/héllo-世界.txt', 'utf8').toString('latin1');

  beforeAll(async () => {
    source = await openImage(SOURCE);
    const size = (path: string) => source.files.get(path)!.size;
    const node = size('/usr/local/bin/node');
    reads = [
      ['/usr/local/bin/node', 0, 65_536],
      [`${LIB}/ld-linux-x86-64.so.2`, 0, size(`${LIB}/ld-linux-x86-64.so.2`)],
      [`${LIB}/libc.so.6`, 0, 832],
      [`${LIB}/libc.so.6`, 163_840, 1_400_000],
      [`${LIB}/libstdc++.so.6.0.30`, 0, 4096],
      [`${LIB}/libstdc++.so.6.0.30`, 600_000, 1_000_000],
      [`${LIB}/libm.so.6`, 0, size(`${LIB}/libm.so.6`)],
      [`${LIB}/libgcc_s.so.1`, 0, size(`${LIB}/libgcc_s.so.1`)],
      ['/usr/local/bin/node', 40 * MiB, 20 * MiB],
      ['/usr/local/bin/node', node - 300_000, 300_000],
      ['/etc/os-release', 0, size('/etc/os-release')],
      ['/etc/e2e/random-4m.bin', MiB + 100, 200_000],
      [UTF8, 0, size(UTF8)],
      ['/usr/local/bin/node', 0, 4096],
    ];
    writeFileSync(p('trace.json'), JSON.stringify(traceOf(source.digest, source.files, reads)));
    await cliAsync(['optimize', '--source', SOURCE, '--target', TARGET, '--trace', p('trace.json'), '--plain-http', '--output-json', p('report.json')]);
    report = JSON.parse(readFileSync(p('report.json'), 'utf8')) as typeof report;
  }, 300_000);

  it('passes check --with-data against the OCI image the source was converted from', async () => {
    await cliAsync(['check', '--source', `${REG}/debian-ml:latest`, '--target', TARGET, '--plain-http', '--with-data']);
  }, 300_000);

  it('keeps the source blobs (same digests, in the target repository), then the hot pack, the hot blob, the bootstrap', async () => {
    const [src, opt] = [(await manifestOf(SOURCE))!, (await manifestOf(TARGET))!];
    expect(opt.layers).toHaveLength(src.layers.length + 2);
    expect(opt.layers.slice(0, -3)).toEqual(src.layers.slice(0, -1));
    expect(report.keptBlobs).toEqual(src.layers.slice(0, -1).map((l) => l.digest));
    expect(report.droppedBlobs).toEqual([]);
    for (const layer of opt.layers) {
      const res = await fetch(`http://${REG}/v2/optimize/debian-ml-hot/blobs/${layer.digest}`, { method: 'HEAD' });
      expect(res.status, layer.digest).toBe(200);
    }
    const hot = opt.layers.at(-2)!;
    expect(hot.mediaType).toBe('application/vnd.oci.image.layer.nydus.blob.v1');
    expect(hot.annotations).toEqual({ 'containerd.io/snapshot/nydus-blob': 'true', [HOT_REGION]: String(report.hotRegionBytes) });
    expect(opt.layers.at(-1)!.annotations).toMatchObject({ 'containerd.io/snapshot/nydus-bootstrap': 'true' });
    // the pack: a Nydus blob layer to any other reader; its frames hold exactly the hot region's chunks, in fewer bytes
    const pack = opt.layers.at(-3)!;
    expect(pack.annotations![HOT_PACK]).toBeDefined();
    const index = parseHotPackIndex(pack.annotations![HOT_PACK]!);
    expect(index.blobId).toBe(hot.digest.slice('sha256:'.length));
    expect(hotPackBytes(index)).toBe(pack.size);
    expect(report.hotPack).toEqual({ digest: pack.digest, size: pack.size, frames: index.frames.length });
    const optimized = await openImage(TARGET);
    const table = [...optimized.rafs.chunkInfoTable()].filter((c) => c.blobIndex === optimized.rafs.blobs.length - 1);
    expect(framesOf(index, hotRegionOf(table, report.hotRegionBytes)).length).toBe(index.frames.length);
    expect(pack.size).toBeLessThan(report.hotRegionBytes);
  });

  it('annotates the hot region as the compressed bytes of exactly the touched chunks, which start the hot blob', async () => {
    const opt = await openImage(TARGET);
    const hotIndex = opt.rafs.blobs.length - 1;
    const touched = new Map<string, ChunkRef>();
    for (const [path, offset, length] of reads) {
      for (const slice of opt.rafs.chunksForRange(opt.files.get(path)!.nid, offset, length)) touched.set(`${slice.chunk.blobIndex}:${slice.chunk.ciIndex}`, slice.chunk);
    }
    const chunks = [...touched.values()];
    expect(chunks.every((c) => c.blobIndex === hotIndex)).toBe(true);
    const compressed = chunks.reduce((sum, c) => sum + c.compressedSize, 0);
    expect(report.hotRegionBytes).toBe(compressed);
    expect(Math.max(...chunks.map((c) => c.compressedOffset + c.compressedSize))).toBe(compressed);
    expect(report.touchedBytes).toBe(chunks.reduce((sum, c) => sum + c.uncompressedSize, 0));
    // the prefetch table: the hot files in first-touch order
    const pathOf = new Map([...opt.files].map(([path, f]) => [f.nid, path]));
    expect(opt.rafs.prefetchNids.map((nid) => pathOf.get(nid))).toEqual([...new Set(reads.map(([path]) => path))]);
    expect(opt.rafs.blobs[hotIndex]!.chunkSize).toBe(DEFAULT_HOT_CHUNK_SIZE);
  });

  it('serves files inside and outside the trace byte for byte as umoci unpack has them; reports sizes against the source', async () => {
    const rootfs = p('bundle', 'rootfs');
    const files = [
      ...new Set(reads.map(([path]) => path)),
      '/etc/e2e/zeros-8m.bin', '/etc/e2e/SHA256SUMS', '/usr/local/lib/node_modules/npm/package.json', '/usr/bin/dash', `${LIB}/libz.so.1.2.13`,
    ].map((path) => Buffer.from(path, 'latin1').toString('utf8'));
    const measured: Record<string, number> = {};
    for (const [name, ref] of [['source', SOURCE], ['optimized', TARGET]] as const) {
      const d = mount(ref, name);
      await waitMounted(d);
      await replay(d.mnt, reads);
      const { stats } = await stopWithStats(d);
      measured[`${name}FetchedForTrace`] = stats.fetchedBytes;
    }
    const d = mount(TARGET, 'optimized-read');
    await waitMounted(d);
    for (const path of files) {
      const [got, want] = [await readToEnd(join(d.mnt, path)), readFileSync(join(rootfs, path))];
      expect(sha256(got), path).toBe(sha256(want));
    }
    const { code } = await stopWithStats(d);
    expect(code).toBe(0);
    console.log('optimize sizes', JSON.stringify({ ...report, ...measured }));
    expect(report.hotRegionBytes).toBeLessThan(report.sourceTouchedBytes);
  }, 300_000);

  it('regression: a hot pack whose frames do not decode or do not verify costs time, never bytes: its chunks come from the hot blob', async () => {
    const BAD = `${REG}/optimize/debian-ml-hot:bad-pack`;
    const { store } = await openImageStore(BAD, clientForReferences([[BAD, false]], true));
    const manifest = (await store.getManifest('latest')).parsed as { layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] };
    const packLayer = manifest.layers.at(-3)!;
    const index = parseHotPackIndex(packLayer.annotations![HOT_PACK]!);
    const original = Buffer.from(await (await fetch(`http://${REG}/v2/optimize/debian-ml-hot/blobs/${packLayer.digest}`)).arrayBuffer());
    const optimized = await openImage(TARGET);
    const table = [...optimized.rafs.chunkInfoTable()].filter((c) => c.blobIndex === optimized.rafs.blobs.length - 1);
    const lastFrame = framesOf(index, hotRegionOf(table, report.hotRegionBytes)).at(-1)!;
    // the first frame's body garbled (it fails to decode); the last one a well-formed frame of as many
    // bytes that are not its chunks' (it decodes, and no chunk verifies)
    const head = Buffer.from(original.subarray(0, lastFrame.offset));
    head.fill(0x5a, 64, 256);
    const forged = zstdCompress(Buffer.alloc(lastFrame.refs.reduce((n, r) => n + r.uncompressedSize, 0), 7));
    index.frames.at(-1)!.compressedSize = forged.length;
    const pack = Buffer.concat([head, forged]);
    packLayer.annotations![HOT_PACK] = formatHotPackIndex(index);
    packLayer.size = pack.length;
    const digest = `sha256:${createHash('sha256').update(pack).digest('hex')}`;
    await store.putBlob({ digest, size: pack.length }, pack);
    packLayer.digest = digest;
    await store.putManifest(Buffer.from(JSON.stringify(manifest)), 'application/vnd.oci.image.manifest.v1+json', 'bad-pack');
    const d = mount(BAD, 'bad-pack');
    await waitMounted(d);
    const api = new DaemonClient(join(d.stateDir, readdirSync(d.stateDir).find((n) => n.endsWith('.sock'))!));
    await waitFor(async () => (await api.info()).mounts[0]?.hotRegion?.state === 'done', 'the hot region to arrive', 60_000, 50);
    for (const path of [...new Set(reads.map(([f]) => f))].map((f) => Buffer.from(f, 'latin1').toString('utf8'))) {
      expect(sha256(await readToEnd(join(d.mnt, path))), path).toBe(sha256(readFileSync(join(p('bundle', 'rootfs'), path))));
    }
    const { code } = await stopWithStats(d);
    expect(code).toBe(0);
    expect(d.stderr()).toContain('a hot pack frame was not had');
    expect(d.stderr()).toContain('hot pack chunks did not verify');
    expect(d.stderr()).not.toContain('read failed');
  }, 120_000);

  describe('the hot region in the page cache', () => {
    /** Both read whole by the trace above, so every page of them is in the hot region. */
    const EARLY = `${LIB}/libm.so.6`;
    const LATE = `${LIB}/libgcc_s.so.1`;
    const resident = (path: string): number => Number(spawnSync('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES', path], { encoding: 'utf8' }).stdout.trim());
    const apiOf = (d: Daemon): DaemonClient => new DaemonClient(join(d.stateDir, readdirSync(d.stateDir).find((n) => n.endsWith('.sock'))!));

    /**
     * Mounts the optimized image, looks one file up at once (its chunks arrive after) and one once the
     * region is in (its chunks came before), then reads both whole: what of them was in the page cache
     * before the reads, and which files the daemon still served READs of.
     */
    async function lookUpThenRead(name: string, flags: string[]): Promise<{ resident: Map<string, number>; served: Set<string> }> {
      const d = startDaemon(['--target', TARGET, '--plain-http', '--cache-dir', p(`${name}-cache`), ...flags], p(name));
      daemons.push(d);
      await waitMounted(d);
      const path = (f: string) => join(d.mnt, f);
      statSync(path(EARLY));
      const api = apiOf(d);
      await waitFor(async () => (await api.info()).mounts[0]?.hotRegion?.state === 'done', 'the hot region to arrive', 60_000, 50);
      statSync(path(LATE));
      // the stores are written by their own thread, after the region is in: give them time to land
      // (on a busy 2-core CI runner a file's last page once took longer than 2 s)
      const want = (f: string) => Math.ceil(statSync(path(f)).size / 4096) * 4096;
      if (!flags.includes('--no-hot-pages')) {
        await waitFor(() => resident(path(EARLY)) === want(EARLY) && resident(path(LATE)) === want(LATE), 'the stored pages', 10_000, 50).catch(() => undefined);
      }
      const pages = new Map([EARLY, LATE].map((f) => [f, resident(path(f))]));
      for (const f of [EARLY, LATE]) expect(sha256(await readToEnd(path(f))), f).toBe(sha256(readFileSync(p('bundle', 'rootfs', f))));
      const trace = await api.accessTrace('/');
      const served = new Set(trace.reads.map((r) => trace.files[r.file]!.path));
      await stopWithStats(d);
      return { resident: pages, served };
    }

    it('is stored in the page cache of the files the kernel knows: they are read without a FUSE READ', async () => {
      const on = await lookUpThenRead('pages', []);
      for (const f of [EARLY, LATE]) {
        expect(on.resident.get(f), f).toBeGreaterThanOrEqual(readFileSync(p('bundle', 'rootfs', f)).length);
        expect(on.served.has(f), f).toBe(false);
      }
      // without the stores the same reads are READs the daemon serves
      const off = await lookUpThenRead('no-pages', ['--no-hot-pages']);
      for (const f of [EARLY, LATE]) {
        expect(off.resident.get(f), f).toBe(0);
        expect(off.served.has(f), f).toBe(true);
      }
    }, 180_000);
  });
});

describe('optimize busybox read whole', () => {
  it('moves every file into the hot blob and drops the source blob; check passes', async () => {
    const src = `${REG}/optimize/busybox:nydus`;
    const dst = `${REG}/optimize/busybox-hot:latest`;
    await cliAsync(['convert', '--source', `${REG}/busybox:latest`, '--target', src, '--plain-http']);
    const image = await openImage(src);
    const reads = [...image.files].filter(([, f]) => f.size > 0).map(([path, f]): [string, number, number] => [path, 0, f.size]);
    writeFileSync(p('busybox-trace.json'), JSON.stringify(traceOf(image.digest, image.files, reads)));
    await cliAsync(['optimize', '--source', src, '--target', dst, '--trace', p('busybox-trace.json'), '--plain-http', '--hot-chunk-size', '16K']);
    const [before, after] = [(await manifestOf(src))!, (await manifestOf(dst))!];
    // pack, hot blob, bootstrap
    expect(after.layers).toHaveLength(3);
    expect(after.layers[1]!.digest).not.toBe(before.layers[0]!.digest);
    await cliAsync(['check', '--source', `${REG}/busybox:latest`, '--target', dst, '--plain-http', '--with-data']);
    const optimized = await openImage(dst);
    expect(optimized.rafs.blobs.map((b) => b.chunkSize)).toEqual([16_384]);
    // every chunk was touched: the hot region is all of the blob's chunk data
    const chunkData = [...optimized.rafs.chunkInfoTable()].reduce((sum, c) => sum + c.compressedSize, 0);
    expect(after.layers[1]!.annotations![HOT_REGION]).toBe(String(chunkData));
    expect(after.layers[0]!.annotations![HOT_PACK]).toBeDefined();
  }, 120_000);
});

describe('optimize between OCI layouts', () => {
  it('reads an oci:DIR source and writes an oci:DIR target that check passes', async () => {
    const [src, dst] = [`oci:${p('bb-layout')}:nydus`, `oci:${p('bb-hot-layout')}:hot`];
    await cliAsync(['convert', '--source', `${REG}/busybox:latest`, '--target', src, '--plain-http']);
    const image = await openImage(src);
    const busybox = [...image.files].find(([path]) => path.endsWith('/busybox'))!;
    writeFileSync(p('bb-layout-trace.json'), JSON.stringify(traceOf(image.digest, image.files, [[busybox[0], 0, 100_000]])));
    await cliAsync(['optimize', '--source', src, '--target', dst, '--trace', p('bb-layout-trace.json')]);
    await cliAsync(['check', '--source', `${REG}/busybox:latest`, '--target', dst, '--plain-http', '--with-data']);
  }, 120_000);
});

describe('optimize --run (a trace recorded by running a command over the mounted source)', () => {
  it('records what `node -e 1` reads (in a chroot whose writes go to a tmpfs) and lays the image out for it', async () => {
    const target = `${REG}/optimize/debian-ml-run:latest`;
    const command = ['sh', '-c', 'node -e 1 && echo written >/root/new-file && cat /root/new-file'];
    await cliAsync(['optimize', '--source', SOURCE, '--target', target, '--plain-http', '--trace', p('run-trace.json'), '--output-json', p('run-report.json'), '--run', ...command]);
    const source = await openImage(SOURCE);
    const trace = JSON.parse(readFileSync(p('run-trace.json'), 'utf8')) as AccessTrace;
    expect(trace.bootstrap).toBe(source.digest);
    const read = new Set(trace.reads.map((r) => trace.files[r.file]!.path));
    expect(read).toContain('/usr/local/bin/node');
    expect(read).toContain('/usr/lib/x86_64-linux-gnu/libc.so.6');
    // the image is not written to: the command's file went to the overlay's tmpfs
    expect(source.files.has('/root/new-file')).toBe(false);
    const opt = await openImage(target);
    const pathOf = new Map([...opt.files].map(([path, f]) => [f.nid, path]));
    const prefetch = opt.rafs.prefetchNids.map((nid) => Buffer.from(pathOf.get(nid)!, 'latin1').toString('utf8'));
    expect(new Set(prefetch)).toEqual(read);
    const report = JSON.parse(readFileSync(p('run-report.json'), 'utf8')) as { hotRegionBytes: number; touchedBytes: number; sourceTouchedBytes: number; tracedFetchBytes: number };
    expect((await manifestOf(target))!.layers.at(-2)!.annotations![HOT_REGION]).toBe(String(report.hotRegionBytes));
    console.log('optimize --run sizes', JSON.stringify(report));
    const d = mount(target, 'run-optimized');
    await waitMounted(d);
    const node = '/usr/local/bin/node';
    expect(sha256(await readToEnd(join(d.mnt, node)))).toBe(sha256(readFileSync(join(p('bundle', 'rootfs'), node))));
    expect((await stopWithStats(d)).code).toBe(0);
  }, 300_000);

  it('a command that fails pushes nothing and leaves nothing mounted', async () => {
    const target = `${REG}/optimize/refused-run:latest`;
    const r = await runCliAsync(['optimize', '--source', SOURCE, '--target', target, '--plain-http', '--work-dir', work, '--run', 'sh', '-c', 'exit 3']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/sh -c exit 3 exited 3 in the image/);
    expect(await manifestOf(target)).toBeUndefined();
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain('nydusify-traced-run-');
  }, 120_000);
});

describe('optimize refusals push nothing', () => {
  it.each([
    ['a trace of another bootstrap', (t: AccessTrace) => void (t.bootstrap = 'e'.repeat(64)), /taken on bootstrap sha256:e{64}, the source image's bootstrap is sha256:[0-9a-f]{64}/],
    ['a path the image lacks', (t: AccessTrace) => void (t.files[0]!.path = '/usr/local/bin/nodejs'), /\/usr\/local\/bin\/nodejs, which is not in the image/],
    ['a read past a file\'s end', (t: AccessTrace) => void (t.reads[0]!.offset = t.files[0]!.size), /past its end/],
  ])('%s', async (_what, spoil, message) => {
    const image = await openImage(SOURCE);
    const trace = traceOf(image.digest, image.files, [['/usr/local/bin/node', 0, 4096]]);
    spoil(trace);
    writeFileSync(p('bad-trace.json'), JSON.stringify(trace));
    const target = `${REG}/optimize/refused:latest`;
    const r = await runCliAsync(['optimize', '--source', SOURCE, '--target', target, '--trace', p('bad-trace.json'), '--plain-http']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(await manifestOf(target)).toBeUndefined();
  });
});
