// Test blobs made with the real layer builder (createLayer), and a backend wrapper that counts and
// can tamper with range requests.
import { execFileSync } from 'node:child_process';
import { createReadStream, linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BlobBackend } from '../../src/blobcache/backend.js';
import { createLayer } from '../../src/convert/create.js';
import { RafsImage } from '../../src/rafs/reader.js';
import type { BlobInfo, ChunkRef } from '../../src/rafs/tree.js';

export interface TestBlob {
  rafs: RafsImage;
  blob: BlobInfo;
  blobDir: string;
  /** Every distinct chunk of the blob, by CI index. */
  chunks: ChunkRef[];
  /** Files by absolute path: content and chunks in file order. */
  files: Map<string, { data: Buffer; chunks: ChunkRef[] }>;
}

/** Deterministic bytes: half incompressible (xorshift), half text. */
export function content(seed: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    if ((i >> 12) % 2 === 0) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      buf[i] = x & 0xff;
    } else {
      buf[i] = 0x61 + ((i + seed) % 26);
    }
  }
  return buf;
}

/** Builds a layer from `files` (relative path → content) and hard `links` (new path → one of `files`) with 4 KiB chunks into `work`. */
export async function makeBlob(work: string, files: Record<string, Buffer>, name = 'layer', links: Record<string, string> = {}): Promise<TestBlob> {
  const src = join(work, `${name}-src`);
  for (const [path, data] of Object.entries(files)) {
    mkdirSync(dirname(join(src, path)), { recursive: true });
    writeFileSync(join(src, path), data);
  }
  for (const [path, target] of Object.entries(links)) linkSync(join(src, target), join(src, path));
  const tar = join(work, `${name}.tar`);
  execFileSync('tar', ['--numeric-owner', '-C', src, '-cf', tar, '.']);
  const blobDir = join(work, 'blobs');
  const bootstrapPath = join(work, `${name}.boot`);
  await createLayer({ source: createReadStream(tar), bootstrapPath, blobDir, compressor: 'zstd', digester: 'blake3', chunkSize: 4096 });
  const rafs = RafsImage.open(readFileSync(bootstrapPath));
  const blob = rafs.blobs[0]!;
  const byCi = new Map<number, ChunkRef>();
  const out = new Map<string, { data: Buffer; chunks: ChunkRef[] }>();
  for (const entry of rafs.walk()) {
    if ((entry.inode.mode & 0o170000) !== 0o100000) continue;
    const chunks = rafs.chunks(entry.nid);
    for (const c of chunks) byCi.set(c.ciIndex, c);
    out.set(entry.path, { data: files[entry.path.slice(1)]!, chunks });
  }
  return { rafs, blob, blobDir, chunks: [...byCi.values()].sort((a, b) => a.ciIndex - b.ciIndex), files: out };
}

/** Wraps a backend: records every range request, optionally delays or tampers with the answer. */
export class CountingBackend implements BlobBackend {
  readonly calls: { blobId: string; offset: number; length: number }[] = [];
  /** While set, each request waits for it after being counted: the test knows it is on the wire until it lets go. */
  gate?: Promise<void>;
  tamper?: (blobId: string, offset: number, data: Buffer) => void;

  constructor(private readonly inner: BlobBackend) {}

  async readRange(blobId: string, offset: number, length: number): Promise<Buffer> {
    this.calls.push({ blobId, offset, length });
    await this.gate;
    const data = Buffer.from(await this.inner.readRange(blobId, offset, length));
    this.tamper?.(blobId, offset, data);
    return data;
  }

  size(blobId: string): Promise<number> {
    return this.inner.size(blobId);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
