// `check`: a bootstrap's structure, entry by entry, and — given the blobs — every chunk read,
// decompressed and verified against its digest. Problems are reported with the paths they affect.
import { S_IFMT, S_IFREG, type ChunkRef } from '../rafs/tree.js';
import type { RafsImage } from '../rafs/reader.js';
import { forEachLimited } from '../util/concurrency.js';
import type { LocalImage } from './local.js';

export interface CheckReport {
  entries: number;
  files: number;
  chunks: number;
  /** Distinct chunks read and verified (0 without blobs). */
  verifiedChunks: number;
  problems: string[];
}

export async function checkImage(image: LocalImage): Promise<CheckReport> {
  const report: CheckReport = { entries: 0, files: 0, chunks: 0, verifiedChunks: 0, problems: [] };
  const users = new Map<string, ChunkUser>();
  try {
    // a file's links share one paths list: its chunks are read and listed once however many links it has
    const pathsOf = new Map<number, string[]>();
    for (const entry of image.rafs.walk()) {
      report.entries++;
      if ((entry.inode.mode & S_IFMT) !== S_IFREG) continue;
      report.files++;
      const known = pathsOf.get(entry.nid);
      if (entry.seen && known) {
        known.push(entry.path);
        continue;
      }
      const paths = [entry.path];
      pathsOf.set(entry.nid, paths);
      const chunks = image.rafs.chunks(entry.nid);
      for (const problem of checkFileChunks(image.rafs, entry.path, image.rafs.fileChunkSize(entry.nid), entry.inode.size, chunks)) report.problems.push(problem);
      for (const ref of chunks) {
        report.chunks++;
        const key = `${ref.blobIndex}:${ref.ciIndex}`;
        const user = users.get(key);
        if (!user) users.set(key, { ref, files: [paths] });
        else if (user.files.at(-1) !== paths) user.files.push(paths); // a file's chunks come together
      }
    }
  } catch (err) {
    report.problems.push(`bootstrap: ${(err as Error).message}`);
    return report;
  }
  if (image.chunks) await verifyChunks(image, [...users.values()], report);
  return report;
}

function checkFileChunks(rafs: RafsImage, path: string, chunkSize: number, size: number, chunks: ChunkRef[]): string[] {
  const problems: string[] = [];
  const want = Math.ceil(size / chunkSize);
  if (chunks.length !== want) problems.push(`${show(path)}: ${chunks.length} chunks for ${size} bytes, expected ${want}`);
  chunks.forEach((c, i) => {
    const blob = rafs.blobs[c.blobIndex];
    const expected = Math.min(chunkSize, size - i * chunkSize);
    if (!blob) problems.push(`${show(path)}: chunk ${i} refers to missing blob ${c.blobIndex}`);
    else if (c.uncompressedSize !== expected) problems.push(`${show(path)}: chunk ${i} holds ${c.uncompressedSize} bytes, expected ${expected}`);
    else if (c.uncompressedOffset + c.uncompressedSize > blob.uncompressedSize) problems.push(`${show(path)}: chunk ${i} lies past the end of blob ${blob.blobId}`);
    else if (c.compressedOffset + c.compressedSize > blob.compressedSize) problems.push(`${show(path)}: chunk ${i} data lies past the end of blob ${blob.blobId}`);
  });
  return problems;
}

/** A chunk and the files that use it, each file as the list of its paths (its links). */
interface ChunkUser {
  ref: ChunkRef;
  files: string[][];
}

async function verifyChunks(image: LocalImage, users: ChunkUser[], report: CheckReport): Promise<void> {
  await forEachLimited(users, 8, async ({ ref, files }) => {
    try {
      await image.chunks!.read(ref);
      report.verifiedChunks++;
    } catch (err) {
      report.problems.push(`${files.flat().map(show).join(', ')}: ${(err as Error).message}`);
    }
  });
}

/** A byte-string path as text for people. */
export function show(path: string): string {
  return Buffer.from(path, 'latin1').toString('utf8');
}
