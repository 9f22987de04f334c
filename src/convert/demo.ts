// The demo job: write a small but realistic layer (text, nested directories, a symlink, a 5 MiB
// binary and a vendored copy of it), tar it as an image builder would, then run the first stage of a
// RAFS conversion on its files: cut into chunks, digest, deduplicate, compress, write the data blob.
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { S_IFREG, newInode, type Compressor, type Digester } from '../rafs/tree.js';
import { MiB } from '../util/bytes.js';
import { log } from '../util/log.js';
import { noProgress, type ProgressSink } from '../util/progress.js';
import { BlobBuilder } from './blob-builder.js';
import { DEFAULT_CHUNK_SIZE, assertChunkSize, fixedSizeChunks } from './chunker.js';

const COMPRESSOR: Compressor = 'zstd';
const DIGESTER: Digester = 'blake3';

export interface DemoOptions {
  chunkSize?: number;
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
  uniqueBytes: number;
  /** Size of the data blob: unique chunks, compressed where that made them smaller. */
  compressedBytes: number;
  /** bytes / compressedBytes: what dedup and compression save together. */
  ratio: number;
  chunkSize: number;
  compressor: Compressor;
  digester: Digester;
  /** Time spent chunking, digesting, deduplicating, compressing and writing the blob. */
  timeMs: number;
}

/** Bytes that look random to dedup (no two chunks repeat) yet compress about 2:1 (4 bits of entropy a byte). */
function compressibleNoise(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let state = seed;
  for (let i = 0; i < size; i++) {
    // xorshift32: deterministic, so every run reports the same numbers
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = 0x40 | (state & 0x0f);
  }
  return out;
}

function readmeText(): string {
  const line = 'Nydus splits every file into chunks, names each chunk by its digest and stores it once.\n';
  return Array.from({ length: 400 }, (_, i) => `${i + 1}. ${line}`).join('');
}

/** Writes the sample tree under `root`; returns its regular files, relative to `root`, sorted. */
async function writeSampleTree(root: string): Promise<string[]> {
  const library = compressibleNoise(5 * MiB, 0x9e3779b9);
  const files: Record<string, string | Buffer> = {
    'etc/hostname': 'nydus-demo\n',
    'etc/os-release': 'NAME="Nydus demo"\nID=nydus-demo\nVERSION_ID=0.1\n',
    'usr/share/doc/demo/README': readmeText(),
    'usr/share/demo/a/b/c/deep.txt': 'a file three directories down\n',
    'usr/lib/libdemo.so.1.0': library,
    // images often vendor the same library twice; chunk dedup stores it once
    'opt/app/lib/libdemo.so.1.0': library,
  };
  for (const [path, contents] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), contents);
  }
  await symlink('libdemo.so.1.0', join(root, 'usr/lib/libdemo.so.1'));
  await mkdir(join(root, 'var/empty'), { recursive: true });
  return Object.keys(files).sort();
}

/** Tars `root` the way image builders do: sorted, owned by root, fixed mtime. Returns the tar's size. */
async function tarLayer(root: string, tarPath: string): Promise<number> {
  const args = ['--create', '--file', tarPath, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', root, '.'];
  await promisify(execFile)('tar', args);
  return (await stat(tarPath)).size;
}

/** Streams every file through the chunker into a BlobBuilder that writes `blobPath`. */
async function buildBlob(root: string, files: string[], blobPath: string, chunkSize: number, progress: ProgressSink) {
  const sizes = await Promise.all(files.map(async (file) => (await stat(join(root, file))).size));
  progress.setTotal(sizes.reduce((sum, size) => sum + size, 0));
  const out = await open(blobPath, 'w');
  try {
    const builder = new BlobBuilder({ out, blobIndex: 0, chunkSize, compressor: COMPRESSOR, digester: DIGESTER });
    for (const [i, file] of files.entries()) {
      const inode = newInode(S_IFREG | 0o644, { size: sizes[i] });
      let index = 0;
      for await (const chunk of fixedSizeChunks(createReadStream(join(root, file)), chunkSize)) {
        await builder.addChunk(inode, index++, chunk);
        progress.advance(chunk.length);
      }
      log.debug('file chunked', { path: file, bytes: sizes[i], chunks: index });
    }
    return await builder.finish();
  } finally {
    await out.close();
  }
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoSummary> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  assertChunkSize(chunkSize); // before writing anything
  const workDir = await mkdtemp(join(tmpdir(), 'nydusify-demo-'));
  try {
    const root = join(workDir, 'rootfs');
    const files = await writeSampleTree(root);
    const layerBytes = await tarLayer(root, join(workDir, 'layer.tar'));
    log.info('sample layer built', { files: files.length, tarBytes: layerBytes });
    const started = performance.now();
    const blob = await buildBlob(root, files, join(workDir, 'blob'), chunkSize, options.progress ?? noProgress);
    const timeMs = Math.round(performance.now() - started);
    const bytes = blob.stats.fileBytes;
    return {
      layerBytes,
      files: files.length,
      bytes,
      chunks: blob.stats.chunkRefs,
      uniqueChunks: blob.chunks.length,
      uniqueBytes: blob.chunks.reduce((sum, chunk) => sum + chunk.uncompressedSize, 0),
      compressedBytes: blob.compressedSize,
      ratio: bytes / blob.compressedSize,
      chunkSize,
      compressor: COMPRESSOR,
      digester: DIGESTER,
      timeMs,
    };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
