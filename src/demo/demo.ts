// The demo job, the product's main job on a built-in sample: write a small but realistic layer
// (text, nested directories, a symlink, a 5 MiB binary and a vendored copy of it), tar it as an
// image builder would, convert it (`create`: chunks, digests, dedup, zstd, blob + RAFS bootstrap),
// export it as an EROFS image, mount that with the kernel and read every file back, checking each
// against the original; then serve the image with our own FUSE daemon and read it all back again,
// and once more in block mode: the daemon serves the flat EROFS image as one file and the kernel's
// EROFS is mounted on that file.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_CONFIG } from '../daemon/config.js';
import { Daemon } from '../daemon/daemon.js';
import { mountErofs, unmountErofs } from '../daemon/erofs-mount.js';
import { exportBlockImage } from '../image/export-block.js';
import { openLocalImage } from '../image/local.js';
import type { Compressor, Digester } from '../rafs/tree.js';
import { MiB } from '../util/bytes.js';
import { log } from '../util/log.js';
import { noProgress, type ProgressSink } from '../util/progress.js';
import { DEFAULT_CHUNK_SIZE, assertChunkSize } from '../convert/chunker.js';
import { lazyDemoMissing, type LazyDemoSummary, runLazyDemo } from './lazy.js';
import { tarLayer, writeSampleTree } from './sample.js';
import { createLayer } from '../convert/create.js';

const COMPRESSOR: Compressor = 'zstd';
const DIGESTER: Digester = 'blake3';
const run = promisify(execFile);

export interface DemoOptions {
  chunkSize?: number;
  /** Also run the lazy half (src/demo/lazy.ts): registry, push, convert, lazy mount, a command. Default true. */
  lazy?: boolean;
  /** Where the lazy half writes its lazy-load report (default: nydusify-demo-report.html in the temp directory). */
  reportPath?: string;
  progress?: ProgressSink;
}

export interface DemoSummary {
  /** Size of the sample layer as a tar, what an OCI image would carry. */
  layerBytes: number;
  files: number;
  /** Bytes of file data. */
  bytes: number;
  chunks: number;
  uniqueChunks: number;
  /** Size of the data blob: unique chunks (compressed where that made them smaller) and metadata. */
  compressedBytes: number;
  bootstrapBytes: number;
  blobId: string;
  /** bytes / compressedBytes: what dedup and compression save together. */
  ratio: number;
  chunkSize: number;
  compressor: Compressor;
  digester: Digester;
  /** Time spent converting the layer (create). */
  timeMs: number;
  /** How the image was read back: a kernel EROFS mount (as root), else through the blob reader. */
  readBack: 'kernel-mount' | 'blob-reader';
  /** Whether every file was also read back through our FUSE daemon (as root, with /dev/fuse). */
  fuseDaemon: boolean;
  /** Whether every file was also read back through the kernel's EROFS on our daemon's image file (block mode). */
  blockMode: boolean;
  /** Files whose bytes read back equal the originals (all of them, or the demo fails). */
  verifiedFiles: number;
  /** First line of /etc/os-release as read from the image. */
  osRelease: string;
  /** The lazy half, or why it did not run. */
  lazy: LazyDemoSummary | { skipped: string };
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Reads every file back from the converted image and checks it against the source tree. */
async function readBack(workDir: string, root: string, files: string[], bootstrap: string, blobDir: string): Promise<{ how: DemoSummary['readBack']; osRelease: string }> {
  const image = await openLocalImage(bootstrap, blobDir);
  try {
    await exportBlockImage(image, await readFile(bootstrap), join(workDir, 'disk.img'));
    if (process.getuid?.() === 0) {
      const mnt = join(workDir, 'mnt');
      await mkdir(mnt);
      await mountLoop(join(workDir, 'disk.img'), mnt);
      try {
        for (const f of files) await expectSame(f, await readFile(join(mnt, f)), root);
        return { how: 'kernel-mount', osRelease: (await readFile(join(mnt, 'etc/os-release'), 'utf8')).split('\n')[0]! };
      } finally {
        await run('umount', [mnt]);
      }
    }
    const tree = image.rafs.toBootstrap().root;
    let osRelease = '';
    for (const f of files) {
      let node = tree;
      for (const part of f.split('/')) node = node.children!.get(part)!;
      const data = Buffer.concat(await Promise.all(node.inode.chunks.map((c) => image.chunks!.read(c))));
      await expectSame(f, data, root);
      if (f === 'etc/os-release') osRelease = data.toString('utf8').split('\n')[0]!;
    }
    return { how: 'blob-reader', osRelease };
  } finally {
    await image.close();
  }
}

/**
 * Serves the image with our FUSE daemon (in this process, its own threads) and reads every file back;
 * with `block`, the daemon serves the flat EROFS image file and the files are read through the kernel's
 * EROFS mounted on it.
 */
async function readThroughDaemon(workDir: string, root: string, files: string[], bootstrap: string, blobDir: string, block = false): Promise<boolean> {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) return false;
  const mnt = join(workDir, block ? 'fuse-block' : 'fuse');
  const erofs = join(workDir, 'erofs-on-fuse');
  await mkdir(mnt);
  const daemon = new Daemon({ id: 'demo', mode: 'dedicated', mountpoint: mnt, block, config: { ...DEFAULT_CONFIG, cacheDir: join(workDir, 'cache') }, signals: [] });
  await daemon.start();
  try {
    await daemon.mount('/', { bootstrap, blobDir });
    if (block) {
      await mkdir(erofs);
      await mountErofs(mnt, erofs);
    }
    try {
      for (const f of files) await expectSame(f, await readFile(join(block ? erofs : mnt, f)), root);
    } finally {
      if (block) await unmountErofs(erofs);
    }
  } finally {
    await daemon.stop();
  }
  return true;
}

/** `mount -o loop`: loop-device set-up can lose a race with another process taking the same free device. */
async function mountLoop(image: string, mnt: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await run('mount', ['-t', 'erofs', '-o', 'loop,ro', image, mnt]);
      return;
    } catch (err) {
      if (attempt === 3) throw err;
      log.debug('loop mount failed, retrying', { error: (err as Error).message });
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

async function expectSame(file: string, got: Buffer, root: string): Promise<void> {
  if (sha256(got) !== sha256(await readFile(join(root, file)))) throw new Error(`demo: ${file} read back from the image differs from the original`);
  log.debug('file verified', { path: file, bytes: got.length });
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoSummary> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  assertChunkSize(chunkSize); // before writing anything
  const progress = options.progress ?? noProgress;
  const workDir = await mkdtemp(join(tmpdir(), 'nydusify-demo-'));
  try {
    const root = join(workDir, 'rootfs');
    const files = await writeSampleTree(root);
    const tarPath = join(workDir, 'layer.tar');
    const layerBytes = await tarLayer(root, tarPath);
    log.info('sample layer built', { files: files.length, tarBytes: layerBytes });
    progress.setTotal(layerBytes);
    const source = createReadStream(tarPath, { highWaterMark: MiB });
    source.on('data', (b) => progress.advance(b.length));
    // a 'data' listener starts the flow at once, and createLayer awaits file opens before it reads:
    // paused, the stream keeps its first bytes (the first tar header) until createLayer consumes it
    source.pause();
    const started = performance.now();
    const bootstrap = join(workDir, 'image.boot');
    const created = await createLayer({ source, bootstrapPath: bootstrap, blobDir: join(workDir, 'blobs'), compressor: COMPRESSOR, digester: DIGESTER, chunkSize });
    const timeMs = Math.round(performance.now() - started);
    const back = await readBack(workDir, root, files, bootstrap, join(workDir, 'blobs'));
    const fuseDaemon = await readThroughDaemon(workDir, root, files, bootstrap, join(workDir, 'blobs'));
    const blockMode = fuseDaemon && (await readThroughDaemon(workDir, root, files, bootstrap, join(workDir, 'blobs'), true));
    const bytes = created.stats.fileBytes;
    const lazyMissing = options.lazy === false ? 'not asked for' : await lazyDemoMissing();
    const reportPath = options.reportPath ?? join(tmpdir(), 'nydusify-demo-report.html');
    const lazy = lazyMissing === undefined ? await runLazyDemo(join(workDir, 'lazy'), reportPath) : { skipped: lazyMissing };
    return {
      layerBytes,
      files: files.length,
      bytes,
      chunks: created.stats.chunkRefs,
      uniqueChunks: created.stats.distinctChunks,
      compressedBytes: created.blobSize,
      bootstrapBytes: created.bootstrapSize,
      blobId: created.blobId,
      ratio: bytes / created.blobSize,
      chunkSize,
      compressor: COMPRESSOR,
      digester: DIGESTER,
      timeMs,
      readBack: back.how,
      fuseDaemon,
      blockMode,
      verifiedFiles: files.length,
      osRelease: back.osRelease,
      lazy,
    };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
