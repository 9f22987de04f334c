// The lazy half of the demo, what users adopt the product for: a local docker-registry, a small real
// image built and pushed to it (the sample tree, a static busybox to run, and a large file nobody
// reads), converted to a Nydus image in the registry, mounted lazily by our daemon, a command run in
// it with chroot, and the bytes the mount fetched set against the image's size.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { convertImage } from '../convert/pipeline.js';
import { DEFAULT_CONFIG } from '../daemon/config.js';
import { Daemon } from '../daemon/daemon.js';
import { RegistryClient } from '../registry/client.js';
import { resolveImage } from '../registry/image-store.js';
import { openImageStore } from '../registry/open-image-store.js';
import { parseAccessTrace } from '../trace/access-trace.js';
import { computeReport } from '../trace/report.js';
import { renderReportHtml } from '../trace/report-html.js';
import { MiB } from '../util/bytes.js';
import { writeAtomically } from '../util/files.js';
import { compressibleNoise, tarLayer, writeSampleTree } from './sample.js';
import { REGISTRY_BINARY, startLocalRegistry } from './registry.js';

const run = promisify(execFile);
const BUSYBOX = '/bin/busybox';
/** What the command reads of the library: a prefix, so a lazy mount fetches a part of one file. */
const READ_BYTES = 100_000;
const SCRIPT = `busybox cat /etc/os-release && busybox head -c ${READ_BYTES} /usr/lib/libdemo.so.1.0 | busybox md5sum`;

export interface LazyDemoSummary {
  registry: string;
  source: string;
  target: string;
  /** Bytes of the OCI image's layer (gzip), what a full pull moves. */
  ociBytes: number;
  /** Bytes of the Nydus image's layers (data blobs + bootstrap layer). */
  nydusBytes: number;
  /** Bytes the lazy mount fetched from the registry to run the command. */
  fetchedBytes: number;
  rangeRequests: number;
  command: string;
  /** Its output's md5 line, checked against the original file's. */
  output: string;
  /** The mount's lazy-load report (a self-contained HTML page drawn from its access trace). */
  report: string;
  seconds: { convert: number; mount: number; run: number };
}

/** Whether this machine can run the lazy demo: root, /dev/fuse, docker-registry and a static busybox. */
export async function lazyDemoMissing(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (FUSE mount, chroot)';
  for (const path of ['/dev/fuse', BUSYBOX, REGISTRY_BINARY, '/usr/sbin/chroot']) {
    if (!(await access(path).then(() => true, () => false))) return `needs ${path}`;
  }
  return undefined;
}

/** Runs the lazy half in `workDir` (removed by the caller); the report is written to `reportPath`. */
export async function runLazyDemo(workDir: string, reportPath: string): Promise<LazyDemoSummary> {
  await mkdir(workDir, { recursive: true });
  const registry = await startLocalRegistry(workDir);
  try {
    const client = new RegistryClient({ hosts: { [registry.host]: { plainHttp: true } } });
    const source = `${registry.host}/demo:latest`;
    const target = `${registry.host}/demo:nydus`;
    const { ociBytes, expected } = await pushSampleImage(workDir, source, client);
    const t0 = performance.now();
    const src = await openImageStore(source, client);
    const dst = await openImageStore(target, client);
    await convertImage({ source: src.store, sourceReference: src.reference, target: dst.store, targetReference: dst.reference, compressor: 'zstd', digester: 'blake3', chunkSize: MiB, workDir });
    const convertSeconds = (performance.now() - t0) / 1000;
    const nydusBytes = (await resolveImage(dst.store, dst.reference)).manifest.parsed.layers.reduce((sum, l) => sum + l.size, 0);
    const mnt = join(workDir, 'mnt');
    await mkdir(mnt);
    const trace = join(workDir, 'trace.json');
    const daemon = new Daemon({ id: 'demo-lazy', mode: 'dedicated', mountpoint: mnt, signals: [], config: { ...DEFAULT_CONFIG, cacheDir: join(workDir, 'cache'), registry: { ...DEFAULT_CONFIG.registry, plainHttp: true } } });
    await daemon.start();
    let summary: Omit<LazyDemoSummary, 'report'>;
    try {
      const t1 = performance.now();
      await daemon.mount('/', { target, plainHttp: true, trace });
      const t2 = performance.now();
      const { stdout } = await run('/usr/sbin/chroot', [mnt, BUSYBOX, 'sh', '-c', SCRIPT], { env: { PATH: '/bin' } });
      const t3 = performance.now();
      const output = stdout.trim().split('\n').pop() ?? '';
      if (!output.startsWith(expected)) throw new Error(`demo: the command in the lazily mounted image printed "${output}", expected md5 ${expected}`);
      const stats = daemon.backendStats();
      summary = {
        registry: registry.host, source, target, ociBytes, nydusBytes, fetchedBytes: stats.bytes ?? 0, rangeRequests: stats.requests ?? 0,
        command: SCRIPT, output, seconds: { convert: convertSeconds, mount: (t2 - t1) / 1000, run: (t3 - t2) / 1000 },
      };
    } finally {
      // writes the mount's access trace
      await daemon.stop();
    }
    await writeAtomically(reportPath, renderReportHtml(computeReport(parseAccessTrace(await readFile(trace)))));
    return { ...summary, report: reportPath };
  } finally {
    await registry.stop();
  }
}

/** Builds the sample image (one gzip layer) and pushes it as `ref`; returns its layer's size and the md5 the command must print. */
async function pushSampleImage(workDir: string, ref: string, client: RegistryClient): Promise<{ ociBytes: number; expected: string }> {
  const root = join(workDir, 'rootfs');
  await writeSampleTree(root);
  await mkdir(join(root, 'bin'), { recursive: true });
  await copyFile(BUSYBOX, join(root, 'bin', 'busybox'));
  await mkdir(join(root, 'opt', 'app'), { recursive: true });
  // the bulk of the image, never read by the command: a lazy mount never fetches it
  await writeFile(join(root, 'opt', 'app', 'model.bin'), compressibleNoise(24 * MiB, 0x2545f491));
  const tar = join(workDir, 'layer.tar');
  await tarLayer(root, tar);
  const tarBytes = await readFile(tar);
  const layer = gzipSync(tarBytes);
  const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/busybox', 'sh'] },
    rootfs: { type: 'layers', diff_ids: [sha(tarBytes)] },
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length }],
  }));
  const { store, reference } = await openImageStore(ref, client);
  await store.putBlob({ digest: sha(config), size: config.length }, config);
  await store.putBlob({ digest: sha(layer), size: layer.length }, layer);
  await store.putManifest(manifest, 'application/vnd.oci.image.manifest.v1+json', reference);
  const library = await readFile(join(root, 'usr', 'lib', 'libdemo.so.1.0'));
  return { ociBytes: layer.length, expected: createHash('md5').update(library.subarray(0, READ_BYTES)).digest('hex') };
}
